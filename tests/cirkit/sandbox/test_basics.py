"""Running a block: output, tracebacks as ``python -c`` prints them, state, concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from cirkit.sandbox import REASONS, ExecResult, Limits, Sandbox, SandboxError

from .conftest import TEST_LIMITS


def python_c(code: str) -> subprocess.CompletedProcess[str]:
    """The demo's way: a fresh interpreter per block."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                          cwd="/")


def test_print(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("print('hello, world')")
    assert isinstance(r, ExecResult)
    assert (r.stdout, r.stderr, r.error, r.exit_code) == ("hello, world\n", "", None, 0)
    assert r.ok and not r.output_truncated and r.tool_calls == [] and r.notice is None
    assert 0 < r.duration_ms < 5000


def test_stdout_and_stderr_keep_their_order(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')\n"
                         "import os\nos.write(2, b'raw\\n')")
    assert r.stdout == "a\nc\n" and r.stderr == "b\nraw\n"
    assert r.output == "a\nb\nc\nraw\n"


TRACEBACK_CASES = [
    "x = 1\ny = 2\nprint(x)\nprint(z)",
    "def f(n):\n    return 10 / n\n\nprint('before')\nf(0)",
    "import json\njson.loads('{bad')",
    "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('wrapped') from e",
    "class Oops(Exception):\n    pass\nraise Oops('custom')",
    "x = (\nprint(1)",
    "if True:\nprint('no indent')",
    "import sys\nsys.exit('a message')",
    "raise SystemExit(3)",
]


@pytest.mark.parametrize("code", TRACEBACK_CASES)
def test_errors_read_exactly_as_python_c_prints_them(sandbox: Sandbox, code: str) -> None:
    """The model sees its own frames with its block's line numbers, nothing of the sandbox."""
    want = python_c(code)
    r = sandbox.run_sync(code)
    assert r.stdout == want.stdout
    assert r.stderr == want.stderr
    assert r.exit_code == want.returncode
    assert "cirkit" not in r.stderr and "_child" not in r.stderr


def test_error_reasons(sandbox: Sandbox) -> None:
    assert sandbox.run_sync("1/0").error == "exception"
    assert sandbox.run_sync("import sys; sys.exit(3)").error == "exit_code:3"
    assert sandbox.run_sync("import sys; sys.exit(0)").error is None
    assert sandbox.run_sync("import os; os._exit(4)").error == "exit_code:4"
    assert set(REASONS) >= {"timeout", "cpu_limit", "memory_limit", "output_limit", "killed",
                            "exception"}


def test_missing_module_is_a_clean_module_not_found_error(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("import numpy_but_not_installed")
    assert r.error == "exception"
    assert r.stderr == ('Traceback (most recent call last):\n  File "<string>", line 1, in '
                        "<module>\nModuleNotFoundError: No module named "
                        "'numpy_but_not_installed'\n")


def test_block_runs_as_main_and_imports_the_standard_library(sandbox: Sandbox) -> None:
    r = sandbox.run_sync(
        "import concurrent.futures, csv, sqlite3, xml.etree.ElementTree as ET\n"
        "def sq(x):\n    return x * x\n"
        "if __name__ == '__main__':\n"
        "    with concurrent.futures.ThreadPoolExecutor(4) as ex:\n"
        "        print(sum(ex.map(sq, range(10))))\n"
        "    print(sqlite3.connect(':memory:').execute('select 2+2').fetchone()[0])")
    assert (r.stdout, r.error) == ("285\n4\n", None), r.stderr


def test_no_state_between_blocks(sandbox: Sandbox) -> None:
    assert sandbox.run_sync("secret = 42\nopen('left.txt', 'w').write('x')\n"
                            "open('/tmp/left.txt', 'w').write('x')").ok
    r = sandbox.run_sync("import os\nprint('secret' in globals(), os.path.exists('left.txt'),"
                         " os.path.exists('/tmp/left.txt'), sorted(os.listdir('.')))")
    assert r.stdout == "False False False []\n"


def test_working_directory_and_environment(sandbox: Sandbox) -> None:
    r = sandbox.run_sync("import os, tempfile\nprint(sorted(os.environ))\n"
                         "print(os.getcwd() == os.environ['HOME'] == tempfile.gettempdir())\n"
                         "print(os.getuid() != 0)")
    assert r.stdout == "['HOME', 'LANG', 'PATH', 'TMPDIR']\nTrue\nTrue\n"


def test_isolation_is_reported(sandbox: Sandbox) -> None:
    assert sandbox.isolation in ("netns", "audit-hook")
    if sandbox.isolation == "netns":
        assert "netns" in sandbox.features


async def test_persistent_session_keeps_variables_default_does_not() -> None:
    async with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        async with sb.session(persistent=True) as s:
            assert (await s.run("x = 41\nimport json")).ok
            r = await s.run("x += 1\nprint(x, json.dumps([x]))")
            assert r.stdout == "42 [42]\n"
            bad = await s.run("print(undefined_name)")
            assert bad.error == "exception" and "NameError" in bad.stderr
            assert (await s.run("print(x)")).stdout == "42\n"  # an exception keeps the state
            slow = await s.run("while True: pass", timeout=0.5)
            assert slow.error == "timeout"
            r = await s.run("print('x' in globals())")  # a new child after the timeout
            assert (r.stdout, r.error) == ("False\n", None)
        async with sb.session() as s:  # persistent=False: every block starts empty
            await s.run("y = 1")
            assert (await s.run("print('y' in globals())")).stdout == "False\n"
        assert (await sb.run("print('x' in globals())")).stdout == "False\n"


async def test_eight_blocks_at_once_on_two_workers() -> None:
    async with Sandbox(workers=2, limits=TEST_LIMITS) as sb:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(
            sb.run(f"import time\ntime.sleep(0.3)\nprint({i})") for i in range(8)))
        elapsed = time.perf_counter() - t0
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(8)]
    assert all(r.ok for r in results)
    assert 1.2 <= elapsed < 4.0  # 2 at a time: four rounds of 0.3 s


def test_sync_api_and_limits_override() -> None:
    with Sandbox(workers=1, limits=Limits(wall_time_s=3)) as sb:
        assert sb.run_sync("print(1)").stdout == "1\n"
        r = sb.run_sync("import time; time.sleep(5)", timeout=0.3)
        assert r.error == "timeout"
        assert sb.run_sync("print(2)").stdout == "2\n"
    with pytest.raises(SandboxError):
        Limits(cpu_time_s=0)


def test_public_names() -> None:
    import cirkit.sandbox as sandbox

    assert sorted(sandbox.__all__) == sorted([
        "DEFAULT_PRELOAD", "DEFAULT_UID_BASE", "REASONS", "ExecResult", "GiB", "Limits", "MiB",
        "PoolState", "Retry", "Sandbox", "SandboxError", "Session", "ToolCall", "ToolError",
        "WorkerPool"])
    for name in sandbox.__all__:
        assert getattr(sandbox, name) is not None
