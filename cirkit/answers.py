"""Answers: how a predicted answer is read, normalised and scored against the gold answers.

One home for what the RL reward (``cirkit.integrations.verl``), the evaluation graders
(``cirkit eval``) and the dataset filters (``--require-correct``, ``--exclude-eval``) share, so
a model is rewarded during training exactly as it is graded after it.

Normalisation is SQuAD's (lower-case, no punctuation, no articles, single spaces), the one
Search-R1 and verl's QA scorers use. Gold answers come in every shape the field writes them:
a string, a list of strings, answers joined by ``<|answer_split|>`` (verl-format search
datasets) or Search-R1's ``{"target": [...]}``; ``gold_answers`` reads them all.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from cirkit.cir import final_answer
from cirkit.errors import CirkitError

__all__ = [
    "AnswerMetric",
    "cover_exact_match",
    "exact_match",
    "extract_answer",
    "f1_score",
    "gold_answers",
    "normalize_answer",
    "score_answer",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_ANSWER_SPLIT = "<|answer_split|>"  # cirkit.inputs.ANSWER_SPLIT; inputs imports nothing of ours


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return " ".join(text.split())


class AnswerMetric(str, Enum):
    """How a prediction is scored against its gold answers (best over the golds)."""

    EM = "em"  #: normalised exact match
    F1 = "f1"  #: SQuAD token F1
    COVER_EM = "cover_em"  #: a normalised gold answer occurs in the normalised prediction

    @classmethod
    def parse(cls, value: str | AnswerMetric) -> AnswerMetric:
        """The metric named ``value``; the error lists the valid names."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise CirkitError(f"unknown answer metric {value!r}", setting="metric",
                              hint=f"use one of: {valid}") from None


def gold_answers(ground_truth: Any) -> tuple[str, ...]:
    """The gold answers as a tuple of non-empty strings, from any shape the field writes:
    a string (split on ``<|answer_split|>``), a list or array of strings, or
    ``{"target": [...]}``. An unusable value gives ``()`` (the caller says why it cannot score).
    """
    value = ground_truth
    if isinstance(value, Mapping):
        value = value.get("target")
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(a for a in value.split(_ANSWER_SPLIT) if a.strip())
    if isinstance(value, bytes | bytearray):
        return ()
    if isinstance(value, Iterable):  # list, tuple, numpy object array (verl's non-tensor batch)
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.extend(a for a in item.split(_ANSWER_SPLIT) if a.strip())
            elif isinstance(item, int | float) and not isinstance(item, bool):
                out.append(str(item))
        return tuple(out)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (str(value),)
    return ()


def extract_answer(solution: str) -> str | None:
    """The answer a CIR response gives: the text after ``</think>`` (stripped); None when the
    response never closed its thinking, or gave nothing after it."""
    answer = final_answer(solution)
    return answer or None


def exact_match(prediction: str, golds: Iterable[str]) -> bool:
    """Whether the normalised prediction equals a normalised gold answer."""
    got = normalize_answer(prediction)
    return any(got == normalize_answer(g) for g in golds)


def cover_exact_match(prediction: str, golds: Iterable[str]) -> bool:
    """Whether a normalised gold answer occurs in the normalised prediction (Search-R1's
    ``subem``); an empty gold never counts."""
    got = normalize_answer(prediction)
    for g in golds:
        want = normalize_answer(g)
        if want and want in got:
            return True
    return False


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    """SQuAD token F1 of the normalised prediction, best over the gold answers."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(g).split()) for g in golds), default=0.0)


def score_answer(prediction: str, golds: Iterable[str],
                 metric: AnswerMetric | str = AnswerMetric.EM) -> float:
    """``prediction`` scored by ``metric`` against ``golds``: 1.0/0.0 for em and cover_em, the
    token F1 for f1."""
    m = AnswerMetric.parse(metric)
    if m is AnswerMetric.F1:
        return f1_score(prediction, golds)
    hit = exact_match(prediction, golds) if m is AnswerMetric.EM else \
        cover_exact_match(prediction, golds)
    return 1.0 if hit else 0.0
