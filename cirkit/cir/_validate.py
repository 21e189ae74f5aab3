"""Check a CIR trace and report every problem with its position.

Datasets are filtered on these problem codes, so the codes are stable strings and every
problem is reported (not only the first): a funnel can count them and a user can fix them all
in one pass. Warnings (severity "warning") never make a trace invalid.
"""

from __future__ import annotations

import ast
import builtins
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ._card import CARD
from ._dialect import DIALECTS, TOOLS, Dialect, get_dialect
from ._format import (
    _CODE_OPEN_RE,
    END_CODE,
    OUTPUT_OPEN,
    START_CODE,
    THINK_CLOSE,
    THINK_OPEN,
    Segment,
    _scan,
    parse,
)

__all__ = [
    "PROBLEM_CODES",
    "DetectedDialect",
    "Problem",
    "Severity",
    "detect_dialect",
    "is_valid",
    "validate",
]

Severity = Literal["error", "warning"]
DetectedDialect = Literal["card", "demo", "mixed"]

#: Every problem code, its severity and what it means.
PROBLEM_CODES: dict[str, tuple[Severity, str]] = {
    "unclosed_code": ("error", "<start_code> without a matching <end_code>"),
    "missing_python_fence": ("error", "<start_code> not followed by a ```python fence"),
    "missing_closing_fence": ("error", "code block without a closing ``` before <end_code>"),
    "stray_end_code": ("error", "<end_code> without a <start_code>"),
    "empty_code": ("error", "code block with no code"),
    "syntax_error": ("error", "code block that is not valid Python"),
    "code_without_output": ("error", "code block not followed by an ```output block"),
    "output_without_code": ("error", "```output block that does not follow a code block"),
    "unclosed_output": ("error", "```output block without its closing fence"),
    "code_after_think": ("error", "code block after </think>"),
    "unclosed_think": ("error", "finished trace without </think>"),
    "no_final_answer": ("error", "nothing but whitespace after </think>"),
    "unexpected_think_tag": ("error", "a second <think> or </think>"),
    "too_many_code_blocks": ("error", "more code blocks than allowed"),
    "no_code": ("warning", "finished trace that never tried to run code"),
    "output_separator": ("warning", "code and output not separated by exactly one newline"),
    "unknown_tool_call": ("warning", "call to a function that is neither defined nor a tool"),
    "unknown_tool_argument": ("warning", "tool called with a keyword it does not take"),
    "mixed_dialect": ("warning", "card and demo tool names in one trace"),
    "dialect_mismatch": ("warning", "tool spelling of the other dialect"),
}

#: Function name -> the keywords it takes, every spelling of the one tool table.
_TOOL_KEYWORDS = {s: t.keywords for t in TOOLS.values() for s in t.spellings}
_KNOWN_TOOLS = frozenset(_TOOL_KEYWORDS)
#: A name or keyword only one dialect uses -> that dialect.
_EVIDENCE = {m: d.name for d in DIALECTS.values() for m in d.markers}
_BUILTINS = frozenset(dir(builtins))
_CODE_OPEN_PREFIX = "\n```python\n"


@dataclass(slots=True, frozen=True)
class Problem:
    """One finding: ``offset`` into the trace and its 1-based ``line``:``col``."""

    code: str
    message: str
    offset: int
    line: int
    col: int
    severity: Severity = "error"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "offset": self.offset, "line": self.line, "col": self.col}


def is_valid(problems: list[Problem]) -> bool:
    """True when no problem is an error."""
    return not any(p.severity == "error" for p in problems)


