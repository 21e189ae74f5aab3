"""The parent side: a pool of fork-server workers behind an async ``Sandbox``.

    async with Sandbox(workers=4, tool_handler=handler) as sb:
        result = await sb.run("print(web_search('night watch', 3))")

Each ``run`` waits for a free worker, which forks a fresh child for the block, so nothing
leaks between blocks; ``session(persistent=True)`` keeps one child (and its variables) for a
sequence of blocks instead. A worker that dies, stops answering or breaks the protocol is
killed and replaced; a block that hits a limit only loses its own child.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._channel import Channel, ToolHandler, WorkerLost, await_exit, exchange
from ._isolation import AUDIT_HOOK, NETNS
from ._limits import DEFAULT_PRELOAD, Limits
from ._proc import WorkerProc
from ._result import ExecResult, SandboxError
from ._session import Session

__all__ = ["DEFAULT_UID_BASE", "Sandbox"]

#: First of the uids the blocks run under when the parent is root (one per worker, held by a
#: lock file, so concurrent sandboxes on one machine never share one).
DEFAULT_UID_BASE = 1_900_000_000
_ROOT = str(Path(__file__).resolve().parents[2])
T = TypeVar("T")


class Sandbox:
    """Runs model-written code blocks, isolated, limited, with tools served by the parent.

    ``tool_handler(tool, args)`` answers ``web_search``/``web_visit`` from inside a block
    (``args`` normalised to ``{"query", "num_results"}`` or ``{"url"}``); it may return a str
    or an object with ``.text`` and ``.key`` (a ``recorders.ToolResult``). ``isolation``:
    "auto" (a network namespace where the kernel allows it, else the audit hook), "netns"
    (required) or "audit-hook" (forced, e.g. to test the fallback).

    ``workers``: fork servers, i.e. blocks that can run at once (default: CPUs + 1). A block
    holds its worker while the parent answers its tool calls, so with live (slow) tools size
    it to the number of blocks in flight; callers beyond that wait for a free worker.
    ``persistent``: the default of :meth:`session`. ``preload``: modules every worker imports
    once. ``uid_base``: first of the uids blocks run under when the parent is root.
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        limits: Limits | None = None,
        tool_handler: ToolHandler | None = None,
        persistent: bool = False,
        isolation: str = "auto",
        preload: Sequence[str] = DEFAULT_PRELOAD,
        uid_base: int = DEFAULT_UID_BASE,
        python: str | None = None,
    ) -> None:
        if isolation not in ("auto", NETNS, AUDIT_HOOK):
            raise ValueError(f"isolation must be auto, {NETNS} or {AUDIT_HOOK}, not {isolation!r}")
        self.workers = workers or max(2, (os.cpu_count() or 1) + 1)
        self.limits = limits or Limits()
        self.tool_handler = tool_handler
        self.persistent = persistent
        self._isolation_wanted = isolation
        self._preload = ",".join(preload)
        self._uid_base = uid_base
        self._python = python or sys.executable
        self._procs: dict[int, WorkerProc] = {}
        self._idle: asyncio.Queue[WorkerProc | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sync_loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fatal: SandboxError | None = None
        self._closed = False
        self._starting: asyncio.Future[None] | None = None

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the workers (done by the first ``run`` too)."""
        if self._closed:
            raise SandboxError("the sandbox is closed")
        if self._starting is None:
            self._loop = asyncio.get_running_loop()
            self._starting = self._loop.create_future()
            self._idle = asyncio.Queue()
            try:
                procs = await asyncio.gather(*(self._spawn(i) for i in range(self.workers)),
                                             return_exceptions=True)
                errors = [p for p in procs if isinstance(p, BaseException)]
                for p in procs:
                    if isinstance(p, WorkerProc):
                        self._procs[p.slot] = p
                        self._prepare(p, self.limits)
                        self._idle.put_nowait(p)
                if errors:
                    raise errors[0]
            except BaseException as e:
                self._starting.set_exception(e)
                self._starting.exception()  # retrieved: this caller raises it
                await self._shutdown()
                raise
            self._starting.set_result(None)
        elif asyncio.get_running_loop() is not self._loop:
            raise SandboxError("this Sandbox was started on another event loop")
        await asyncio.shield(self._starting)

    async def _spawn(self, slot: int) -> WorkerProc:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": _ROOT, "PYTHONHASHSEED": "0", "MALLOC_ARENA_MAX": "2"}
        cmd = [self._python, "-m", "cirkit.sandbox._worker", "--fd", str(theirs.fileno()),
               "--isolation", self._isolation_wanted, "--disk-bytes", str(self.limits.disk_bytes),
               "--uid-base", str(self._uid_base), "--preload", self._preload]
        try:
            popen = subprocess.Popen(cmd, pass_fds=(theirs.fileno(),), env=env, cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     start_new_session=True)
        finally:
            theirs.close()
        proc = WorkerProc(slot, popen, ours)
        try:
            proc.info = await asyncio.wait_for(asyncio.shield(proc.ready), 60.0)
        except BaseException:
            proc.kill()
            if not proc.ready.cancelled():
                proc.ready.exception()  # retrieved: the error raised here says why
            await asyncio.to_thread(popen.wait)
            raise
        return proc

    async def close(self) -> None:
        """Stop every worker (and whatever block is still running)."""
        if self._closed:
            return
        self._closed = True
        await self._shutdown()

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
        if self._idle is not None:
            for _ in range(self.workers + 64):
                self._idle.put_nowait(None)

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- what the workers report -------------------------------------------------------------
    def _info(self, key: str) -> Any:
        if not self._procs:
            raise SandboxError("the sandbox is not started: await start() or use async with")
        return next(iter(self._procs.values())).info[key]

    @property
    def isolation(self) -> str:
        """"netns" (a network namespace: no network at all) or "audit-hook" (the fallback)."""
        return str(self._info("isolation"))

    @property
    def features(self) -> frozenset[str]:
        """What is in force: netns, mountns (private /tmp), uid (own uid per worker), userns."""
        return frozenset(self._info("features"))

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The fork servers' pids (each has at most one child waiting for the next block)."""
        return tuple(p.popen.pid for p in self._procs.values() if p.alive)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why the isolation is weaker than it could be here, if it is."""
        return tuple(self._info("warnings"))

    @property
    def uids(self) -> frozenset[int]:
        """The uids blocks run under now (empty when not root): every process of these
        uids belongs to a block."""
        return frozenset(p.info["uid"] for p in self._procs.values()
                         if p.info.get("uid") is not None)

    # -- the pool ----------------------------------------------------------------------------
    async def _acquire(self) -> WorkerProc:
        await self.start()
        assert self._idle is not None
        while True:
            proc = await self._idle.get()
            if proc is None:
                self._idle.put_nowait(None)
                raise self._fatal or SandboxError("the sandbox is closed")
            if proc.alive:
                return proc

    def _release(self, proc: WorkerProc, ok: bool) -> None:
        if self._closed:
            return
        if ok and proc.alive:
            assert self._idle is not None
            self._idle.put_nowait(proc)
            return
        proc.kill()
        self._procs.pop(proc.slot, None)
        self._background(self._respawn(proc))

    async def _respawn(self, old: WorkerProc) -> None:
        await asyncio.to_thread(old.popen.wait)
        error: BaseException | None = None
        for attempt in range(3):
            try:
                proc = await self._spawn(old.slot)
            except asyncio.CancelledError:
                raise
            except BaseException as e:
                error = e
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            if self._closed:
                await proc.stop()
                return
            self._procs[proc.slot] = proc
            self._prepare(proc, self.limits)
            assert self._idle is not None
            self._idle.put_nowait(proc)
            return
        self._fatal = SandboxError(f"a sandbox worker could not be restarted: {error}")
        assert self._idle is not None
        self._idle.put_nowait(None)

    # -- running -----------------------------------------------------------------------------
    def _limits(self, limits: Limits | None, timeout: float | None) -> Limits:
        lim = limits or self.limits
        return lim.replace(wall_time_s=timeout) if timeout is not None else lim

    @staticmethod
    def _key(lim: Limits) -> Limits:
        return lim.replace(wall_time_s=1.0)  # the wall time is the parent's business

    def _prepare(self, proc: WorkerProc, lim: Limits) -> None:
        """Fork the worker's next child now, so that a block finds it set up and waiting."""
        if self._closed or not proc.alive or proc.prepared is not None:
            return
        ch = Channel(proc.events, lim.output_bytes)
        proc.send({"op": "run", "limits": lim.to_json(), "persistent": False}, ch.child_fds())
        ch.close_child_ends()
        proc.prepared = (ch, self._key(lim))

    async def _unprepare(self, proc: WorkerProc) -> bool:
        """End a prepared child that does not fit; False if the worker did not answer."""
        if proc.prepared is None:
            return True
        ch, _ = proc.prepared
        proc.prepared = None
        proc.send({"op": "kill"})
        gone = await await_exit(proc, ch)
        ch.close()
        return gone

    async def run(self, code: str, *, limits: Limits | None = None,
                  timeout: float | None = None) -> ExecResult:
        """Run one block in a fresh child; waits for a free worker first."""
        lim = self._limits(limits, timeout)
        for _ in range(2):
            try:
                return await self._run_once(code, lim)
            except WorkerLost:
                continue  # that worker died before the block started: it is being replaced
        return await self._run_once(code, lim)

    async def _run_once(self, code: str, lim: Limits) -> ExecResult:
        proc = await self._acquire()
        ch: Channel | None = None
        try:
            start = True
            if proc.prepared is not None and proc.prepared[1] == self._key(lim):
                ch, _ = proc.prepared
                proc.prepared = None
                start = False
            elif not await self._unprepare(proc):
                raise SandboxError("a sandbox worker stopped answering")
            if ch is None:
                ch = Channel(proc.events, lim.output_bytes)
            out = await exchange(proc, ch, code, lim, handler=self.tool_handler,
                                 persistent=False, start=start)
        except BaseException:
            if ch is not None:
                ch.close()
            self._release(proc, False)
            raise
        if not out.worker_ok:
            ch.close()
            self._release(proc, False)
        elif out.exited:
            ch.close()
            self._prepare(proc, self.limits)
            self._release(proc, True)
        else:
            self._background(self._finish(proc, ch))
        return out.result

    async def _finish(self, proc: WorkerProc, ch: Channel) -> None:
        """After a block's result: wait for its child's exit report, then reuse the worker."""
        gone = await await_exit(proc, ch, 2.0)
        if not gone and proc.alive:  # it claimed to be done but lives on: stop it
            proc.send({"op": "kill"})
            gone = await await_exit(proc, ch, 5.0)
        ch.close()
        if gone:
            self._prepare(proc, self.limits)
        self._release(proc, gone)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def session(self, persistent: bool | None = None) -> Session:
        """A rollout's sequence of blocks; ``persistent`` keeps variables between them."""
        return Session(self, self.persistent if persistent is None else persistent)

    # -- sync wrappers -----------------------------------------------------------------------
    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coro.close()
            raise RuntimeError("inside an event loop: use `await` instead of the *_sync method")
        if self._sync_loop is None:
            if self._loop is not None:
                coro.close()
                raise RuntimeError("this Sandbox runs on an event loop: use `await`")
            self._sync_loop = asyncio.new_event_loop()
        return self._sync_loop.run_until_complete(coro)

    def start_sync(self) -> None:
        self._sync(self.start())

    def run_sync(self, code: str, *, limits: Limits | None = None,
                 timeout: float | None = None) -> ExecResult:
        """``run`` for scripts without an event loop."""
        return self._sync(self.run(code, limits=limits, timeout=timeout))

    def close_sync(self) -> None:
        if self._sync_loop is None:
            return
        self._sync(self.close())
        self._sync_loop.close()

    def __enter__(self) -> Sandbox:
        self.start_sync()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close_sync()
