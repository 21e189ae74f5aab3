"""The parent side's entry point: an async ``Sandbox`` over a pool of fork-server workers.

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
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from ._limits import DEFAULT_PRELOAD, Limits
from ._outcome import ToolHandler
from ._pool import DEFAULT_UID_BASE, WorkerPool
from ._result import ExecResult
from ._run import FRESH, block_limits, run_block
from ._session import Session

__all__ = ["DEFAULT_UID_BASE", "Sandbox"]

T = TypeVar("T")


class Sandbox:
    """Runs model-written code blocks, isolated, limited, with tools served by the parent.

    ``tool_handler(tool, args)`` answers ``web_search``/``web_visit`` from inside a block
    (``args`` normalised to ``{"query", "num_results"}`` or ``{"url"}``); it may return a str
    or an object with ``.text`` and ``.key`` (a ``recorders.ToolResult``). ``isolation``:
    "auto" (namespaces; where the kernel refuses them the sandbox does not start unless
    ``CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK=1`` allows the weaker audit hook), "netns" (required) or
    "audit-hook" (forced; weaker, and warned about: see docs/concepts/sandbox.md).

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
        self._pool = WorkerPool(size=workers or max(2, (os.cpu_count() or 1) + 1),
                                limits=limits or Limits(), tool_handler=tool_handler,
                                isolation=isolation, preload=preload, uid_base=uid_base,
                                python=python)
        self.persistent = persistent
        self._sync_loop: asyncio.AbstractEventLoop | None = None

    # -- settings (held by the pool, read at each block) --------------------------------------
    @property
    def workers(self) -> int:
        """How many fork servers (blocks that can run at once)."""
        return self._pool.size

    @property
    def limits(self) -> Limits:
        """The blocks' default limits."""
        return self._pool.limits

    @limits.setter
    def limits(self, value: Limits) -> None:
        self._pool.limits = value

    @property
    def tool_handler(self) -> ToolHandler | None:
        """What answers the blocks' tool calls; may be set after the start."""
        return self._pool.tool_handler

    @tool_handler.setter
    def tool_handler(self, value: ToolHandler | None) -> None:
        self._pool.tool_handler = value

    # -- life cycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the workers (done by the first ``run`` too)."""
        await self._pool.start()

    async def close(self) -> None:
        """Stop every worker (and whatever block is still running)."""
        await self._pool.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- what the workers report -------------------------------------------------------------
    @property
    def isolation(self) -> str:
        """"netns" (a network namespace: no network at all) or "audit-hook" (the fallback)."""
        return str(self._pool.info("isolation"))

    @property
    def features(self) -> frozenset[str]:
        """What is in force: netns, mountns (private /tmp), uid (own uid per worker), userns."""
        return frozenset(self._pool.info("features"))

    @property
    def worker_pids(self) -> tuple[int, ...]:
        """The fork servers' pids (each has at most one child waiting for the next block)."""
        return self._pool.pids

    @property
    def warnings(self) -> tuple[str, ...]:
        """Why the isolation is weaker than it could be here, if it is."""
        return tuple(self._pool.info("warnings"))

    @property
    def uids(self) -> frozenset[int]:
        """The uids blocks run under now (empty when not root): every process of these
        uids belongs to a block."""
        return self._pool.uids

    # -- running -----------------------------------------------------------------------------
    async def run(self, code: str, *, limits: Limits | None = None,
                  timeout: float | None = None) -> ExecResult:
        """Run one block in a fresh child; waits for a free worker first."""
        lim = block_limits(self._pool.limits, limits, timeout)
        return await run_block(self._pool, code, lim, retry=FRESH)

    def session(self, persistent: bool | None = None) -> Session:
        """A rollout's sequence of blocks; ``persistent`` keeps variables between them."""
        return Session(self._pool, self.persistent if persistent is None else persistent)

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
            if self._pool.loop is not None:
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
