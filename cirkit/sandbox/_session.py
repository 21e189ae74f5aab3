"""A rollout's sequence of blocks, persistent (one child keeps its variables) or not."""

from __future__ import annotations

import asyncio
from types import TracebackType

from ._limits import Limits
from ._pool import WorkerPool
from ._result import ExecResult
from ._run import FRESH, PERSISTENT, Lease, block_limits, end_child, run_block

__all__ = ["Session"]


class Session:
    """Blocks of one rollout. Persistent: one child keeps the variables of earlier blocks
    (restarted, empty, after a block that timed out or crashed it); it holds one worker until
    closed. Not persistent: each block runs in a fresh child from the pool.

    Made by ``Sandbox.session()``; it holds the sandbox's worker pool, not the sandbox."""

    def __init__(self, pool: WorkerPool, persistent: bool) -> None:
        self.persistent = persistent
        self._pool = pool
        self._lease = Lease(pool, persistent=True)
        self._lock = asyncio.Lock()

    async def run(self, code: str, *, limits: Limits | None = None,
                  timeout: float | None = None) -> ExecResult:
        lim = block_limits(self._pool.limits, limits, timeout)
        if not self.persistent:
            return await run_block(self._pool, code, lim, retry=FRESH)
        async with self._lock:
            return await run_block(self._pool, code, lim, retry=PERSISTENT, lease=self._lease)

    async def close(self) -> None:
        """End the child and give the worker back to the pool."""
        async with self._lock:
            await end_child(self._lease)
            self._lease.drop(ok=True)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
