"""The block's stdout and stderr: text streams whose bytes become frames on one socket.

Both streams share the socket (fd 3) with the tool calls, so the parent sees output in the
order it was written. At most ``cap`` bytes per stream are sent; the rest is counted and
dropped here already (the parent re-checks: a block can write to fd 3 itself).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from typing import Any

from ._protocol import DONE, ERR, HEADER, OUT, frame

__all__ = ["CHUNK", "EAGER", "EXIT_PARENT_GONE", "MUX_FD", "Mux", "Text", "make_stream"]

MUX_FD = 3
CHUNK = 64 * 1024
#: Line-buffered up to this many bytes per stream, block-buffered after.
EAGER = 64 * 1024
#: Exit status of a child whose parent went away while it waited for a frame.
EXIT_PARENT_GONE = 70


class Mux:
    """The block's end of the frame socket, shared by both streams and the tool calls."""

    def __init__(self, cap: int) -> None:
        self.lock = threading.RLock()
        self.cap = cap
        self.sent = {OUT: 0, ERR: 0}
        self.dropped = {OUT: 0, ERR: 0}
        self.streams: dict[bytes, Text] = {}

    def reset(self) -> None:
        self.flush()
        self.sent = {OUT: 0, ERR: 0}
        self.dropped = {OUT: 0, ERR: 0}
        for st in self.streams.values():
            st.eager = True

    def done(self, error: str | None, status: int) -> None:
        self.flush()
        self.send(DONE, json.dumps({"error": error, "exit": status,
                                    "dropped": [self.dropped[OUT], self.dropped[ERR]]}).encode())

    def send(self, kind: bytes, payload: bytes) -> None:
        data = memoryview(frame(kind, payload))
        with self.lock:
            while data:
                n = os.write(MUX_FD, data)
                data = data[n:]

    def recv(self) -> tuple[bytes, bytes]:
        head = self._read(HEADER.size)
        kind, size = HEADER.unpack(head)
        return kind, self._read(size)

    def _read(self, n: int) -> bytes:
        parts = []
        while n:
            b = os.read(MUX_FD, min(n, 1 << 20))
            if not b:  # the parent is gone: nothing left to do
                os._exit(EXIT_PARENT_GONE)
            parts.append(b)
            n -= len(b)
        return b"".join(parts)

    def output(self, kind: bytes, data: memoryview) -> None:
        """Send output, keeping at most ``cap`` bytes per stream (the parent re-checks)."""
        with self.lock:
            other = self.streams.get(ERR if kind == OUT else OUT)
            if other is not None:
                with contextlib.suppress(Exception):
                    other.flush()  # what the other stream buffered was written first
            room = self.cap - self.sent[kind]
            if room < len(data):
                self.dropped[kind] += len(data) - max(room, 0)
                data = data[:max(room, 0)]
            self.sent[kind] += len(data)
            if self.sent[kind] + self.dropped[kind] > EAGER and kind in self.streams:
                self.streams[kind].eager = False
            for i in range(0, len(data), CHUNK):
                self.send(kind, bytes(data[i:i + CHUNK]))

    def flush(self) -> None:
        for s in self.streams.values():
            with contextlib.suppress(Exception):
                s.flush()


class _Raw(io.RawIOBase):
    def __init__(self, mux: Mux, kind: bytes, fd: int) -> None:
        self._mux, self._kind, self._fd = mux, kind, fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, b: Any) -> int:
        data = memoryview(b).cast("B")  # no copy: the block may write 100 MB at once
        self._mux.output(self._kind, data)
        return len(data)


class Text(io.TextIOWrapper):
    """Line-buffered while the block has written little (so a block that is stopped still
    shows what it printed), block-buffered after EAGER bytes (so a print loop stays fast)."""

    eager = True

    def write(self, s: str) -> int:
        n = super().write(s)
        if self.eager and "\n" in s:
            self.flush()
        return n


def make_stream(mux: Mux, kind: bytes, fd: int, errors: str) -> Text:
    buf = io.BufferedWriter(_Raw(mux, kind, fd), buffer_size=CHUNK)
    s = Text(buf, encoding="utf-8", errors=errors)
    mux.streams[kind] = s
    return s
