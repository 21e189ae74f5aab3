"""The in-child runner: what a freshly forked child does before and while it runs a block.

It closes every descriptor it was not given, applies the limits, drops to the block's uid,
empties the environment, then runs the code the way ``python3 -c`` would (same ``<string>``
file name, same traceback text, ``__name__ == "__main__"``). Its Python-level stdout and stderr
go over one socket as frames, so the parent sees them in the order they were written;
``web_search``/``web_visit`` are sent over the same socket and answered by the parent.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import io
import json
import mmap
import os
import resource
import signal
import sys
import tempfile
import threading
import types
from typing import Any, NoReturn

from cirkit.cir import tool_functions

from . import _isolation, _streams
from ._protocol import CODE, DONE, ERR, OUT, REPLY, TOOL, frame
from ._streams import MUX_FD, Mux, make_stream

__all__ = ["FILENAME", "ToolError", "prepare_worker", "run_child"]

FILENAME = "<string>"
#: Exit status of a child whose set-up failed (before any user code ran).
EXIT_SETUP = 70
# Frames of these files are the sandbox's, not the block's: tracebacks hide them.
_OWN_FILES = frozenset({__file__, _streams.__file__, tool_functions.__code__.co_filename})
_state = {"mux_in_place": False}


class ToolError(RuntimeError):
    """A tool call the parent could not answer (e.g. a strict replay miss)."""


ToolError.__module__ = "builtins"  # printed as "ToolError: ...", as a builtin would be


# -- the tools the block sees ----------------------------------------------------------------
class _Tools:
    def __init__(self, mux: Mux) -> None:
        self.mux = mux

    def call(self, tool: str, args: dict[str, Any]) -> str:
        with self.mux.lock:
            self.mux.send(TOOL, json.dumps({"tool": tool, "args": args}).encode())
            kind, payload = self.mux.recv()
        reply = json.loads(payload) if kind == REPLY else {"error": "bad reply"}
        if "error" in reply:
            raise ToolError(f"{tool} failed: {reply['error']}")
        return str(reply["text"])

    def namespace(self) -> dict[str, Any]:
        """``web_search``/``web_visit``/``visit_webpage``, generated from the one tool table:
        every spelling a dialect uses binds to the canonical call the parent answers."""
        return {**tool_functions(self.call), "ToolError": ToolError}


# -- the audit-hook fallback -----------------------------------------------------------------
_BLOCKED = frozenset({
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto", "socket.sendmsg",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
    "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.forkpty",
})


#: Modules whose functions start programs or call C without raising audit events themselves.
_BLOCKED_IMPORTS = frozenset({"_posixsubprocess", "_ctypes", "ctypes"})


def _refuse(*args: Any, **kwargs: Any) -> NoReturn:
    raise PermissionError("starting programs is not allowed in the sandbox (no network)")


def _install_audit_hook() -> None:
    """The fallback where the kernel gives no network namespace: Python-level, best effort."""
    import _posixsubprocess
    import subprocess

    # A direct call of fork_exec raises no audit event of its own.
    _posixsubprocess.fork_exec = _refuse
    subprocess._fork_exec = _refuse  # type: ignore[attr-defined]
    sys.addaudithook(_audit)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in _BLOCKED:
        raise PermissionError(f"{event} is not allowed in the sandbox (no network)")
    if event == "import" and args and args[0] in _BLOCKED_IMPORTS:
        raise PermissionError(f"importing {args[0]} is not allowed in the sandbox")
    if event == "open" and args and isinstance(args[0], str | bytes):
        path = os.fsdecode(args[0])
        if path.startswith("/proc/") and path.endswith("/mem"):
            raise PermissionError(f"opening {path} is not allowed in the sandbox")


# -- set-up ----------------------------------------------------------------------------------
class _Prepared:
    """What every child of a worker starts with, made once in the worker before any fork:
    a child then only assigns it (each object a child creates costs it page copies)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.mux = Mux(0)
        self.stdin = open(0, closefd=False)  # noqa: SIM115
        self.stdout = make_stream(self.mux, OUT, 1, "strict")
        self.stderr = make_stream(self.mux, ERR, 2, "backslashreplace")
        os.environ.clear()
        os.environ.update(env)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too big a file: OSError, not death


_prepared: list[_Prepared] = []


def prepare_worker(tmpdir: str | None) -> None:
    """Called once by the worker. ``tmpdir``: every block's directory, when it is fixed."""
    path = os.pathsep.join(dict.fromkeys([os.path.dirname(sys.executable),
                                          "/usr/local/bin", "/usr/bin", "/bin"]))
    env = {"PATH": path, "LANG": "C.UTF-8"}
    if tmpdir is not None:
        env.update(HOME=tmpdir, TMPDIR=tmpdir)
    _prepared.append(_Prepared(env))


