"""Hostile blocks: each must be stopped, reported (reason and observation text), and leave
the parent and the sandbox working for the next block."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from cirkit.cir import Tokenizer, make_observation
from cirkit.sandbox import ExecResult, Sandbox

from .conftest import TEST_LIMITS, only_waiting_children, processes_of


def observe(r: ExecResult, tokenizer: Tokenizer) -> str:
    return make_observation(r.stdout, r.stderr, error=r.notice, tokenizer=tokenizer).text


def still_works(sb: Sandbox) -> None:
    r = sb.run_sync("print(6 * 7)")
    assert (r.stdout, r.error) == ("42\n", None)


def test_infinite_loop_times_out(sandbox: Sandbox, tiny_tokenizer: Tokenizer) -> None:
    t0 = time.perf_counter()
    r = sandbox.run_sync("print('started')\nwhile True:\n    pass", timeout=1.0)
    assert time.perf_counter() - t0 < 3.0
    assert r.error == "timeout"
    assert r.stdout == "started\n"
    assert "timed out after 1 seconds" in observe(r, tiny_tokenizer)
    still_works(sandbox)


def test_cpu_limit(sandbox: Sandbox, tiny_tokenizer: Tokenizer) -> None:
    r = sandbox.run_sync("while True:\n    pass",
                         limits=TEST_LIMITS.replace(cpu_time_s=1, wall_time_s=5.0))
    assert r.error == "cpu_limit"
    assert "CPU time" in observe(r, tiny_tokenizer)
    still_works(sandbox)


@pytest.mark.parametrize("code", [
    "blocks = []\nwhile True:\n    blocks.append(' ' * 10**7)",
    "x = bytearray(10**10)",
])
def test_memory_bomb(sandbox: Sandbox, tiny_tokenizer: Tokenizer, code: str) -> None:
    r = sandbox.run_sync(code)
    assert r.error == "memory_limit"
    assert "MemoryError" in observe(r, tiny_tokenizer)
    still_works(sandbox)


def test_fork_bomb_is_contained_and_nothing_survives(sandbox: Sandbox) -> None:
    code = ("import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass")
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        r = sb.run_sync(code, timeout=1.5)
        assert r.error == "timeout"
        assert "timed out" in (r.notice or "")
        uids = sb.uids
        if uids:  # root: every process of these uids belongs to this sandbox
            assert only_waiting_children(sb), processes_of(uids)
        still_works(sb)
    assert processes_of(uids) == {}


def test_background_processes_die_with_their_block(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("import subprocess\n"
                         "p = subprocess.Popen(['sleep', '300'], start_new_session=True)\n"
                         "print(p.pid > 0)")
    assert (r.stdout, r.error) == ("True\n", None)
    if sandbox.uids:
        assert only_waiting_children(sandbox), processes_of(sandbox.uids)
    still_works(sandbox)


@pytest.mark.parametrize("code", [
    "import sys\nsys.stdout.write('x' * 100_000_000)",
    "import os\nfor _ in range(100):\n    os.write(1, b'y' * 1_000_000)",
    "for i in range(1_000_000):\n    print(i)",
])
def test_huge_output_is_capped_fast(sandbox: Sandbox, tiny_tokenizer: Tokenizer,
                                    code: str) -> None:
    t0 = time.perf_counter()
    r = sandbox.run_sync(code, timeout=10.0)
    assert time.perf_counter() - t0 < 3.0
    assert r.error == "output_limit" and r.output_truncated
    assert len(r.stdout.encode()) <= TEST_LIMITS.output_bytes
    assert len(r.stdout.encode()) >= TEST_LIMITS.output_bytes - 20
    assert "[output truncated" in observe(r, tiny_tokenizer)
    still_works(sandbox)


def test_writes_outside_the_temp_dir_fail(sandbox: Sandbox, tmp_path: Path) -> None:
    mine = tmp_path / "owned-by-the-test.txt"
    mine.write_text("original")
    repo_file = Path(__file__).resolve()
    before = repo_file.read_bytes()
    code = f"""
import os
for path in [{str(mine)!r}, {str(repo_file)!r}, '/etc/cirkit-sandbox-test',
             {str(repo_file.parent / 'planted.py')!r}]:
    try:
        with open(path, 'w') as f:
            f.write('overwritten')
        print('WROTE', path)
    except OSError as e:
        print('refused', type(e).__name__)
