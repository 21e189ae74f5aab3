"""Question files as published: cirkit's own JSONL, Search-R1, SimpleQA, Frames, verl parquet.

Each row is read by the same rules whatever the format: the first field of a table that holds
a value wins. A publisher's shape is accepted as it is (``golden_answers`` lists, SimpleQA's
Python-literal ``metadata``, Frames' capitalised TSV header, verl's chat ``prompt`` and nested
``reward_model``/``extra_info``), so no one converts a benchmark before using it.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cirkit.errors import InputError

from ._fields import ID_FIELDS, QUESTION_FIELDS, SOURCE_FIELDS, answer_of, nested, present
from ._read import OnBadRow, iter_rows
from ._traces import chat_messages

__all__ = ["Question", "question_from_row", "question_id", "read_questions"]

#: Columns kept in ``Question.metadata`` besides a ``metadata`` column (Frames' reasoning
#: types, a topic column such as Seal-0's).
_META_FIELDS = ("reasoning_types", "topic")  # Frames; Seal-0 JSONL
_MAX_LITERAL = 1 << 20  # longer metadata text is kept as text, never parsed

@dataclass(slots=True, frozen=True)
class Question:
    """One question. ``ground_truth`` is None, a string or a list of strings; ``metadata``
    holds what the file says about it beyond that (SimpleQA's ``topic`` and ``answer_type``,
    Frames' ``reasoning_types``); it never reaches a rollout record or a dataset row."""

    id: str
    question: str
    ground_truth: Any = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def question_id(text: str) -> str:
    """The id of a question without one: a hash of its text, so seeds and trajectory ids
    never depend on row order (the same text gets the same id in a CSV and a TSV)."""
    return "q-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _question(row: dict[str, Any], where: str, line: int) -> str:
    for name in QUESTION_FIELDS:
        value = row.get(name)
        if isinstance(value, str):
            if value.strip():
                return value
            continue
        if not present(value):
            continue
        if isinstance(value, list):  # verl: chat messages
            msgs = chat_messages(value)
            if msgs is None:
                raise InputError(f"field {name!r} is neither text nor chat messages",
                                 path=where, line=line, field=name,
                                 hint="give the question as text, or as {role, content} "
                                      "messages with a user message")
            users = [m["content"] for m in msgs if m["role"] == "user"]
            if not users or not users[-1].strip():
                raise InputError(f"field {name!r} holds no user message", path=where,
                                 line=line, field=name, hint="the last user message is read "
                                 "as the question")
            return users[-1]
        raise InputError(f"field {name!r} is not text", path=where, line=line, field=name,
                         hint="give the question as text")
    raise InputError(f"no question: none of the fields {', '.join(QUESTION_FIELDS)}",
                     path=where, line=line, field="question",
                     hint=f"give the question in one of the fields {', '.join(QUESTION_FIELDS)}")


def _id(row: dict[str, Any]) -> str | None:
    value = next((row[n] for n in ID_FIELDS if present(row.get(n))), None)
    for inner in ("question_id", "index"):
        if value is None and present(nested(row, "extra_info", inner)):
            value = nested(row, "extra_info", inner)
    return None if value is None else str(value)


def _literal(text: str) -> Any:
    """A dict written as JSON or as a Python literal (SimpleQA's ``metadata``), parsed without
    running anything; None when it is neither."""
    if len(text) > _MAX_LITERAL:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    meta = row.get("metadata")
    if isinstance(meta, str) and meta.strip():
        parsed = _literal(meta)
        meta = parsed if isinstance(parsed, dict) else {"metadata": meta}
    if isinstance(meta, dict):
        out.update({str(k): v for k, v in meta.items()})
    for name in _META_FIELDS:
        if present(row.get(name)):
            out[name] = row[name]
    return out


def question_from_row(row: dict[str, Any], *, where: str = "<row>", line: int = 0,
                      default_source: str = "") -> Question:
    """One row as a Question; an ``InputError`` naming ``where:line`` and the field when the
    row holds no question."""
    text = _question(row, where, line)
    source = next((row[n] for n in SOURCE_FIELDS if present(row.get(n))), default_source)
    return Question(_id(row) or question_id(text), text, answer_of(row), str(source),
                    _metadata(row))


def read_questions(path: str | os.PathLike[str], *, unique: bool = True,
                   on_bad_row: OnBadRow | None = None, allow_empty: bool = False
                   ) -> list[Question]:
    """Every question of a JSONL/CSV/TSV/parquet file, in file order.

    A row without a question is refused (its line and the accepted field names in the
    message). With ``unique`` (rollouts, RL sets), two rows with one id are refused: ids name
    trajectories. Evaluation sets are read with ``unique=False``. A line that is no row at all
    (not JSON, not an object, a lone surrogate) raises, or goes to ``on_bad_row`` (a builder
    counts it as dropped); an empty file raises unless ``allow_empty``.
    """
    where = str(path)
    stem = Path(path).stem
    out: list[Question] = []
    first: dict[str, int] = {}
    for line, row in iter_rows(path, on_bad_row=on_bad_row, allow_empty=allow_empty):
        q = question_from_row(row, where=where, line=line, default_source=stem)
        if unique:
            if q.id in first:
                raise InputError(f"repeats question id {q.id!r} of line {first[q.id]}",
                                 path=where, line=line, field="id",
                                 hint="ids must be unique; drop duplicate rows")
            first[q.id] = line
        out.append(q)
    return out

