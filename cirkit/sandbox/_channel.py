"""The parent's side of one block's descriptors: the frame socket, the output pipes, the capture.

A block has three descriptors: the frame socket (code in; Python-level output, tool calls and
the final status out) and two pipes for what reaches fds 1 and 2 directly (C code,
subprocesses). All are read by event-loop callbacks, so many blocks run in one loop; output
beyond the cap is read and dropped, never buffered. ``_exchange.exchange`` drives a block.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
from typing import Any

from ._protocol import DONE, ERR, OUT, TOOL, FrameBuffer, ProtocolError, frame

__all__ = ["Channel", "Event"]

#: (kind, data, channel id); worker messages use channel id 0.
Event = tuple[str, Any, int]
READ = 1 << 18
_ids = itertools.count(1)


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
