"""The fork-server workers behind a ``Sandbox``: spawned, lent out, taken back, replaced.

A ``WorkerPool`` moves through :class:`PoolState` forward only: NEW, STARTING, then RUNNING
(or FAILED when a worker would not start), CLOSING, CLOSED; ``close`` may come at any point
(a start in progress is waited for and undone). A free worker waits in the idle
queue with its next child already forked (``prepare``), so a block finds it set up; a worker
given back as broken is killed and a new one spawned in its slot.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Coroutine, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from ._channel import Channel
from ._exchange import await_exit
from ._isolation import AUDIT_HOOK, NETNS
from ._limits import DEFAULT_PRELOAD, Limits
from ._outcome import ToolHandler
from ._proc import WorkerProc
from ._result import SandboxError

__all__ = ["DEFAULT_UID_BASE", "PoolState", "WorkerPool"]

#: First of the uids the blocks run under when the parent is root (one per worker, held by a
#: lock file, so concurrent sandboxes on one machine never share one).
DEFAULT_UID_BASE = 1_900_000_000
_ROOT = str(Path(__file__).resolve().parents[2])
_log = logging.getLogger("cirkit.sandbox")

#: Set to 1 to let ``isolation="auto"`` fall back to the audit hook where the kernel refuses
#: namespaces (otherwise the sandbox refuses to start there).
ALLOW_AUDIT_HOOK_ENV = "CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK"
AUDIT_HOOK_WARNING = (
    "the sandbox runs in audit-hook mode: no network, PID, IPC or filesystem isolation by the "
    "kernel, only a Python-level audit hook (native code such as a C extension's own socket "
    "client still reaches loopback; blocks may read host files and share /run/lock); use it "
    "for trusted code only")
#: Seconds a new worker gets to report that it is ready.
READY_TIMEOUT_S = 60.0
#: Tries to replace a dead worker before the pool gives up on it.
RESPAWN_TRIES = 3


class PoolState(str, Enum):
    """Where a pool is in its life; it only ever moves down this list (skipping some)."""

    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    #: A worker would not start: every ``start`` raises that error again.
    FAILED = "failed"
    CLOSING = "closing"
    CLOSED = "closed"


_DONE = (PoolState.CLOSING, PoolState.CLOSED)


class WorkerPool:
    """``size`` fork-server workers, lent to one block (or one persistent session) at a time.

    ``limits`` are the blocks' defaults: a worker's ahead-of-time child is forked with them
    and its scratch disk sized by them. ``tool_handler`` answers the blocks' tool calls; both
    are read at each block, so they may be changed after the start.
    """

    def __init__(self, *, size: int, limits: Limits, tool_handler: ToolHandler | None,
                 isolation: str = "auto", preload: Sequence[str] = DEFAULT_PRELOAD,
                 uid_base: int = DEFAULT_UID_BASE, python: str | None = None) -> None:
        if isolation not in ("auto", NETNS, AUDIT_HOOK):
            raise ValueError(f"isolation must be auto, {NETNS} or {AUDIT_HOOK}, not {isolation!r}")
        self.size = size
        self.limits = limits
        self.tool_handler = tool_handler
        self.state = PoolState.NEW
        #: The loop the pool was started on (it runs on that one only).
        self.loop: asyncio.AbstractEventLoop | None = None
        #: Why a worker could not be replaced: every ``acquire`` that finds its slot raises it.
        self.fatal: SandboxError | None = None
        self._isolation = isolation
        self._preload = ",".join(preload)
        self._uid_base = uid_base
        self._python = python or sys.executable
        self._warned = False
        self._procs: dict[int, WorkerProc] = {}
        #: Free workers; a None tells the taker that the pool is closed (or a slot is lost).
        self._idle: asyncio.Queue[WorkerProc | None] = asyncio.Queue()
        self._started: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Spawn the workers; concurrent callers wait for the same start (and its error)."""
        if self.state in _DONE:
            raise SandboxError("the sandbox is closed")
        if self.state is PoolState.NEW:
            self.loop = asyncio.get_running_loop()
            self._started = self.loop.create_future()
            self.state = PoolState.STARTING
            try:
                await self._spawn_all()
            except BaseException as e:
                self._started.set_exception(e)
                self._started.exception()  # retrieved: this caller raises it
                if self.state is PoolState.STARTING:
                    self.state = PoolState.FAILED
                await self._shutdown()
                raise
            self.state = PoolState.RUNNING
            self._started.set_result(None)
        elif asyncio.get_running_loop() is not self.loop:
            raise SandboxError("this Sandbox was started on another event loop")
        assert self._started is not None
        await asyncio.shield(self._started)

    async def _spawn_all(self) -> None:
        procs = await asyncio.gather(*(self.spawn(i) for i in range(self.size)),
                                     return_exceptions=True)
        spawned = [p for p in procs if isinstance(p, WorkerProc)]
        if self.state is not PoolState.STARTING:  # closed meanwhile: these are not wanted
            await asyncio.gather(*(p.stop() for p in spawned), return_exceptions=True)
            raise SandboxError("the sandbox is closed")
        for p in spawned:
            self._procs[p.slot] = p
            self.prepare(p)
            self._idle.put_nowait(p)
        errors = [p for p in procs if isinstance(p, BaseException)]
        if errors:
            raise errors[0]

    async def spawn(self, slot: int) -> WorkerProc:
        """Start one worker process and wait for its ``ready``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": _ROOT, "PYTHONHASHSEED": "0", "MALLOC_ARENA_MAX": "2"}
        cmd = [self._python, "-m", "cirkit.sandbox._worker", "--fd", str(theirs.fileno()),
               "--isolation", self._isolation, "--disk-bytes", str(self.limits.disk_bytes),
               "--uid-base", str(self._uid_base), "--preload", self._preload]
        try:
            popen = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env, cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        finally:
            theirs.close()
        proc = WorkerProc(slot, popen, ours)
        try:
            proc.info = await asyncio.wait_for(asyncio.shield(proc.ready), READY_TIMEOUT_S)
            self._check_fallback(proc.info)
        except BaseException:
            proc.kill()
            if not proc.ready.cancelled():
                proc.ready.exception()  # retrieved: the error raised here says why
            await asyncio.to_thread(popen.wait)
            raise
        return proc

    def _check_fallback(self, info: dict[str, Any]) -> None:
        """Never fall back to the weaker audit hook silently: ``auto`` refuses it unless
        allowed by the environment, and every pool that uses it warns once."""
        if info.get("isolation") != AUDIT_HOOK:
            return
        if self._isolation == "auto" and os.environ.get(ALLOW_AUDIT_HOOK_ENV) != "1":
            raise SandboxError(
                "the kernel refused the sandbox a network namespace, and the only fallback, "
                "a Python-level audit hook, does not isolate native code, processes or files",
                hint="run where user namespaces are allowed (or as root); to accept the weaker "
                     f"audit-hook mode, set {ALLOW_AUDIT_HOOK_ENV}=1 or isolation=audit-hook",
                setting="isolation", env_var=ALLOW_AUDIT_HOOK_ENV)
        if not self._warned:
            self._warned = True
            _log.warning(AUDIT_HOOK_WARNING)
            warnings.warn(AUDIT_HOOK_WARNING, RuntimeWarning, stacklevel=2)

    async def close(self) -> None:
        """Stop every worker (and whatever block is still running); waits for a start in
        progress, which then stops the workers it spawned."""
        if self.state in _DONE:
            return
        starting = self.state is PoolState.STARTING
        self.state = PoolState.CLOSING
        if starting:
            assert self._started is not None
            await asyncio.wait([self._started])
        await self._shutdown()
        self.state = PoolState.CLOSED

    async def _shutdown(self) -> None:
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        # Let them unwind now (a respawn kills its half-started worker): a task left pending
        # would be closed by the garbage collector after its loop, mid-cleanup.
        await asyncio.gather(*tasks, return_exceptions=True)
        procs = list(self._procs.values())
        self._procs.clear()
        await asyncio.gather(*(p.stop() for p in procs), return_exceptions=True)
        for _ in range(self.size + 64):
            self._idle.put_nowait(None)

    # -- what the workers report -------------------------------------------------------------
    def info(self, key: str) -> Any:
        """One field of a worker's ``ready`` message (all workers report the same)."""
        if not self._procs:
            raise SandboxError("the sandbox is not started: await start() or use async with")
        return next(iter(self._procs.values())).info[key]

    @property
    def pids(self) -> tuple[int, ...]:
        # A worker in a PID namespace of its own reports its pid as the host sees it.
        return tuple(int((p.info or {}).get("pid") or p.popen.pid)
                     for p in self._procs.values() if p.alive)

    @property
    def uids(self) -> frozenset[int]:
        return frozenset(p.info["uid"] for p in self._procs.values()
                         if p.info.get("uid") is not None)

    # -- lending -----------------------------------------------------------------------------
    async def acquire(self) -> WorkerProc:
        """A free, live worker (starting the pool first if needed); waits for one."""
        await self.start()
        while True:
            proc = await self._idle.get()
            if proc is None:
                self._idle.put_nowait(None)
                raise self.fatal or SandboxError("the sandbox is closed")
            if proc.alive:
                return proc
            self.release(proc, ok=False)  # died while idle: its slot gets a new worker

    def release(self, proc: WorkerProc, ok: bool) -> None:
        """Take a worker back: ``ok`` and alive, it is free again; else it is replaced."""
        if self.state in _DONE:
            return
        if ok and proc.alive:
            self._idle.put_nowait(proc)
            return
        proc.kill()
        self._procs.pop(proc.slot, None)
        self.background(self._respawn(proc))

    async def _respawn(self, old: WorkerProc) -> None:
        await asyncio.to_thread(old.popen.wait)
        error: BaseException | None = None
        for attempt in range(RESPAWN_TRIES):
            try:
                proc = await self.spawn(old.slot)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                error = e
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            if self.state in _DONE:
                await proc.stop()
                return
            self._procs[proc.slot] = proc
            self.prepare(proc)
            self._idle.put_nowait(proc)
            return
        self.fatal = SandboxError(f"a sandbox worker could not be restarted: {error}")
        self._idle.put_nowait(None)

    def background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task the pool cancels (and waits for) when it closes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- children forked ahead of time -------------------------------------------------------
    @staticmethod
    def _key(lim: Limits) -> Limits:
        return lim.replace(wall_time_s=1.0)  # the wall time is the parent's business

    def prepare(self, proc: WorkerProc) -> None:
        """Fork the worker's next child now, with the default limits, so that a block finds
        it set up and waiting."""
        if self.state in _DONE or not proc.alive or proc.prepared is not None:
            return
        lim = self.limits
        ch = Channel(proc.events, lim.output_bytes)
        proc.send({"op": "run", "limits": lim.to_json(), "persistent": False}, ch.child_fds())
        ch.close_child_ends()
        proc.prepared = (ch, self._key(lim))

    def take_prepared(self, proc: WorkerProc, lim: Limits) -> Channel | None:
        """The worker's waiting child, if it was forked with limits that fit ``lim``."""
        if proc.prepared is not None and proc.prepared[1] == self._key(lim):
            ch, _ = proc.prepared
            proc.prepared = None
            return ch
        return None

    async def unprepare(self, proc: WorkerProc) -> bool:
        """End a prepared child that does not fit; False if the worker did not answer."""
        if proc.prepared is None:
            return True
        ch, _ = proc.prepared
        proc.prepared = None
        proc.send({"op": "kill"})
        gone = await await_exit(proc, ch)
        ch.close()
        return gone
