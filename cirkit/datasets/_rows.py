"""SFT rows from the two kinds of input: trajectory records (token ids kept as they are) and
text-only traces (chat messages, or prompt + response text from an API teacher, as
``cirkit.inputs`` reads them).

Every input row becomes an ``SFTRow``, even a malformed one (it then carries the reason), so
the funnel accounts for every line of the input.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from cirkit.cir import PromptTemplate, Segment, parse, render_messages
from cirkit.inputs import RowError, TextTrace
from cirkit.inputs import question_id as _question_id

from ._io import TRAJECTORY_SCHEMA
from ._tokenize import BuildTokenizer

__all__ = ["PromptContext", "SFTRow", "parse_verdict", "row_from_bad_line", "row_from_trace",
           "rows_from_frame"]

Message = dict[str, str]
_TRUE = {"a", "correct", "true", "yes", "1", "1.0"}
_FALSE = {"b", "c", "incorrect", "not_attempted", "not attempted", "false", "no", "0", "0.0"}


@dataclass(slots=True)
class SFTRow:
    """One candidate row: what the filters look at and what the output needs."""

    index: int
    trajectory_id: str
    question_id: str
    source: str
    prompt_messages: list[Message]
    assistant: str  # the whole CIR text of the assistant turn
    segments: list[Segment]
    ground_truth: Any = None
    verdict: bool | None = None
    finish_reason: str | None = None
    malformed: str | None = None
    token_error: str | None = None
    prompt_error: str | None = None
    num_tokens: int = -1
    from_trajectory: bool = False
    decode_ok: bool = True
    control_id: bool = False  # a control token id among the generated ids (not as the stop)
    line: int | None = None  # the file line of a row that could not be read
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    response_mask: list[int] = field(default_factory=list)

    @property
    def num_code_blocks(self) -> int:
        return sum(1 for s in self.segments if s.kind == "code")

    @property
    def final_answer(self) -> str | None:
        if not any(s.kind == "think_close" for s in self.segments):
            return None
        last = self.segments[-1]
        return last.body.strip() if last.kind == "answer" else ""

    def dedupe_key(self) -> bytes:
        """Same prompt and same response text, same key."""
        h = hashlib.sha256(orjson.dumps(self.prompt_messages))
        h.update(b"\x00" + self.assistant.encode("utf-8", "surrogatepass"))
        return h.digest()[:16]

    def reject_record(self) -> dict[str, Any]:
        record = {"trajectory_id": self.trajectory_id, "question_id": self.question_id,
                  "source": self.source, "text": self.assistant}
        return record if self.line is None else {**record, "line": self.line}


def parse_verdict(value: Any) -> bool | None:
    """A judge's verdict as a bool: booleans, 1/0, "correct"/"incorrect", SimpleQA's
    grades (A correct, B incorrect, C not attempted); None when there is none."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().strip('"').lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def _ground_truth(value: Any) -> Any:
    """Ground truth read as JSON text by polars: a list comes back as a list."""
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        if isinstance(parsed, list):
            return parsed
    return value


class PromptContext:
    """Renders system prompts and chat prompts, cached: many rows share a question."""

    def __init__(self, tok: BuildTokenizer, template: PromptTemplate, *, date: str,
                 dialect: str, max_code_blocks: int, cache_size: int = 4096) -> None:
        self.tok, self.template = tok, template
        self.date, self.dialect, self.max_code_blocks = date, dialect, max_code_blocks
        self._chat: OrderedDict[bytes, str] = OrderedDict()
        self._cache_size = cache_size

    def messages(self, question: str, *, date: str | None = None, dialect: str | None = None,
                 max_code_blocks: int | None = None) -> list[Message]:
        return render_messages(question, template=self.template, date=date or self.date,
                               dialect=dialect or self.dialect,
                               max_code_blocks=max_code_blocks or self.max_code_blocks)

    def chat_prompt(self, messages: list[Message]) -> str:
        key = orjson.dumps(messages)
        hit = self._chat.get(key)
        if hit is None:
            hit = self._chat[key] = self.tok.chat_prompt(messages)
            if len(self._chat) > self._cache_size:
                self._chat.popitem(last=False)
        return hit


