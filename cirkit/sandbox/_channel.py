"""The parent's side of one block: its descriptors, its capped output, the exchange loop.

A block has three descriptors: the frame socket (code in; Python-level output, tool calls and
the final status out) and two pipes for what reaches fds 1 and 2 directly (C code,
subprocesses). All are read by event-loop callbacks, so many blocks run in one loop; output
beyond the cap is read and dropped, never buffered. ``exchange`` drives one block to its end.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from typing import Any, Protocol

from ._limits import Limits
from ._outcome import ToolHandler, notice_of, reason_of, serve_tool
from ._protocol import CODE, DONE, ERR, OUT, REPLY, TOOL, FrameBuffer, ProtocolError, frame
from ._result import ExecResult, ToolCall

__all__ = [
    "Channel", "Event", "Outcome", "ToolHandler", "WorkerLink", "WorkerLost", "await_exit",
    "exchange",
]

#: (kind, data, channel id); worker messages use channel id 0.
Event = tuple[str, Any, int]
READ = 1 << 18
_ids = itertools.count(1)


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


class _Capture:
    """Both streams of one block in write order, each capped at ``cap`` bytes."""

    __slots__ = ("cap", "chunks", "dropped", "kept")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = {OUT: 0, ERR: 0}
        self.dropped = {OUT: 0, ERR: 0}
        self.chunks: list[tuple[bytes, bytearray]] = []

    def add(self, kind: bytes, data: bytes) -> None:
        room = self.cap - self.kept[kind]
        if room < len(data):
            self.dropped[kind] += len(data) - max(room, 0)
            data = data[:max(room, 0)]
            if not data:
                return
        self.kept[kind] += len(data)
        if self.chunks and self.chunks[-1][0] == kind:
            self.chunks[-1][1].extend(data)
        else:
            self.chunks.append((kind, bytearray(data)))

    def text(self, kind: bytes | None = None) -> str:
        return "".join(bytes(c).decode("utf-8", "replace") for k, c in self.chunks
                       if kind is None or k == kind)


class Channel:
    """A block's frame socket and output pipes, read by callbacks on the running loop."""

    def __init__(self, events: asyncio.Queue[Event], cap: int) -> None:
        self.id = next(_ids)
        self.pid = 0
        self.loop = asyncio.get_running_loop()
        self.events = events
        self.capture = _Capture(cap)
        self.frames = FrameBuffer(OUT + ERR + TOOL + DONE)
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self._child = [child.detach(), out_w, err_w]
        self._fds = {"mux": self.sock.fileno(), "out": out_r, "err": err_r}
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        self.open = set(self._fds)
        self.loop.add_reader(self.sock.fileno(), self._on_mux)
        self.loop.add_reader(out_r, self._on_pipe, "out", OUT)
        self.loop.add_reader(err_r, self._on_pipe, "err", ERR)

    def reset(self, cap: int) -> None:
        """A fresh capture for the next block of a persistent child."""
        self.capture = _Capture(cap)

    def child_fds(self) -> list[int]:
        return list(self._child)

    def close_child_ends(self) -> None:
        for fd in self._child:
            os.close(fd)
        self._child = []

    def _eof(self, name: str) -> None:
        if name in self.open:
            self.open.discard(name)
            self.loop.remove_reader(self._fds[name])
            self.events.put_nowait(("eof", name, self.id))

    def _on_mux(self) -> None:
        try:
            data = self.sock.recv(READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._eof("mux")
            return
        try:
            frames = self.frames.feed(data)
        except ProtocolError as e:
            self.events.put_nowait(("bad", str(e), self.id))
            self._eof("mux")
            return
        for kind, payload in frames:
            if kind in (OUT, ERR):
                self.capture.add(kind, payload)
            else:
                self.events.put_nowait(("frame", (kind, payload), self.id))

    def _on_pipe(self, name: str, kind: bytes) -> None:
        try:
            data = os.read(self._fds[name], READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.capture.add(kind, data)
        else:
            self._eof(name)

    def drain_pipes(self) -> None:
        """Read what the pipes hold now (a persistent child keeps them open)."""
        for name, kind in (("out", OUT), ("err", ERR)):
            while name in self.open:
                try:
                    data = os.read(self._fds[name], READ)
                except (BlockingIOError, InterruptedError):
                    break
                if not data:
                    self._eof(name)
                    break
                self.capture.add(kind, data)

    async def send(self, kind: bytes, payload: bytes) -> bool:
        try:
            await self.loop.sock_sendall(self.sock, frame(kind, payload))
        except OSError:
            return False
        return True

    def close(self) -> None:
        for name in list(self.open):
            self.loop.remove_reader(self._fds[name])
        self.open.clear()
        self.sock.close()
        for name in ("out", "err"):
            os.close(self._fds[name])
        if self._child:
            self.close_child_ends()


class Outcome:
    """How a block ended, for the caller: the result, and whether worker and child live on."""

    __slots__ = ("child_alive", "exited", "result", "worker_ok")

    def __init__(self, result: ExecResult, worker_ok: bool, child_alive: bool,
                 exited: bool) -> None:
        self.result, self.worker_ok, self.child_alive = result, worker_ok, child_alive
        self.exited = exited


async def exchange(w: WorkerLink, ch: Channel, code: str, limits: Limits, *,
                   handler: ToolHandler | None, persistent: bool, start: bool) -> Outcome:
    """Run ``code`` on the child behind ``ch`` (forked first when ``start``) to its end."""
    loop = ch.loop
    t0 = loop.time()
    deadline = t0 + limits.wall_time_s
    grace: float | None = None
    reason: str | None = None
    detail: str | None = None
    done: dict[str, Any] | None = None
    exited: dict[str, Any] | None = None
    worker_ok = True
    calls: list[ToolCall] = []
    if start:
        w.send({"op": "run", "limits": limits.to_json(), "persistent": persistent},
               ch.child_fds())
        ch.close_child_ends()
    await ch.send(CODE, code.encode("utf-8", "surrogateescape"))

    def stop(why: str, what: str | None = None) -> None:
        nonlocal reason, detail, grace
        if reason is None:
            reason, detail = why, what
        if grace is None:
            w.send({"op": "kill"})
            grace = loop.time() + 5.0

    lost = False  # the worker died while the child may still be finishing
    alarm = _Alarm(w.events, ch.id)
    try:
        while True:
            if (exited is not None or done is not None) and not ch.open and not persistent:
                break  # the child closed its descriptors at exit: its status came in DONE
            if lost and not ch.open:
                break
            if exited is not None and persistent:
                break
            if persistent and done is not None and exited is None:
                ch.drain_pipes()
                break
            now = loop.time()
            until = grace if grace is not None else deadline
            if now >= until:
                if grace is None:
                    stop("timeout")
                    continue
                worker_ok = exited is not None  # no exit report after a kill: the worker is stuck
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
                exited = data
                if grace is None or grace > loop.time() + 1.0:
                    grace = loop.time() + 1.0  # the pipes' EOF follows the exit at once
            elif kind == "gone" or kind == "refused":
                if done is None and not calls and not ch.capture.chunks and reason is None:
                    raise WorkerLost  # nothing of the block was seen: it can run elsewhere
                worker_ok = False
                if persistent or reason is not None or not ch.open:
                    reason, detail = reason or "killed", detail or "the sandbox worker stopped"
                    break
                # The child dies with its worker (parent-death signal), but it may have finished
                # the block first: read what it sent until its pipes close, then judge.
                lost = True
                grace = loop.time() + 1.0
            elif kind == "bad":
                stop("killed", "the code block broke the sandbox protocol")
            elif kind == "frame":
                fkind, payload = data
                if fkind == DONE and done is None:
                    try:
                        done = dict(json.loads(payload))
                    except (ValueError, TypeError):
                        stop("killed", "the code block broke the sandbox protocol")
                elif fkind == TOOL and reason is None:
                    paused = loop.time()
                    reply = await serve_tool(payload, calls, limits, handler)
                    deadline += loop.time() - paused  # tool time does not count: replay == live
                    await ch.send(REPLY, json.dumps(reply).encode())
    finally:
        alarm.cancel()
    if not persistent or exited is not None:
        ch.drain_pipes()

    if lost and done is None and reason is None:
        reason, detail = "killed", "the sandbox worker stopped"
    error = reason or reason_of(done, exited, limits)
    if done is not None and done.get("error") == "setup":
        detail = f"the sandbox could not set up the block: {done.get('detail')}"
    cap = ch.capture
    dropped = sum(cap.dropped.values()) + sum(int(x) for x in (done or {}).get("dropped", ())
                                              if isinstance(x, int))
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
    if done is not None and isinstance(done.get("exit"), int):
        code_out = done["exit"]
    elif exited is not None:
        code_out = exited.get("code", -int(exited.get("signal", 0)))
    result = ExecResult(stdout=stdout, stderr=stderr, error=error,
                        duration_ms=round((loop.time() - t0) * 1000.0, 3), tool_calls=calls,
                        output_truncated=bool(dropped), exit_code=code_out, output=output,
                        notice="\n".join(notes) or None)
    alive = persistent and exited is None and reason is None and done is not None and \
        done.get("error") in (None, "exception")
    return Outcome(result, worker_ok, child_alive=alive, exited=exited is not None)


async def await_exit(w: WorkerLink, ch: Channel, timeout: float = 5.0) -> bool:
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
