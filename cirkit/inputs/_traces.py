"""Text-only CIR traces: an API teacher's rows and chat exports, read one way for both
``cirkit validate`` and ``cirkit build sft``, so the checker passes what the builder takes.

A row is a chat (``messages``: the last assistant message is the trace, the messages before
it the prompt) or flat (``prompt``/``question`` plus ``response``, ``completion``,
``response_text`` or ``text``; a completion may be chat messages, TRL's conversational shape).
Each row becomes a ``TextTrace``: the trace text when there is one, the prompt, and when the
row cannot become an SFT row, a stable reason code (the funnel reports count them).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cirkit.errors import InputError

from ._fields import answer_of
from ._read import RowError, Source, file_format, iter_row_blocks

__all__ = [
    "PROMPT_FIELDS",
    "TRACE_FIELDS",
    "TRACE_REASONS",
    "Message",
    "TextTrace",
    "TraceField",
    "chat_messages",
    "parse_trace",
    "read_trace_blocks",
    "read_traces",
]

Message = dict[str, str]
#: Where ``--field`` looks: both kinds of row (messages first), flat rows only, chats only.
TraceField = Literal["auto", "text", "messages"]
#: Flat rows: the trace, first field holding a value wins.
TRACE_FIELDS = ("response", "completion", "response_text", "text")
#: Flat rows: the question (text, rendered with the system prompt) or prompt chat messages.
PROMPT_FIELDS = ("prompt", "question")
#: Why a row yields no SFT row, by stable code (``well_formed`` counts these).
TRACE_REASONS: dict[str, str] = {
    "not_utf8": "the line is not UTF-8",
    "not_json": "the line is not valid JSON",
    "lone_surrogate": "a JSON string holds a lone surrogate escape (not Unicode text)",
    "not_an_object": "the line is not a JSON object",
    "bad_row": "the row does not fit the file's header",
    "no_trace": "no trace: neither messages nor " + ", ".join(TRACE_FIELDS),
    "messages_not_a_list": "messages are not a list of chat messages",
    "message_content_not_text": "a message's content is not text",
    "no_assistant_message": "the messages hold no assistant message",
    "no_user_message": "no user message before the trace",
    "no_question": "a trace without a question: none of " + ", ".join(PROMPT_FIELDS),
}


@dataclass(slots=True, frozen=True)
class TextTrace:
    """One row: ``text`` is the CIR text of the assistant turn (None when the row holds no
    trace); ``prompt`` the question as text or the chat messages before the trace;
    ``reason`` a ``TRACE_REASONS`` code when the row cannot be built, ``detail`` says why
    in words. A trace without a question still has ``text``: it can be validated."""

    line: int
    row: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    prompt: str | list[Message] | None = None
    reason: str | None = None
    detail: str = ""

    @property
    def usable(self) -> bool:
        """Whether ``cirkit build sft`` can make an SFT row of it."""
        return self.reason is None

    @property
    def question(self) -> str | None:
        """The question: the prompt text, or the last user message of the prompt."""
        if isinstance(self.prompt, str) or self.prompt is None:
            return self.prompt
        users = [m["content"] for m in self.prompt if m["role"] == "user"]
        return users[-1] if users else None

    @property
    def ground_truth(self) -> Any:
        """The reference answer, by the rules question files follow (``answer_of``)."""
        return answer_of(self.row)

    @property
    def id(self) -> str | None:
        value = self.row.get("trajectory_id", self.row.get("id"))
        return None if value is None else str(value)


class _Malformed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _content(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI-style content parts
        texts = [p.get("text") for p in value if isinstance(p, dict)]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(str(t) for t in texts)
    raise _Malformed("message_content_not_text", f"a message content in {name!r} is not text")


def _chat(value: Any, name: str) -> list[Message]:
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise _Malformed("messages_not_a_list", f"{name!r} is not a list of chat messages")
    return [{"role": str(m.get("role", "")), "content": _content(m.get("content"), name)}
            for m in value]


def chat_messages(value: Any) -> list[Message] | None:
    """``value`` as ``{role, content}`` messages with text content, or None."""
    try:
        return _chat(value, "messages")
    except _Malformed:
        return None


def _last_assistant(msgs: list[Message], name: str) -> int:
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None:
        raise _Malformed("no_assistant_message", f"{name!r} has no assistant message")
    return last


def _first(row: dict[str, Any], names: tuple[str, ...]) -> tuple[str, Any] | None:
    return next(((n, row[n]) for n in names if row.get(n) is not None), None)


def _from_chat(row: dict[str, Any]) -> tuple[str, list[Message]]:
    if row.get("messages") is None:
        raise _Malformed("no_trace", "no 'messages' list")
    msgs = _chat(row["messages"], "messages")
    last = _last_assistant(msgs, "messages")
    return msgs[last]["content"], msgs[:last]


def _from_flat(row: dict[str, Any]) -> str:
    found = _first(row, TRACE_FIELDS)
    if found is None:
        raise _Malformed("no_trace", "no trace: none of the fields " + ", ".join(TRACE_FIELDS))
    name, value = found
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise _Malformed("messages_not_a_list", f"{name!r} is neither text nor chat messages")
    msgs = _chat(value, name)  # TRL's conversational completion
    return msgs[_last_assistant(msgs, name)]["content"]


def _prompt(row: dict[str, Any]) -> str | list[Message]:
    found = _first(row, PROMPT_FIELDS)
    if found is None or (isinstance(found[1], str) and not found[1].strip()):
        raise _Malformed("no_question", "no question: none of the fields "
                         + ", ".join(PROMPT_FIELDS) + " (cirkit build sft needs one)")
    name, value = found
    return value if isinstance(value, str) else _chat(value, name)


def parse_trace(row: dict[str, Any], *, line: int = 0, field: TraceField = "auto"
                ) -> TextTrace:
    """One row as a TextTrace; ``field`` as ``cirkit validate --field`` takes it."""
    chat = field == "messages" or (field == "auto" and row.get("messages") is not None)
    try:
        text, before = _from_chat(row) if chat else (_from_flat(row), None)
    except _Malformed as e:
        return TextTrace(line, row, reason=e.reason, detail=e.detail)
    try:
        prompt = before if before is not None else _prompt(row)
    except _Malformed as e:  # a trace all the same: it can be validated
        return TextTrace(line, row, text, None, e.reason, e.detail)
    if isinstance(prompt, list) and not any(m["role"] == "user" for m in prompt):
        return TextTrace(line, row, text, prompt, "no_user_message",
                         "no user message before the assistant message")
    return TextTrace(line, row, text, prompt)


def _unreadable(e: InputError) -> TextTrace:
    if isinstance(e, RowError):
        return TextTrace(e.line or 0, reason=e.code, detail=e.reason)
    return TextTrace(e.line or 0, reason="bad_row", detail=e.message)


_HOLD_BLOCKS = 64  # bad-only blocks held back while looking for a first readable line


def read_trace_blocks(source: Source, *, field: TraceField = "auto",
                      block_bytes: int = 8 << 20, name: str | None = None,
                      allow_empty: bool = False) -> Iterator[tuple[list[TextTrace], int]]:
    """Every line of a trace file (JSONL unless the suffix names CSV/TSV/parquet) as a
    TextTrace, in blocks with the bytes they cover. An unreadable line is a TextTrace with
    its reason (``not_json``...), not an error: a checker reports it, a builder counts it.
    A file that cannot be read at all (missing, binary, empty, or not one readable line)
    raises ``InputError``."""
    fmt = file_format(source, fallback="jsonl") if isinstance(source, str | os.PathLike) \
        else "jsonl"
    bad: list[TextTrace] = []
    first: list[InputError] = []  # the file's first unreadable line, for a file of nothing else
    held: list[tuple[list[TextTrace], int]] = []  # unreadable lines before the first good one
    readable = False

    def take(e: InputError) -> None:
        bad.append(_unreadable(e))
        first[:] = first or [e]

    for block in iter_row_blocks(source, fmt=fmt, block_bytes=block_bytes, on_bad_row=take,
                                 allow_empty=allow_empty, name=name):
        traces = [parse_trace(row, line=line, field=field) for line, row in block.rows]
        if bad:
            traces = sorted(traces + bad, key=lambda t: t.line)
            bad.clear()
        if not readable and not block.rows and len(held) < _HOLD_BLOCKS:
            held.append((traces, block.nbytes))  # maybe a file with no readable line at all
            continue
        readable = True
        yield from held
        held.clear()
        yield traces, block.nbytes
    if bad:
        held.append((sorted(bad, key=lambda t: t.line), 0))
    if held and not readable and first:  # not one line could be read: the file is the problem
        e = first[0]
        where = f"line {e.line}: {e.reason}" if isinstance(e, RowError) else e.message
        raise InputError(f"not one line can be read ({where})",
                         hint="give trace rows as UTF-8 JSONL, one JSON object per line",
                         path=e.path, field=e.field) from None
    yield from held


def read_traces(source: Source, *, field: TraceField = "auto", name: str | None = None,
                allow_empty: bool = False) -> Iterator[TextTrace]:
    """Every line of a trace file as a TextTrace, in file order (see ``read_trace_blocks``)."""
    for traces, _ in read_trace_blocks(source, field=field, name=name,
                                       allow_empty=allow_empty):
        yield from traces