def rows_from_frame(df: pl.DataFrame, ctx: PromptContext, *, default_source: str,
                    max_code_blocks: int | None) -> list[SFTRow]:
    """Trajectory records: the system prompt is rebuilt from the template, date and dialect
    the record names, and must reproduce the record's prompt text (what the model saw). The
    block budget the prompt states is the rollout manifest's when known, else the build's
    limit, else the rollout default (32)."""
    budgets = list(dict.fromkeys(b for b in (max_code_blocks, ctx.max_code_blocks, 32)
                                 if b is not None))
    cols = {c: df[c].to_list() for c, dtype in TRAJECTORY_SCHEMA.items()
            if not dtype.is_nested()}  # the scalar fields; ids and mask are read below
    control = _control_ids(df, ctx.tok)
    plen = df["prompt_token_ids"].list.len().to_list()
    rlen = df["response_token_ids"].list.len().to_list()
    mlen = df["response_mask"].list.len().to_list()
    rows: list[SFTRow] = []
    for i in range(df.height):
        question = cols["question"][i] or ""
        response = cols["response_text"][i] or ""
        qid = cols["question_id"][i] or _question_id(question)
        row = SFTRow(
            index=i, trajectory_id=cols["id"][i] or _text_id(question, response),
            question_id=qid, source=cols["source"][i] or default_source,
            prompt_messages=[], assistant=response, segments=[],
            ground_truth=_ground_truth(cols["ground_truth"][i]),
            verdict=parse_verdict(cols["judge"][i] if cols["judge"][i] is not None
                                  else cols["correct"][i]),
            finish_reason=cols["finish_reason"][i], from_trajectory=True,
            decode_ok=cols["decode_ok"][i] is not False, control_id=control[i])
        if plen[i] is None or rlen[i] is None or not plen[i]:
            row.token_error = "no_token_ids"
        elif mlen[i] != rlen[i]:
            row.token_error = "mask_length_mismatch"
        else:
            row.num_tokens = plen[i] + rlen[i]
        sha = cols["prompt_template_sha256"][i]
        if sha and sha != ctx.template.sha256:
            row.prompt_error = "template_mismatch"
        else:
            prompt_text = cols["prompt_text"][i] or ""
            row.prompt_error = "prompt_mismatch"
            for budget in budgets:
                msgs = ctx.messages(question, date=cols["date"][i], dialect=cols["dialect"][i],
                                    max_code_blocks=budget)
                chat = ctx.chat_prompt(msgs)
                if prompt_text.startswith(chat):
                    row.prompt_messages = msgs
                    row.assistant = prompt_text[len(chat):] + response
                    row.prompt_error = None
                    break
        row.segments = parse(row.assistant)
        rows.append(row)
    return rows


def _control_ids(df: pl.DataFrame, tok: BuildTokenizer) -> list[bool]:
    """Per record: a control token id among its generated ids, other than a stop id (end of
    turn, eos) as the very last one. Read on the ids, not the text: the ids are what trains."""
    if not tok.control_ids or df.height == 0:
        return [False] * df.height
    ids = pl.col("response_token_ids")
    ctrl = sorted(tok.control_ids)
    flags = df.select(
        inner=ids.list.head(ids.list.len() - 1).list.eval(pl.element().is_in(ctrl)).list.any(),
        last=ids.list.last())
    stops = tok.stop_ids
    return [bool(inner) or (last is not None and last in tok.control_ids and last not in stops)
            for inner, last in zip(flags["inner"].to_list(), flags["last"].to_list(),
                                   strict=True)]


def row_from_bad_line(e: RowError, *, default_source: str) -> SFTRow:
    """A line of a trajectory file that holds no record: dropped by ``well_formed`` with the
    reader's code (``not_json``, ``not_an_object``, ``lone_surrogate``...), its line kept."""
    return SFTRow(-1, str(e.line), "", default_source, [], "", [], malformed=e.code, line=e.line)


def _text_id(prompt: str, response: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{response}".encode("utf-8", "surrogatepass")
                          ).hexdigest()[:24]


def row_from_trace(t: TextTrace, index: int, ctx: PromptContext, *,
                   default_source: str) -> SFTRow:
    """A text-only trace, as ``cirkit.inputs.read_traces`` read it (the rows ``cirkit
    validate`` checks); the tokens come later, piece by piece (see ``split_pieces``)."""
    d = t.row
    if t.reason is not None or t.text is None or t.prompt is None:
        return SFTRow(index, str(d.get("id", t.line)), str(d.get("question_id", "")),
                      str(d.get("source") or default_source), [], "", [],
                      malformed=t.reason or "no_trace", line=None if d else t.line)
    prompt = ctx.messages(t.prompt) if isinstance(t.prompt, str) else t.prompt
    question = t.question or ""
    rid = d.get("trajectory_id", d.get("id"))
    qid = d.get("question_id")
    verdict = d.get("judge", d.get("correct"))
    return SFTRow(
        index=index,
        trajectory_id=str(rid) if rid is not None else _text_id(
            orjson.dumps(prompt).decode(), t.text),
        question_id=str(qid) if qid is not None else _question_id(question),
        source=str(d.get("source") or d.get("data_source") or default_source),
        prompt_messages=prompt, assistant=t.text, segments=parse(t.text),
        ground_truth=t.ground_truth, verdict=parse_verdict(verdict),
        finish_reason=d.get("finish_reason"))