"""
    r = sandbox.run_sync(code)
    assert "WROTE" not in r.stdout and r.stdout.count("refused") == 4, r.stdout
    assert mine.read_text() == "original"
    assert repo_file.read_bytes() == before
    assert not Path("/etc/cirkit-sandbox-test").exists()
    assert not (repo_file.parent / "planted.py").exists()
    still_works(sandbox)


def test_no_network_not_even_loopback(sandbox: Sandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    finished = threading.Event()

    def accept() -> None:
        while not finished.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    t = threading.Thread(target=accept)
    t.start()
    try:
        r = sandbox.run_sync(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}),"
                             " timeout=2)\nprint('connected')")
        time.sleep(0.3)  # a connection attempt would have been accepted by now
    finally:
        finished.set()
        t.join()
        server.close()
    assert r.error == "exception" and "connected" not in r.stdout
    assert ("Network is unreachable" in r.stderr if sandbox.isolation == "netns"
            else "not allowed in the sandbox" in r.stderr), r.stderr
    assert accepted == []
    still_works(sandbox)


def test_api_keys_of_the_parent_are_absent(sandbox: Sandbox,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERPER_API_KEY", "sk-test-secret")
    code = f"""
import os
print(os.environ.get('SERPER_API_KEY'))
for pid in (os.getppid(), {os.getpid()}):
    try:
        print('sk-test-secret' in open(f'/proc/{{pid}}/environ').read())
    except OSError as e:
        print(type(e).__name__)
"""
    r = sandbox.run_sync(code)
    assert r.error is None, r.stderr
    assert r.stdout.splitlines()[0] == "None"
    assert "True" not in r.stdout and "sk-test-secret" not in r.output


@pytest.mark.parametrize("target", ["os.getppid()", str(os.getpid())])
def test_killing_the_parent_fails(sandbox: Sandbox, target: str) -> None:
    r = sandbox.run_sync(f"import os, signal\nos.kill({target}, signal.SIGKILL)\n"
                         "print('still here')")
    assert r.error == "exception"
    assert "PermissionError" in r.stderr or "ProcessLookupError" in r.stderr
    still_works(sandbox)  # this test process is obviously alive, and so is the worker


def test_killing_its_own_child_process_is_reported() -> None:
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        r = sb.run_sync("import os, signal\nprint('bye', flush=True)\n"
                        "os.kill(os.getpid(), signal.SIGKILL)")
        assert (r.stdout, r.error, r.exit_code) == ("bye\n", "killed", -signal.SIGKILL)
        assert r.notice == "Killed (signal SIGKILL)"
        still_works(sb)


def test_protocol_garbage_from_the_block_is_contained(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("import os\nos.write(3, b'Z' * 64)\nimport time\ntime.sleep(3)",
                         timeout=5.0)
    assert r.error == "killed" and "protocol" in (r.notice or "")
    still_works(sandbox)


def test_audit_hook_fallback_refuses_sockets_and_programs() -> None:
    with Sandbox(workers=1, limits=TEST_LIMITS, isolation="audit-hook") as sb:
        assert sb.isolation == "audit-hook" and "netns" not in sb.features
        for code in ["import socket\nsocket.socket()",
                     "import subprocess\nsubprocess.run(['true'])",
                     "import os\nos.system('true')",
                     "import subprocess\nsubprocess._fork_exec()",
                     "import _posixsubprocess\n_posixsubprocess.fork_exec()",
                     "import ctypes\nctypes.CDLL(None).getpid()"]:
            r = sb.run_sync(code)
            assert r.error == "exception"
            assert "is not allowed in the sandbox" in r.stderr, r.stderr
        still_works(sb)


def test_a_dead_worker_is_replaced() -> None:
    with Sandbox(workers=2, limits=TEST_LIMITS) as sb:
        still_works(sb)
        killed = set(sb.worker_pids)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)  # both: whatever the block lands on is dead
        deadline = time.monotonic() + 10
        while (len(sb.worker_pids) < 2 or killed & set(sb.worker_pids)) \
                and time.monotonic() < deadline:
            # The sync API runs the loop (which notices deaths and restarts) only in a call. A
            # block on a worker whose death is not yet noticed may be reported killed (its child
            # dies with the worker), but it is never lost and never raises.
            r = sb.run_sync("print(6 * 7)")
            assert r.error in (None, "killed"), r.stderr
        assert len(sb.worker_pids) == 2 and not killed & set(sb.worker_pids)
        still_works(sb)


async def test_a_cancelled_run_leaves_the_sandbox_working() -> None:
    async with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(sb.run("import time\ntime.sleep(30)"), 0.3)
        r = await sb.run("print('after')")
        assert (r.stdout, r.error) == ("after\n", None)


async def test_a_worker_killed_mid_block_reports_killed() -> None:
    async with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        pid = sb.worker_pids[0]
        task = asyncio.create_task(sb.run("print('started', flush=True)\n"
                                          "import time\ntime.sleep(30)"))
        await asyncio.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        r = await task
        assert (r.stdout, r.error) == ("started\n", "killed")
        assert "worker stopped" in (r.notice or "")
        assert (await sb.run("print('next')")).stdout == "next\n"
