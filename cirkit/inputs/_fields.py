"""The field names a user's row may use, and the rules that read them, in one place."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANSWER_FIELDS",
    "ANSWER_SPLIT",
    "ID_FIELDS",
    "QUESTION_FIELDS",
    "SOURCE_FIELDS",
    "answer_of",
    "nested",
    "present",
]

#: Where the question is: cirkit's names, SimpleQA's (``problem``), Frames' TSV (``Prompt``)
#: and verl's ``prompt`` (chat messages: the last user message is the question).
QUESTION_FIELDS = ("question", "prompt", "problem", "query", "Prompt")
#: Where the reference answer is (then verl's ``reward_model.ground_truth``).
ANSWER_FIELDS = ("ground_truth", "answer", "gold", "target", "golden_answers", "true_answer",
                 "Answer")
#: Where the id is (then verl's ``extra_info.question_id``, then ``extra_info.index``).
ID_FIELDS = ("question_id", "id", "uid")
SOURCE_FIELDS = ("source", "data_source")
#: Several answers in one string, as verl-format search datasets write them.
ANSWER_SPLIT = "<|answer_split|>"


def present(value: Any) -> bool:
    """Whether a field holds a value (an empty CSV cell or list does not)."""
    return value is not None and value != "" and value != []


def nested(row: dict[str, Any], outer: str, inner: str) -> Any:
    """``row[outer][inner]`` when ``row[outer]`` is a dict (verl's struct columns)."""
    d = row.get(outer)
    return d.get(inner) if isinstance(d, dict) else None


def answer_of(row: dict[str, Any]) -> Any:
    """The reference answer: None, a string, or a list (``golden_answers``, verl's
    ``{"target": [...]}`` and answers joined by ``ANSWER_SPLIT``)."""
    value = next((row[n] for n in ANSWER_FIELDS if present(row.get(n))), None)
    if value is None:
        value = nested(row, "reward_model", "ground_truth")
    if isinstance(value, dict):  # Search-R1's parquet: {"target": [...]}
        value = value.get("target")
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str) and ANSWER_SPLIT in value:
        value = [a for a in value.split(ANSWER_SPLIT) if a]
    return value if present(value) else None
