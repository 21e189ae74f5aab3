"""The wire between the parent and a block's child: typed, length-prefixed frames.

One stream socket per block carries the code, the block's Python-level stdout/stderr (in the
order it wrote them), tool calls and their answers, and the final status. The parent never
trusts a frame: lengths are bounded and an unknown type ends the block.
"""

from __future__ import annotations

import struct

__all__ = [
    "CODE",
    "DONE",
    "ERR",
    "MAX_FRAME",
    "OUT",
    "REPLY",
    "TOOL",
    "FrameBuffer",
    "ProtocolError",
    "frame",
]

HEADER = struct.Struct(">cI")
#: parent -> child
CODE = b"C"
REPLY = b"R"
#: child -> parent
OUT = b"O"
ERR = b"E"
TOOL = b"T"
DONE = b"D"
#: No frame may be longer (the child writes output in chunks of at most 64 KiB).
MAX_FRAME = 64 << 20


class ProtocolError(Exception):
    """The other side sent something that is not a frame of the protocol."""


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


class FrameBuffer:
    """Reassembles frames from a byte stream; ``feed`` returns the complete ones."""

    __slots__ = ("_buf", "_kinds", "_max")

    def __init__(self, kinds: bytes, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._kinds = kinds
        self._max = max_frame

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[bytes, bytes]] = []
        pos = 0
        n = len(buf)
        while n - pos >= HEADER.size:
            kind, size = HEADER.unpack_from(buf, pos)
            if kind not in self._kinds or size > self._max:
                raise ProtocolError(f"bad frame header {kind!r}/{size}")
            end = pos + HEADER.size + size
            if end > n:
                break
            out.append((kind, bytes(buf[pos + HEADER.size:end])))
            pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)
