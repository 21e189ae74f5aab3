"""A rollout's sequence of blocks, persistent (one child keeps its variables) or not."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import TYPE_CHECKING

from ._channel import Channel, WorkerLost, await_exit, exchange
from ._limits import Limits
from ._proc import WorkerProc
from ._result import ExecResult, SandboxError

if TYPE_CHECKING:
    from ._pool import Sandbox

__all__ = ["Session"]


class Session:
    """Blocks of one rollout. Persistent: one child keeps the variables of earlier blocks
    (restarted, empty, after a block that timed out or crashed it); it holds one worker until
    closed. Not persistent: each block runs in a fresh child from the pool."""

    def __init__(self, sandbox: Sandbox, persistent: bool) -> None:
        self.sandbox = sandbox
        self.persistent = persistent
        self._proc: WorkerProc | None = None
        self._ch: Channel | None = None
        self._lock = asyncio.Lock()

    async def run(self, code: str, *, limits: Limits | None = None,
                  timeout: float | None = None) -> ExecResult:
        if not self.persistent:
            return await self.sandbox.run(code, limits=limits, timeout=timeout)
        lim = self.sandbox._limits(limits, timeout)
        async with self._lock:
            for attempt in range(3):
                try:
                    return await self._run_once(code, lim)
                except WorkerLost:
                    if attempt == 2:
                        raise SandboxError("sandbox workers keep dying") from None
            raise AssertionError("unreachable")

    async def _run_once(self, code: str, lim: Limits) -> ExecResult:
        if self._proc is None:
            proc = await self.sandbox._acquire()
            if not await self.sandbox._unprepare(proc):
                self.sandbox._release(proc, False)
                raise SandboxError("a sandbox worker stopped answering")
            self._proc = proc
        proc = self._proc
        start = self._ch is None
        if self._ch is None:
            self._ch = Channel(proc.events, lim.output_bytes)
        ch = self._ch
        ch.reset(lim.output_bytes)
        try:
            out = await exchange(proc, ch, code, lim, handler=self.sandbox.tool_handler,
                                 persistent=True, start=start)
        except BaseException:
            await self._drop(ok=False)
            raise
        if not out.worker_ok:
            await self._drop(ok=False)
        elif not out.child_alive:
            await self._end_child(exited=out.exited)
        return out.result

    async def _end_child(self, exited: bool = False) -> None:
        """Make sure the child is gone and its exit reported, so the worker can fork again."""
        proc, ch = self._proc, self._ch
        self._ch = None
        if proc is None or ch is None:
            return
        gone = exited
        if not gone:
            proc.send({"op": "kill"})
            gone = await await_exit(proc, ch)
        ch.close()
        if not gone:
            await self._drop(ok=False)

    async def _drop(self, ok: bool) -> None:
        if self._ch is not None:
            self._ch.close()
            self._ch = None
        if self._proc is not None:
            if ok:
                self.sandbox._prepare(self._proc, self.sandbox.limits)
            self.sandbox._release(self._proc, ok)
            self._proc = None

    async def close(self) -> None:
        """End the child and give the worker back to the pool."""
        async with self._lock:
            await self._end_child()
            await self._drop(ok=True)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