class _Report:
    """Collects problems and turns offsets into line:col."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._newlines: list[int] | None = None  # found only when a problem needs line:col
        self.problems: list[Problem] = []

    @property
    def newlines(self) -> list[int]:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        return self._newlines

    def add(self, code: str, offset: int, message: str | None = None) -> None:
        line = bisect_right(self.newlines, offset - 1)
        line_start = self.newlines[line - 1] + 1 if line else 0
        severity, default = PROBLEM_CODES[code]
        self.problems.append(Problem(code, message or default, offset, line + 1,
                                     offset - line_start + 1, severity))


@dataclass(slots=True, frozen=True)
class _Call:
    name: str
    offset: int
    evidence: Literal["card", "demo"] | None
    bad_keywords: tuple[str, ...]


def _occurrences(text: str, needle: str, start: int, end: int) -> Iterator[int]:
    i = text.find(needle, start, end)
    while i >= 0:
        yield i
        i = text.find(needle, i + 1, end)


def _check_text(rep: _Report, segs: list[Segment], finished: bool) -> None:
    """Explain the delimiters that the parser left in prose."""
    text = rep.text
    starts: list[int] = []
    ends: list[int] = []
    for s in segs:
        if s.kind == "text":
            starts += _occurrences(text, START_CODE, s.start, s.end)
            ends += _occurrences(text, END_CODE, s.start, s.end)
            for i in _occurrences(text, OUTPUT_OPEN, s.start, s.end):
                if i == 0 or text[i - 1] == "\n":
                    rep.add("unclosed_output", i)
    all_starts = sorted(starts + [s.start for s in segs if s.kind == "code"])
    used: set[int] = set()
    for i in starts:
        k = bisect_right(all_starts, i)
        limit = all_starts[k] if k < len(all_starts) else len(text)
        j = bisect_right(ends, i)
        end = ends[j] if j < len(ends) and ends[j] < limit else None
        if end is not None:
            used.add(end)
        body = i + len(START_CODE)
        trailing = k == len(all_starts) and end is None and not finished
        if not _CODE_OPEN_RE.match(text, body, len(text) if end is None else end):
            if not (trailing and len(text) - body < len(_CODE_OPEN_PREFIX)
                    and _CODE_OPEN_PREFIX.startswith(text[body:])):
                rep.add("missing_python_fence", i)
        elif end is None:
            if not trailing:
                rep.add("unclosed_code", i)
        else:
            rep.add("missing_closing_fence", end)
    for e in ends:
        if e not in used:
            rep.add("stray_end_code", e)


def _opens_output(text: str, seg: Segment) -> bool:
    """A prose segment that starts (after blanks) with an output block the parser saw open."""
    i = seg.start + len(seg.raw) - len(seg.raw.lstrip())
    return text.startswith(OUTPUT_OPEN, i) and (i == 0 or text[i - 1] == "\n")


def _follows_broken_code(text: str, seg: Segment) -> bool:
    """An output right after a code block the parser could not accept (already reported)."""
    return text[:seg.start].rstrip().endswith(END_CODE)


def _check_sequence(rep: _Report, segs: list[Segment], finished: bool,
                    max_code_blocks: int) -> None:
    """Code/output pairing, think tags, the final answer and the block count."""
    text = rep.text
    meaningful = [s for s in segs if not (s.kind == "text" and not s.raw.strip())]
    for n, s in enumerate(meaningful):
        nxt = meaningful[n + 1] if n + 1 < len(meaningful) else None
        prev = meaningful[n - 1] if n else None
        if s.kind == "code":
            if nxt is not None and nxt.kind == "output":
                if text[s.end:nxt.start] != "\n":
                    rep.add("output_separator", nxt.start)
            elif nxt is None and not finished:
                pass  # the observation has not been appended yet
            elif nxt is not None and nxt.kind == "text" and _opens_output(text, nxt):
                pass  # reported as unclosed_output
            else:
                rep.add("code_without_output", s.end)
        elif s.kind == "output" and (prev is None or prev.kind != "code") and \
                not _follows_broken_code(text, s):
            rep.add("output_without_code", s.start)
    opens = [s for s in segs if s.kind == "think_open"]
    for s in opens[1:]:
        rep.add("unexpected_think_tag", s.start, f"a second {THINK_OPEN}")
    close = next((s for s in segs if s.kind == "think_close"), None)
    if close is None:
        if finished:
            rep.add("unclosed_think", len(text))
    else:
        answer = segs[-1] if segs[-1].kind == "answer" else None
        if finished and (answer is None or not answer.raw.strip()):
            rep.add("no_final_answer", close.end)
        if answer is not None:
            _check_answer(rep, answer)
    codes = [s for s in segs if s.kind == "code"]
    if len(codes) > max_code_blocks:
        rep.add("too_many_code_blocks", codes[max_code_blocks].start,
                f"{len(codes)} code blocks, at most {max_code_blocks} allowed")
    if finished and not codes and START_CODE not in text:
        rep.add("no_code", 0)


def _check_answer(rep: _Report, answer: Segment) -> None:
    text = rep.text
    reported: set[int] = set()
    for s in _scan(text, answer.start, answer.end, think=False):
        if s.kind == "code":
            rep.add("code_after_think", s.start)
            reported.add(s.start)
    for i in _occurrences(text, START_CODE, answer.start, answer.end):
        if i not in reported:
            rep.add("code_after_think", i)
    for tag in (THINK_OPEN, THINK_CLOSE):
        for i in _occurrences(text, tag, answer.start, answer.end):
            rep.add("unexpected_think_tag", i, f"{tag} after {THINK_CLOSE}")


def _line_offsets(code: str) -> list[int]:
    starts = [0]
    starts += [i + 1 for i, c in enumerate(code) if c == "\n"]
    return starts


def _code_offset(seg: Segment, line_starts: list[int], lineno: int, col: int) -> int:
    """Trace offset of a 1-based line and 0-based character column in a code block."""
    line = min(max(lineno, 1), len(line_starts)) - 1
    end = line_starts[line + 1] - 1 if line + 1 < len(line_starts) else len(seg.body)
    return seg.body_start + min(line_starts[line] + max(col, 0), end)


def _char_col(seg: Segment, line_starts: list[int], lineno: int, byte_col: int) -> int:
    """ast columns count UTF-8 bytes; convert to characters."""
    line = min(max(lineno, 1), len(line_starts)) - 1
    src = seg.body[line_starts[line]:]
    return len(src.encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def _defined_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _calls(seg: Segment, tree: ast.AST) -> Iterator[_Call]:
    """Calls to bare names that no statement in the block defines."""
    line_starts = _line_offsets(seg.body)
    defined = _defined_names(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name = node.func.id
        if name in defined or (name in _BUILTINS and name not in _KNOWN_TOOLS):
            continue
        col = _char_col(seg, line_starts, node.lineno, node.col_offset)
        offset = _code_offset(seg, line_starts, node.lineno, col)
        kws = tuple(k.arg for k in node.keywords if k.arg is not None)
        marks = [_EVIDENCE[m] for m in (name, *kws) if m in _EVIDENCE]
        evidence: Literal["card", "demo"] | None = marks[0] if marks else None
        bad = tuple(k for k in kws if k not in _TOOL_KEYWORDS.get(name, frozenset(kws)))
        yield _Call(name, offset, evidence, bad)


def _parse_code(rep: _Report | None, seg: Segment) -> ast.AST | None:
    try:
        return ast.parse(seg.body)
    except SyntaxError as e:
        if rep is not None:
            line_starts = _line_offsets(seg.body)
            off = _code_offset(seg, line_starts, e.lineno or 1, (e.offset or 1) - 1)
            rep.add("syntax_error", off, f"invalid Python: {e.msg}")
    except (ValueError, RecursionError, MemoryError) as e:
        if rep is not None:
            rep.add("syntax_error", seg.body_start, f"invalid Python: {e}")
    return None


def _tool_calls(segs: list[Segment], rep: _Report | None) -> list[_Call]:
    calls: list[_Call] = []
    for s in segs:
        if s.kind != "code":
            continue
        if not s.body.strip():
            if rep is not None:
                rep.add("empty_code", s.start)
            continue
        tree = _parse_code(rep, s)
        if tree is not None:
            calls += _calls(s, tree)
    return calls


def _dialect_of(calls: list[_Call]) -> DetectedDialect | None:
    seen = {c.evidence for c in calls if c.evidence is not None}
    if len(seen) > 1:
        return "mixed"
    return seen.pop() if seen else None


def detect_dialect(text: str) -> DetectedDialect | None:
    """Which tool spelling the trace's code uses: ``web_visit``/``num_result`` mean the model
    card, ``visit_webpage``/``max_result`` the demo; None when the code says neither."""
    return _dialect_of(_tool_calls(parse(text), None))


def validate(text: str, *, finished: bool = True, max_code_blocks: int = CARD.max_code_blocks,
             dialect: str | Dialect | None = None) -> list[Problem]:
    """Every problem in ``text``, sorted by offset.

    ``finished=False`` accepts a trace that is still being generated: no ``</think>`` yet, a
    last code block still open or still waiting for its observation.
    """
    want = get_dialect(dialect) if dialect is not None else None
    rep = _Report(text)
    segs = parse(text)
    _check_text(rep, segs, finished)
    _check_sequence(rep, segs, finished, max_code_blocks)
    calls = _tool_calls(segs, rep)
    for c in calls:
        if c.name not in _KNOWN_TOOLS:
            rep.add("unknown_tool_call", c.offset,
                    f"{c.name}() is neither defined in the block nor a tool")
        for kw in c.bad_keywords:
            rep.add("unknown_tool_argument", c.offset, f"{c.name}() takes no keyword {kw!r}")
        if want is not None and c.evidence is not None and c.evidence != want.name:
            rep.add("dialect_mismatch", c.offset,
                    f"{c.name}() is spelled as in the {c.evidence} dialect, "
                    f"expected {want.name}")
    if want is None and _dialect_of(calls) == "mixed":
        evidenced = [c for c in calls if c.evidence is not None]
        other = next(c for c in evidenced if c.evidence != evidenced[0].evidence)
        rep.add("mixed_dialect", other.offset,
                f"{other.name}() uses the {other.evidence} dialect; earlier calls use "
                f"the {evidenced[0].evidence} dialect")
    return sorted(rep.problems, key=lambda p: (p.offset, p.code))
