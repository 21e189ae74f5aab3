"""Isolation between blocks and runs (issue 14): one hostile block per case. Each asserts what
the block could do, then that the next block of the same run, and a block of a new run, see
nothing of it."""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path

import pytest

from cirkit.sandbox import Limits, MiB, Sandbox, SandboxError, WorkerPool

from .conftest import TEST_LIMITS

_SHM = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
"""
WRITE_SHM = _SHM + """
shmid = libc.shmget(0x43495254, 4096, 0o1666)
addr = libc.shmat(shmid, None, 0)
ctypes.memmove(addr, b"LEAKED", 6)
print("wrote", shmid >= 0)
"""
READ_SHM = _SHM + """
shmid = libc.shmget(0x43495254, 4096, 0o666)
print("found" if shmid >= 0 else "none")
"""


def _in_new_run(code: str) -> str:
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        return sb.run_sync(code).stdout


def test_system_v_shared_memory_does_not_outlive_its_block() -> None:
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        assert sb.run_sync(WRITE_SHM).stdout == "wrote True\n"
        assert sb.run_sync(READ_SHM).stdout == "none\n"
    assert _in_new_run(READ_SHM) == "none\n"


WRITE_LOCK = """
import os
for d in ("/run/lock", "/var/tmp", "/dev/shm", "/tmp"):
    try:
        with open(os.path.join(d, "cirkit-leak"), "w") as f:
            f.write("x")
        print(d, "writable")
    except OSError as e:
        print(d, type(e).__name__)
"""
READ_LOCK = """
import os
print([d for d in ("/run/lock", "/var/tmp", "/dev/shm", "/tmp")
       if os.path.exists(os.path.join(d, "cirkit-leak"))])
"""


def test_world_writable_host_directories_keep_nothing() -> None:
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        if "mountns" not in sb.features:
            pytest.skip("no mount namespace here")
        # the block may write there (its private scratch mounts), and nothing stays
        assert sb.run_sync(WRITE_LOCK).stdout.count(" writable") == 4
        assert sb.run_sync(READ_LOCK).stdout == "[]\n"
    assert _in_new_run(READ_LOCK) == "[]\n"
    assert not os.path.exists("/run/lock/cirkit-leak")  # the host's own directory


FORGE = r'''
import os, struct, json
def forge(d):
    p = json.dumps(d).encode()
    os.write(3, struct.pack(">cI", b"D", len(p)) + p)
'''


@pytest.mark.parametrize("code", [
    FORGE + 'forge({"error": None, "exit": 0, "dropped": [-5, -7]})\nraise SystemExit(3)',
    FORGE + 'forge({"error": None, "exit": 0, "dropped": [0, 0]})\nraise RuntimeError("x")',
    FORGE + 'forge({"error": None, "exit": 0, "dropped": [0, 0]})\nos._exit(9)',
    FORGE + 'forge({"error": "exception", "exit": 0, "dropped": [0, 0]})',
    FORGE + 'forge({"error": None, "exit": 300, "dropped": [0, 0]})',
], ids=["negative-counts", "exit0-then-raise", "exit0-then-exit9", "mismatch", "range"])
def test_a_forged_done_frame_is_a_protocol_error(sandbox: Sandbox, code: str) -> None:
    r = sandbox.run_sync(code)
    assert r.error == "killed" and "broke the sandbox protocol" in r.stderr, r
    assert sandbox.run_sync("print('next')").stdout == "next\n"


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0, -1])
def test_a_timeout_that_is_no_limit_is_refused(bad: float) -> None:
    with pytest.raises(SandboxError) as e:
        Limits(wall_time_s=bad)
    assert e.value.setting == "timeout" and e.value.hint


def test_the_audit_hook_mode_is_never_silent() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with Sandbox(workers=1, limits=TEST_LIMITS, isolation="audit-hook") as sb:
            assert sb.run_sync("print(1)").stdout == "1\n"
    assert any("audit-hook mode" in str(w.message) for w in seen)


def _peek(paths: list[str]) -> str:
    """A block that reports, for each path, whether it can read it."""
    return f"""
import os
for p in {paths!r}:
    try:
        os.listdir(p) if os.path.isdir(p) else open(p, "rb").read(1)
        print(p, "readable")
    except OSError as e:
        print(p, type(e).__name__)
