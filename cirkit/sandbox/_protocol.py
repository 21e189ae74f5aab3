"""The wire between the parent and a block's child: typed, length-prefixed frames.

One stream socket per block carries the code, the block's Python-level stdout/stderr (in the
order it wrote them), tool calls and their answers, and the final status. The parent never
trusts a frame: lengths are bounded and an unknown type ends the block.
"""

from __future__ import annotations

import json
import re
import struct
from typing import Any

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
    "parse_done",
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


_EXIT_CODE = re.compile(r"exit_code:([0-9]{1,3})")
#: The reasons a child reports itself; "setup" only before any user code ran.
_CHILD_REASONS = frozenset({"exception", "memory_limit", "setup"})


def parse_done(payload: bytes) -> dict[str, Any]:
    """The child's final report, checked: the block can write frames itself, so a DONE frame
    is evidence, not truth. Raises ``ProtocolError`` for anything a real child never sends
    (negative or non-integer byte counts, an exit status out of 0..255, a reason that does
    not match the status)."""
    try:
        done = json.loads(payload)
    except ValueError as e:
        raise ProtocolError(f"a DONE frame that is not JSON: {e}") from None
    if not isinstance(done, dict):
        raise ProtocolError("a DONE frame that is not an object")
    error, code = done.get("error"), done.get("exit")
    if type(code) is not int or not 0 <= code <= 255:
        raise ProtocolError(f"a DONE frame with exit status {code!r}")
    dropped = done.get("dropped", [0, 0])
    if not isinstance(dropped, list) or len(dropped) != 2 or \
            any(type(n) is not int or n < 0 for n in dropped):
        raise ProtocolError(f"a DONE frame with dropped byte counts {dropped!r}")
    if error is None:
        ok = code == 0
    elif isinstance(error, str) and (m := _EXIT_CODE.fullmatch(error)):
        ok = int(m.group(1)) == code != 0
    else:
        ok = error in _CHILD_REASONS and code != 0
    if not ok:
        raise ProtocolError(f"a DONE frame whose reason {error!r} does not match exit {code}")
    return done
