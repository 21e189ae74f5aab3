"""The CIR reward for verl: ``custom_reward_function.path`` is this file, ``name`` is
``compute_score``.

verl's reward managers call ``compute_score(data_source=..., solution_str=...,
ground_truth=..., extra_info=..., **reward_kwargs)`` with the decoded response (special tokens
skipped) and the row's ``reward_model["ground_truth"]``; a dict result must hold ``score``, and
its other keys are logged as ``reward_extra_info`` (one list per key, so every call returns the
same keys). verl loads this file by path, not as a package module, so it imports absolutely.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cirkit.answers import AnswerMetric, extract_answer, gold_answers, score_answer

__all__ = ["compute_score"]


def compute_score(data_source: str | None, solution_str: str, ground_truth: Any,
                  extra_info: Mapping[str, Any] | None = None,
                  **kwargs: Any) -> dict[str, Any]:
    """Score the CIR answer (the text after ``</think>``) against the gold answers.

    ``metric`` ("em", the default, normalised exact match; "f1"; "cover_em") comes from
    ``extra_info["metric"]``, else from ``reward_kwargs`` (``metric=...``). The gold answers
    may be a string, a list (or numpy array) of strings, or ``{"target": [...]}``. A response
    without an answer, or a row without gold answers, scores 0 with the reason given.
    Returns ``score``, ``acc`` (the score as verl's default key), ``pred`` (the answer read),
    ``metric`` and ``reason`` ("" when scored).
    """
    info = extra_info if isinstance(extra_info, Mapping) else {}
    metric = AnswerMetric.parse(str(info.get("metric") or kwargs.get("metric") or "em"))
    golds = gold_answers(ground_truth)
    pred = extract_answer(solution_str or "")
    reason = ""
    if not golds:
        reason = "no gold answer in ground_truth"
    elif pred is None:
        reason = "no answer after </think>" if "</think>" in (solution_str or "") \
            else "thinking never closed (no </think>)"
    score = 0.0 if reason else float(score_answer(pred or "", golds, metric))
    return {"score": score, "acc": score, "pred": pred or "", "metric": metric.value,
            "reason": reason}
