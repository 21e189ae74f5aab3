"""Running one block on a pool's worker: the one path ``Sandbox.run`` and ``Session.run`` share.

A block runs on a :class:`Lease`: a worker taken from the pool and the child that runs the
block. A fresh lease per block gives a fresh child (the worker's prepared one when its limits
fit) and goes back after the block; a persistent lease (a session's) keeps its worker and
child, and so the block's variables, from one block to the next. What happens when the worker
dies before the block started is the caller's :class:`Retry` policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._channel import Channel
from ._exchange import KILL_GRACE_S, WorkerLost, await_exit, exchange
from ._limits import Limits
from ._pool import WorkerPool
from ._proc import WorkerProc
from ._result import ExecResult, SandboxError

__all__ = ["FRESH", "PERSISTENT", "Lease", "Retry", "block_limits", "end_child", "run_block"]

#: Seconds a child that reported its block done gets to exit before it is killed.
EXIT_WAIT_S = 2.0


@dataclass(slots=True, frozen=True)
class Retry:
    """How a block whose worker died before it started (nothing of it was seen) is tried
    again on another worker: up to ``attempts`` runs in all. When the last is lost too, the
    caller gets a ``SandboxError(give_up)``, or the internal ``WorkerLost`` when ``give_up``
    is None."""

    attempts: int
    give_up: str | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("Retry.attempts must be at least 1")


#: ``Sandbox.run`` and a non-persistent session.
FRESH = Retry(attempts=3)
#: A persistent session (its child is new after a loss anyway).
PERSISTENT = Retry(attempts=3, give_up="sandbox workers keep dying")


@dataclass(slots=True)
class Lease:
    """The worker a block runs on and the channel to the child that runs it (None: the next
    block forks one). ``persistent``: both are kept between blocks; otherwise the worker goes
    back to the pool after one block."""

    pool: WorkerPool
    persistent: bool
    proc: WorkerProc | None = None
    ch: Channel | None = None

    def drop(self, ok: bool) -> None:
        """Close the channel and give the worker back: ``ok``, with its next child forked
        ahead; otherwise to be replaced."""
        if self.ch is not None:
            self.ch.close()
            self.ch = None
        if self.proc is not None:
            if ok:
                self.pool.prepare(self.proc)
            self.pool.release(self.proc, ok)
            self.proc = None


def block_limits(default: Limits, limits: Limits | None, timeout: float | None) -> Limits:
    """One block's limits: ``limits`` or the default, with ``timeout`` as its wall time."""
    lim = limits or default
    return lim.replace(wall_time_s=timeout) if timeout is not None else lim


async def run_block(pool: WorkerPool, code: str, lim: Limits, *, retry: Retry,
                    lease: Lease | None = None) -> ExecResult:
    """Run ``code`` on ``lease`` (a persistent one), or on a fresh lease per attempt."""
    for attempt in range(1, retry.attempts + 1):
        try:
            return await _run_once(Lease(pool, persistent=False) if lease is None else lease,
                                   code, lim)
        except WorkerLost:
            if attempt < retry.attempts:
                continue  # that worker died before the block started: it is being replaced
            if retry.give_up is None:
                raise
            raise SandboxError(retry.give_up) from None
    raise AssertionError("unreachable: Retry.attempts >= 1")


async def _run_once(lease: Lease, code: str, lim: Limits) -> ExecResult:
    pool = lease.pool
    if lease.proc is None:
        proc = await pool.acquire()
        try:
            ch = None if lease.persistent else pool.take_prepared(proc, lim)
            if ch is None and not await pool.unprepare(proc):
                raise SandboxError("a sandbox worker stopped answering")
        except BaseException:
            pool.release(proc, False)
            raise
        lease.proc, lease.ch = proc, ch
    proc = lease.proc
    start = lease.ch is None
    try:
        if lease.ch is None:
            lease.ch = Channel(proc.events, lim.output_bytes)
        elif lease.persistent:
            lease.ch.reset(lim.output_bytes)
        out = await exchange(proc, lease.ch, code, lim, handler=pool.tool_handler,
                             persistent=lease.persistent, start=start)
    except BaseException:
        lease.drop(ok=False)
        raise
    if not out.worker_ok:
        lease.drop(ok=False)
    elif lease.persistent:
        if not out.child_alive:
            await end_child(lease, exited=out.exited)
    elif out.exited:
        lease.drop(ok=True)
    else:
        ch, lease.ch, lease.proc = lease.ch, None, None
        pool.background(_finish(pool, proc, ch))
    return out.result


async def _finish(pool: WorkerPool, proc: WorkerProc, ch: Channel) -> None:
    """After a fresh block's result: wait for its child's exit report, then reuse the worker."""
    gone = await await_exit(proc, ch, EXIT_WAIT_S)
    if not gone and proc.alive:  # it claimed to be done but lives on: stop it
        proc.send({"op": "kill"})
        gone = await await_exit(proc, ch, KILL_GRACE_S)
    ch.close()
    if gone:
        pool.prepare(proc)
    pool.release(proc, gone)


async def end_child(lease: Lease, exited: bool = False) -> None:
    """End a persistent lease's child and make sure its exit is reported, so the worker can
    fork the next one; a worker that does not report it is given back to be replaced."""
    proc, ch = lease.proc, lease.ch
    lease.ch = None
    if proc is None or ch is None:
        return
    gone = exited
    if not gone:
        proc.send({"op": "kill"})
        gone = await await_exit(proc, ch)
    ch.close()
    if not gone:
        lease.drop(ok=False)