"""


def test_a_block_sees_no_project_file_home_or_cache(tmp_path: Path) -> None:
    secret = tmp_path / "questions.jsonl"
    secret.write_text('{"question": "q", "answer": "the answer"}\n')
    project = str(Path(__file__).resolve())  # this very test file
    home = str(Path.home())
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        if "netns" not in sb.features:
            pytest.skip("the kernel gives no namespaces here")
        out = sb.run_sync(_peek([str(secret), project])).stdout
        assert "readable" not in out, out
        # of the home directory, only the way to the interpreter (if it lives there) is left
        prefix = Path(os.path.realpath(sys.prefix))
        way = {prefix.relative_to(home).parts[0]} if prefix.is_relative_to(home) else set()
        r = sb.run_sync(f"import os; print(sorted(os.listdir({home!r})))")
        assert r.stdout in (f"{sorted(way)}\n", ""), r
        assert sb.run_sync("import os; print(os.listdir('/run'))").stdout == "['lock']\n"
        # what Python needs is there, read-only
        r = sb.run_sync("import json, decimal, sqlite3; print(open('/usr/x', 'w'))")
        assert "Read-only file system" in r.stderr, r
        assert sb.run_sync("import os; os.listdir('/usr/lib')").error is None


def test_a_block_sees_no_other_process(sandbox: Sandbox) -> None:
    if "netns" not in sandbox.features:
        pytest.skip("the kernel gives no namespaces here")
    me = os.getpid()
    r = sandbox.run_sync(f"""
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(len(pids) <= 3, {me} in pids or os.path.exists("/proc/{me}/cmdline"))
""")
    assert r.stdout == "True False\n", r


def test_the_private_temp_dir_is_emptied_between_blocks_and_runs() -> None:
    write = "import os, tempfile; open(os.path.join(tempfile.gettempdir(), 'left'), 'w')"
    read = "import os, tempfile; print(os.listdir(tempfile.gettempdir()))"
    with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        assert sb.run_sync(write).error is None
        assert sb.run_sync(read).stdout == "[]\n"
    assert _in_new_run(read) == "[]\n"


FORK_MEMORY = """
import os, time
kids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        b = bytearray(150 << 20)
        b[::4096] = b"x" * len(b[::4096])
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids])
"""


def test_memory_is_limited_per_block_not_per_process(sandbox: Sandbox) -> None:
    """Four forked children of 150 MiB each: each passes the 256 MiB RLIMIT_AS, together not."""
    if any("memory is limited per process only" in w for w in sandbox.warnings):
        pytest.skip("no memory cgroup here (the documented fallback)")
    r = sandbox.run_sync(FORK_MEMORY)
    assert r.error == "memory_limit", r
    assert "MemoryError" in r.stderr
    assert sandbox.run_sync("print('next')").stdout == "next\n"


def test_auto_never_falls_back_to_the_audit_hook_silently(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a pool does with a worker reporting the audit hook (the kernel here gives
    namespaces, so the worker's report is handed to the pool's check directly)."""
    refused = {"isolation": "audit-hook", "features": ["mountns"]}
    pool = WorkerPool(size=1, limits=TEST_LIMITS, tool_handler=None)
    monkeypatch.delenv("CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK", raising=False)
    with pytest.raises(SandboxError) as e:
        pool._check_fallback(refused)
    assert e.value.setting == "isolation"
    assert e.value.env_var == "CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK"
    monkeypatch.setenv("CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK", "1")
    with pytest.warns(RuntimeWarning, match="audit-hook mode"):
        pool._check_fallback(refused)
    pool._check_fallback({"isolation": "netns"})  # nothing to say


FILL_SCRATCH = """
import os
for d in ("/tmp", "/var/tmp", "/dev/shm", "/run/lock"):
    try:
        with open(os.path.join(d, "fill"), "wb") as f:
            f.write(b"x" * (6 << 20))
        print(d, "ok")
    except OSError as e:
        print(d, type(e).__name__)
"""


def test_the_disk_cap_holds_for_all_scratch_mounts_together() -> None:
    """Four scratch mounts of 8 MiB each would hold 32 MiB: the cap is for the block."""
    with Sandbox(workers=1, limits=TEST_LIMITS.replace(disk_bytes=8 * MiB)) as sb:
        if "mountns" not in sb.features:
            pytest.skip("no mount namespace here")
        out = sb.run_sync(FILL_SCRATCH).stdout
        assert out.count(" ok") == 1 and out.startswith("/tmp ok"), out
        assert sb.run_sync(FILL_SCRATCH).stdout == out  # emptied again for the next block
        assert sb.run_sync(READ_LOCK).stdout == "[]\n"