def _setup(spec: dict[str, Any], fds: list[int]) -> Mux:
    if spec.get("cgroup_fd") is not None:  # first: the block's memory counts from here on
        os.write(spec["cgroup_fd"], b"0")
    os.setsid()
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    mux_fd, out_fd, err_fd = fds
    null = os.open(os.devnull, os.O_RDONLY)
    for src, dst in ((null, 0), (out_fd, 1), (err_fd, 2), (mux_fd, MUX_FD)):
        os.dup2(src, dst)
    _state["mux_in_place"] = True
    os.closerange(MUX_FD + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    tmp = spec["tmpdir"]
    os.chdir(tmp)

    lim = spec["limits"]
    cpu = int(lim["cpu_time_s"])
    cpu_hard = cpu * 64 + 1 if spec["persistent"] else cpu + 1
    for res, value in (
        (resource.RLIMIT_AS, lim["memory_bytes"]),
        (resource.RLIMIT_CPU, (cpu, cpu_hard)),
        (resource.RLIMIT_FSIZE, lim["file_size_bytes"]),
        (resource.RLIMIT_NOFILE, lim["open_files"]),
        (resource.RLIMIT_NPROC, spec["nproc"]),
        (resource.RLIMIT_CORE, 0),
    ):
        soft, hard = value if isinstance(value, tuple) else (value, value)
        resource.setrlimit(res, (soft, hard))
    if spec.get("ipcns"):
        _isolation.new_ipc_namespace()  # needs the privileges dropped just below
    uid, gid = spec["uid"], spec["gid"]
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    elif os.geteuid() == 0:
        _isolation.drop_capabilities()  # uid 0 of a user namespace: no capabilities
    _isolation.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != spec["worker"]:
        raise RuntimeError("the worker died during set-up")  # too late for the signal
    _isolation.set_no_new_privs()

    if not _prepared:
        prepare_worker(None)
    pre = _prepared[0]
    if os.environ.get("HOME") != tmp:
        os.environ["HOME"] = os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None  # computed again from TMPDIR
    sys.argv = ["-c"]
    sys.path[0] = ""
    atexit._clear()

    mux = pre.mux
    mux.cap = int(lim["output_bytes"])
    sys.stdin = sys.__stdin__ = pre.stdin  # type: ignore[misc]
    sys.stdout = sys.__stdout__ = pre.stdout  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = pre.stderr  # type: ignore[misc]
    _warm_up()
    if spec["audit"]:
        _install_audit_hook()
    return mux


def _warm_up() -> None:
    """Touch, while the child waits for its code, the memory that running a block touches
    first: after a fork each first write to a page copies it, which is slow on some VMs."""
    sink = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", line_buffering=True)
    exec(compile("for i in range(3): print(i, 'x', file=f)", FILENAME, "exec"), {"f": sink})
    mmap.mmap(-1, 4 << 20).close()
    json.dumps({"error": None, "exit": 0, "dropped": [0, 0]}).encode()


# -- running a block -------------------------------------------------------------------------
def _trim(exc: BaseException | None, seen: set[int]) -> None:
    """Drop the sandbox's own frames from a traceback chain: the model sees only its code."""
    if exc is None or id(exc) in seen:
        return
    seen.add(id(exc))
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename not in _OWN_FILES:
            frames.append(tb)
        tb = tb.tb_next
    new: types.TracebackType | None = None
    for t in reversed(frames):
        new = types.TracebackType(new, t.tb_frame, t.tb_lasti, t.tb_lineno)
    exc.__traceback__ = new
    _trim(exc.__cause__, seen)
    _trim(exc.__context__, seen)
    for sub in getattr(exc, "exceptions", ()):
        _trim(sub, seen)


def _report(exc: BaseException) -> None:
    _trim(exc, set())
    with contextlib.suppress(Exception):
        sys.excepthook(type(exc), exc, exc.__traceback__)


def _exit_status(e: SystemExit) -> int:
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _run_block(code: str, main: types.ModuleType) -> tuple[str | None, int]:
    """Runs one block in ``main``; returns (error reason, exit status) as python -c would."""
    # Address space set aside (never touched, so free to map) and given back so that a
    # MemoryError can still be printed.
    reserve = mmap.mmap(-1, 4 << 20)
    try:
        exec(compile(code, FILENAME, "exec"), main.__dict__)
    except SystemExit as e:
        status = _exit_status(e)
        return (f"exit_code:{status}" if status else None), status
    except MemoryError as e:
        reserve.close()
        _report(e)
        return "memory_limit", 1
    except BaseException as e:
        _report(e)
        return "exception", 1
    finally:
        reserve.close()
    return None, 0


def _finish_process() -> None:
    """What the interpreter does at exit: wait for threads, run atexit handlers."""
    me = threading.current_thread()
    for t in threading.enumerate():
        if t is not me and not t.daemon:
            with contextlib.suppress(Exception):
                t.join()
    atexit._run_exitfuncs()


def run_child(spec: dict[str, Any], fds: list[int]) -> NoReturn:
    """Entry point in the forked child; never returns."""
    try:
        mux = _setup(spec, fds)
    except BaseException as e:
        with contextlib.suppress(BaseException):
            detail = f"{type(e).__name__}: {e}"
            fd = MUX_FD if _state["mux_in_place"] else fds[0]
            os.write(fd, frame(DONE, json.dumps({"error": "setup", "detail": detail,
                                                     "exit": EXIT_SETUP}).encode()))
        os._exit(EXIT_SETUP)
    status = 1
    try:
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        main.__dict__.update(_Tools(mux).namespace())
        sys.modules["__main__"] = main
        cpu = int(spec["limits"]["cpu_time_s"])
        while True:
            kind, payload = mux.recv()
            if kind != CODE:
                os._exit(EXIT_SETUP)
            if spec["persistent"]:
                used = resource.getrusage(resource.RUSAGE_SELF)
                soft = int(used.ru_utime + used.ru_stime) + cpu
                hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
                resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))
            mux.reset()
            error, status = _run_block(payload.decode("utf-8", "surrogateescape"), main)
            if not spec["persistent"] or error not in (None, "exception"):
                break
            mux.done(error, status)
        with contextlib.suppress(BaseException):
            _finish_process()
        mux.done(error, status)
        for fd in (1, 2, MUX_FD):  # EOF for the parent now, before the exit's teardown
            with contextlib.suppress(OSError):
                os.close(fd)
    except BaseException:
        pass
    finally:
        os._exit(status)
