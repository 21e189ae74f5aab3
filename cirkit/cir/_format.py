"""The CIR text format: exact delimiters, a lossless parser and the continuation rule.

A CIR trace is one assistant turn: reasoning prose with code blocks, each followed by the
observation the sandbox produced, then ``</think>`` and the final answer. The strings below must
match what II-Search-CIR-4B was trained on byte for byte, so every other module takes them from
here. ``parse`` never fails and never loses a character (``render(parse(x)) == x`` for every
string): pieces it cannot recognise stay text, and ``validate`` explains what is wrong.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CODE_CLOSE",
    "CODE_OPEN",
    "END_CODE",
    "FENCE",
    "OUTPUT_CLOSE",
    "OUTPUT_OPEN",
    "PYTHON_FENCE",
    "START_CODE",
    "STOP",
    "THINK_CLOSE",
    "THINK_OPEN",
    "Segment",
    "SegmentKind",
    "continuation",
    "final_answer",
    "parse",
    "pending_code",
    "render",
    "wrap_observation",
]

START_CODE = "<start_code>"
END_CODE = "<end_code>"
PYTHON_FENCE = "```python"
FENCE = "```"
OUTPUT_OPEN = "```output\n"
OUTPUT_CLOSE = "\n```"
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: Stop strings for the completions API: generation pauses when a code block ends.
STOP = [END_CODE]
#: The canonical opening and closing of a code block (the card's spelling).
CODE_OPEN = START_CODE + "\n" + PYTHON_FENCE + "\n"
CODE_CLOSE = "\n" + FENCE + END_CODE

SegmentKind = Literal["think_open", "think_close", "text", "code", "output", "answer"]


@dataclass(slots=True, frozen=True)
class Segment:
    """One piece of a trace: ``raw == trace[start:end]``.

    ``body`` is the content without delimiters: the code of a ``code`` segment, the observation
    text of an ``output``, the prose of ``text``/``answer``, "" for the think markers.
    ``body_start`` is the offset of ``body`` in the trace (for error positions).
    """

    kind: SegmentKind
    start: int
    end: int
    raw: str
    body: str
    body_start: int

    @property
    def code(self) -> str | None:
        """The Python source of a code block, ``None`` for other kinds."""
        return self.body if self.kind == "code" else None


def wrap_observation(text: str) -> str:
    """The observation exactly as the model sees it: an ``output`` fence around ``text``."""
    return OUTPUT_OPEN + text + OUTPUT_CLOSE


def continuation(generated: str, observation_text: str) -> str:
    """What follows the trace after a generation that stopped at ``<end_code>``.

    The completions API strips the stop string, so it is put back when missing; then a newline
    and the wrapped observation (``observation_text`` is the unwrapped, already-truncated text):
    ``generated + "<end_code>" + "\\n" + "```output\\n" + observation_text + "\\n```"``.
    """
    head = generated if generated.endswith(END_CODE) else generated + END_CODE
    return head + "\n" + wrap_observation(observation_text)


def render(segments: Iterable[Segment]) -> str:
    """The inverse of ``parse``."""
    return "".join(s.raw for s in segments)


# After <start_code>: optional blanks/newline, the python fence, optional blanks, newline.
_CODE_OPEN_RE = re.compile(r"[ \t]*\n?[ \t]*```python[ \t]*\n")
_BLOCK_OPEN_RE = re.compile(re.escape(START_CODE) + _CODE_OPEN_RE.pattern)
# Before <end_code>: the closing fence at the start of a line (or of the code), then either
# "<end_code>" on the same line (the demo's "```<end_code>") or on the next line.
_CODE_CLOSE_RE = re.compile(r"(?:\A|\n)```[ \t]*(?:\n[ \t]*)?\Z")
# A fence at a line start; group 1 is set when a word follows (an opening fence like ```json).
_FENCE_RE = re.compile(r"\n```(?!`)(\w)?")
_MAX_NESTED_FENCES = 64


def _first_at_or_after(positions: list[int], x: int) -> int | None:
    k = bisect_left(positions, x)
    return positions[k] if k < len(positions) else None


class _Marks:
    """Sorted delimiter positions, found once per scan, so that a trace full of broken pieces
    still parses in near-linear time."""

    __slots__ = ("bare", "ends", "fence_word", "fences", "opens")

    ends: list[int]

    def __init__(self, text: str, start: int, limit: int) -> None:
        self.ends = []
        e = text.find(END_CODE, start, limit)
        while e >= 0:
            self.ends.append(e)
            e = text.find(END_CODE, e + 1, limit)
        self.opens = [m.start() for m in _BLOCK_OPEN_RE.finditer(text, start, limit)]
        found = [(m.start(), m.group(1) is not None)
                 for m in _FENCE_RE.finditer(text, start, limit)]
        self.fences = [p for p, _ in found]
        self.fence_word = [w for _, w in found]
        self.bare = [p for p, w in found if not w]


def _match_code(text: str, i: int, limit: int, marks: _Marks) -> tuple[int, int, str] | None:
    """(end, body_start, body) of a well-formed code block starting at ``i``, else None."""
    m = _CODE_OPEN_RE.match(text, i + len(START_CODE), limit)
    if m is None:
        return None
    body_start = m.end()
    e = _first_at_or_after(marks.ends, body_start)
    if e is None:
        return None
    nxt = _first_at_or_after(marks.opens, body_start)
    if nxt is not None and nxt < e:  # a second block opens first: this one never closed
        return None
    inner = text[body_start:e]
    c = _CODE_CLOSE_RE.search(inner)
    if c is None:
        return None
    return e + len(END_CODE), body_start, inner[: c.start()]


def _match_output(text: str, i: int, marks: _Marks) -> int | None:
    """End of a closed ``output`` block opening at ``i``, else None.

    The observation may itself hold markdown fences (printed web pages). A fence followed by a
    word (```json) opens a nested block and the next bare fence closes it; the first bare
    fence at depth 0 closes the observation. When nesting does not balance before the next
    code block (an observation cut inside a fence) or within 64 fences, the first bare fence
    wins.
    """
    body_start = i + len(OUTPUT_OPEN)  # the close may start right away (empty observation)
    k = bisect_left(marks.fences, body_start - 1)  # "```json" may open the first line
    if k < len(marks.fences) and marks.fences[k] < body_start and not marks.fence_word[k]:
        k += 1
    stop = _first_at_or_after(marks.opens, body_start)
    depth = 0
    for n in range(k, min(k + _MAX_NESTED_FENCES, len(marks.fences))):
        if stop is not None and marks.fences[n] > stop:
            break
        if marks.fence_word[n]:
            depth += 1
        elif depth == 0:
            return marks.fences[n] + len(OUTPUT_CLOSE)
        else:
            depth -= 1
    first_bare = _first_at_or_after(marks.bare, body_start)
    return None if first_bare is None else first_bare + len(OUTPUT_CLOSE)


def _find_output_open(text: str, pos: int, limit: int) -> int:
    """Next ``OUTPUT_OPEN`` at the start of a line, or -1."""
    while True:
        i = text.find(OUTPUT_OPEN, pos, limit)
        if i <= 0 or text[i - 1] == "\n":
            return i
        pos = i + 1


def _scan(text: str, start: int, limit: int, *, think: bool) -> list[Segment]:
    """Segments of ``text[start:limit]``. With ``think`` the first ``</think>`` ends the
    reasoning and the rest becomes one ``answer`` segment."""
    out: list[Segment] = []
    pending = start  # start of prose not yet emitted

    def flush(upto: int) -> None:
        nonlocal pending
        if upto > pending:
            out.append(Segment("text", pending, upto, text[pending:upto],
                               text[pending:upto], pending))
        pending = upto

    def add(kind: SegmentKind, s: int, e: int, body: str, body_start: int) -> None:
        flush(s)
        out.append(Segment(kind, s, e, text[s:e], body, body_start))
        nonlocal pending
        pending = e

    marks = _Marks(text, start, limit)
    markers = (START_CODE, OUTPUT_OPEN, THINK_OPEN, THINK_CLOSE) if think else (
        START_CODE, OUTPUT_OPEN)
    nxt: dict[str, int] = {}
    pos = start
    while pos < limit:
        for mk in markers:  # refresh only the positions we have moved past
            if mk not in nxt or 0 <= nxt[mk] < pos:
                nxt[mk] = (_find_output_open(text, pos, limit) if mk == OUTPUT_OPEN
                           else text.find(mk, pos, limit))
        found = [(i, mk) for mk, i in nxt.items() if i >= 0]
        if not found:
            break
        i, mk = min(found)
        if mk == THINK_CLOSE:
            add("think_close", i, i + len(THINK_CLOSE), "", i + len(THINK_CLOSE))
            if pending < limit:
                add("answer", pending, limit, text[pending:limit], pending)
            return out
        if mk == THINK_OPEN:
            add("think_open", i, i + len(THINK_OPEN), "", i + len(THINK_OPEN))
            pos = pending
        elif mk == START_CODE:
            code = _match_code(text, i, limit, marks)
            if code is None:
                pos = i + len(START_CODE)
            else:
                end, body_start, body = code
                add("code", i, end, body, body_start)
                pos = end
        else:
            end_out = _match_output(text, i, marks)
            if end_out is None:
                pos = i + len(OUTPUT_OPEN)
            else:
                body_start = i + len(OUTPUT_OPEN)
                add("output", i, end_out, text[body_start:end_out - len(OUTPUT_CLOSE)],
                    body_start)
                pos = end_out
    flush(limit)
    return out


def parse(text: str) -> list[Segment]:
    """Split a CIR trace into ordered segments; lossless for any input."""
    return _scan(text, 0, len(text), think=True)


def final_answer(text: str) -> str | None:
    """The text after ``</think>`` (stripped), or None when the trace never closed thinking."""
    segs = parse(text)
    if not any(s.kind == "think_close" for s in segs):
        return None
    return segs[-1].body.strip() if segs[-1].kind == "answer" else ""


def pending_code(generated: str) -> str | None:
    """The code to run when ``generated`` stopped at ``<end_code>`` (stripped or not), or None
    when it does not end with a well-formed code block."""
    text = generated if generated.endswith(END_CODE) else generated + END_CODE
    segs = parse(text)
    if segs and segs[-1].kind == "code" and segs[-1].end == len(text):
        return segs[-1].body
    return None
