"""Driving one block to its end: the parent's loop over what the worker and the child report.

``exchange`` sends the code, answers the block's tool calls, enforces the wall time (without
the time its tools took), and turns what it saw into an ``ExecResult``; ``BlockRun`` is what
it knows of the block meanwhile. ``await_exit`` waits for a killed child's exit report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._channel import Channel, Event
from ._limits import Limits
from ._outcome import ToolHandler, notice_of, reason_of, serve_tool
from ._protocol import CODE, DONE, ERR, OUT, REPLY, TOOL, ProtocolError, parse_done
from ._result import ExecResult, ToolCall

__all__ = ["BlockRun", "Outcome", "WorkerLink", "WorkerLost", "await_exit", "exchange"]

BROKE_PROTOCOL = "the code block broke the sandbox protocol"
#: Seconds a killed child gets for its exit report before its worker counts as stuck.
KILL_GRACE_S = 5.0
#: Seconds the pipes get to reach EOF once the child's exit (or its worker's death) is known.
EOF_GRACE_S = 1.0


class WorkerLost(Exception):
    """The worker died before the block showed any sign of running: run it elsewhere."""


class WorkerLink(Protocol):
    events: asyncio.Queue[Event]

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None: ...


class _Alarm:
    """Wakes the block's consumer at a loop time with a "tick" event: one timer handle,
    moved when the deadline moves (cheaper than a ``wait_for`` per event)."""

    __slots__ = ("_handle", "_q", "at", "cid")

    def __init__(self, q: asyncio.Queue[Event], cid: int) -> None:
        self._q, self.cid = q, cid
        self._handle: asyncio.TimerHandle | None = None
        self.at = 0.0

    def set(self, at: float) -> None:
        if self._handle is not None and at == self.at:
            return
        self.cancel()
        self.at = at
        self._handle = asyncio.get_running_loop().call_at(
            at, self._q.put_nowait, ("tick", None, self.cid))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


@dataclass(slots=True, frozen=True)
class Outcome:
    """How a block ended, for the caller: the result, and whether worker and child live on
    (``exited``: the worker reported the child's exit, so it can fork the next one)."""

    result: ExecResult
    worker_ok: bool
    child_alive: bool
    exited: bool


@dataclass(slots=True)
class BlockRun:
    """What the parent knows of one running block, in one place: the clock, the child's
    final report, the worker's exit report, and why the parent stopped it, if it did."""

    t0: float
    #: Loop time when the block's wall time is up (moved on by the time tools take).
    deadline: float
    #: Loop time when waiting ends (after a kill, an exit or a worker's death); None: not yet.
    grace: float | None = None
    #: The error reason the parent decided on (it wins over the child's own report).
    reason: str | None = None
    detail: str | None = None
    #: The child's DONE frame.
    done: dict[str, Any] | None = None
    #: The worker's report that the child exited.
    exited: dict[str, Any] | None = None
    worker_ok: bool = True
    #: The worker died while the child may still be finishing.
    lost: bool = False
    calls: list[ToolCall] = field(default_factory=list)

    def stop(self, w: WorkerLink, now: float, why: str, what: str | None = None) -> None:
        """Kill the child (once) and keep the first reason given."""
        if self.reason is None:
            self.reason, self.detail = why, what
        if self.grace is None:
            w.send({"op": "kill"})
            self.grace = now + KILL_GRACE_S

    def wait_until(self, at: float) -> None:
        """Wait no later than ``at`` (a grace already shorter stays)."""
        if self.grace is None or self.grace > at:
            self.grace = at

    def over(self, ch: Channel, persistent: bool) -> bool:
        """Whether everything the block will report is in."""
        if self.exited is not None and not ch.open and not persistent:
            return True  # the child closed its descriptors at exit and its worker saw it end
        if self.lost and not ch.open:
            return True
        if self.exited is not None and persistent:
            return True
        if persistent and self.done is not None and self.exited is None:
            ch.drain_pipes()
            return True
        return False

    def outcome(self, ch: Channel, limits: Limits, persistent: bool,
                clock: Callable[[], float]) -> Outcome:
        """The block's result from what was seen: reason, output, notices, exit status."""
        done, exited = self.done, self.exited
        if not persistent or exited is not None:
            ch.drain_pipes()
        if self.lost and done is None and self.reason is None:
            self.reason, self.detail = "killed", "the sandbox worker stopped"
        if done is not None and exited is not None and not persistent and \
                self.reason is None and exited.get("code") != done["exit"]:
            # The child's real exit contradicts the DONE frame: the block wrote that frame.
            self.reason, self.detail = "killed", BROKE_PROTOCOL
        error = self.reason or reason_of(done, exited, limits)
        detail = self.detail
        if done is not None and done.get("error") == "setup":
            detail = f"the sandbox could not set up the block: {done.get('detail')}"
        cap = ch.capture
        dropped = sum(cap.dropped.values()) + sum(
            int(x) for x in (done or {}).get("dropped", ()) if isinstance(x, int))
        if error is None and dropped:
            error = "output_limit"
        stdout, stderr = cap.text(OUT), cap.text(ERR)
        output = cap.text()
        notes = [n for n in (notice_of(error, limits, exited, stderr, detail),) if n]
        if dropped:
            notes.append(f"[output truncated: {dropped} more bytes were written than the "
                         f"{limits.output_bytes} kept per stream]")
        for n in notes:
            sep = "" if not stderr or stderr.endswith("\n") else "\n"
            stderr += sep + n + "\n"
            output += ("" if not output or output.endswith("\n") else "\n") + n + "\n"
        code_out: int | None = None
        if exited is not None:
            code_out = exited.get("code", -int(exited.get("signal", 0)))
        elif done is not None and isinstance(done.get("exit"), int):
            code_out = done["exit"]
        result = ExecResult(stdout=stdout, stderr=stderr, error=error,
                            duration_ms=round((clock() - self.t0) * 1000.0, 3),
                            tool_calls=self.calls, output_truncated=bool(dropped),
                            exit_code=code_out, output=output, notice="\n".join(notes) or None)
        alive = persistent and exited is None and self.reason is None and done is not None \
            and done.get("error") in (None, "exception")
        return Outcome(result, self.worker_ok, child_alive=alive, exited=exited is not None)


async def exchange(w: WorkerLink, ch: Channel, code: str, limits: Limits, *,
                   handler: ToolHandler | None, persistent: bool, start: bool) -> Outcome:
    """Run ``code`` on the child behind ``ch`` (forked first when ``start``) to its end."""
    loop = ch.loop
    t0 = loop.time()
    run = BlockRun(t0=t0, deadline=t0 + limits.wall_time_s)
    if start:
        w.send({"op": "run", "limits": limits.to_json(), "persistent": persistent},
               ch.child_fds())
        ch.close_child_ends()
    await ch.send(CODE, code.encode("utf-8", "surrogateescape"))

    alarm = _Alarm(w.events, ch.id)
    try:
        while not run.over(ch, persistent):
            now = loop.time()
            until = run.grace if run.grace is not None else run.deadline
            if now >= until:
                if run.grace is None:
                    run.stop(w, loop.time(), "timeout")
                    continue
                # No exit report after a kill: the worker is stuck.
                run.worker_ok = run.exited is not None
                break
            alarm.set(until)
            kind, data, cid = await w.events.get()
            if kind == "tick" or cid not in (0, ch.id):
                continue  # time to look at the clock, or a late event of an earlier block
            if kind == "started":
                ch.pid = int(data)
            elif kind == "exited":
                if data.get("exited") != ch.pid:
                    continue  # a child of an earlier block
                run.exited = data
                run.wait_until(loop.time() + EOF_GRACE_S)  # the pipes' EOF follows at once
            elif kind == "gone" or kind == "refused":
                if run.done is None and not run.calls and not ch.capture.chunks \
                        and run.reason is None:
                    raise WorkerLost  # nothing of the block was seen: it can run elsewhere
                run.worker_ok = False
                if persistent or run.reason is not None or not ch.open:
                    run.reason = run.reason or "killed"
                    run.detail = run.detail or "the sandbox worker stopped"
                    break
                # The child dies with its worker (parent-death signal), but it may have finished
                # the block first: read what it sent until its pipes close, then judge.
                run.lost = True
                run.grace = loop.time() + EOF_GRACE_S
            elif kind == "bad":
                run.stop(w, loop.time(), "killed", BROKE_PROTOCOL)
            elif kind == "frame":
                fkind, payload = data
                if run.done is not None and not persistent:
                    # A real child sends nothing after its DONE: the first one was forged.
                    run.stop(w, loop.time(), "killed", BROKE_PROTOCOL)
                elif fkind == DONE:
                    try:
                        run.done = parse_done(payload)
                    except ProtocolError:
                        run.stop(w, loop.time(), "killed", BROKE_PROTOCOL)
                elif fkind == TOOL and run.reason is None:
                    paused = loop.time()
                    reply = await serve_tool(payload, run.calls, limits, handler)
                    run.deadline += loop.time() - paused  # tool time does not count
                    await ch.send(REPLY, json.dumps(reply).encode())
    finally:
        alarm.cancel()
    return run.outcome(ch, limits, persistent, loop.time)


async def await_exit(w: WorkerLink, ch: Channel, timeout: float = KILL_GRACE_S) -> bool:
    """Wait for the worker to report that the child behind ``ch`` is gone (after a kill)."""
    alarm = _Alarm(w.events, ch.id)
    alarm.set(ch.loop.time() + timeout)
    try:
        while True:
            kind, data, _ = await w.events.get()
            if kind == "tick" and ch.loop.time() >= alarm.at:
                return False
            if kind == "started":
                ch.pid = int(data)
            elif kind == "exited" and data.get("exited") == ch.pid:
                return True
            elif kind in ("gone", "refused"):
                return False
    finally:
        alarm.cancel()
