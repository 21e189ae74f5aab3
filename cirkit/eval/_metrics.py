"""Metrics over graded trajectories: accuracy with a seeded bootstrap interval, Avg@k, Pass@k,
breakdowns by source and topic, tool use, finish reasons, replay coverage.

Everything is a pure function of the graded rows and the seed: the same rows give the same
numbers, whatever order the rollouts finished in (rows are sorted first).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BOOTSTRAP_RESAMPLES", "GradedRow", "bootstrap_interval", "pass_at_k", "summarize",
           "topics_of"]

BOOTSTRAP_RESAMPLES = 1000


@dataclass(slots=True)
class GradedRow:
    """One trajectory, graded: what the report needs of it and nothing more."""

    question_id: str
    sample_index: int
    source: str
    prediction: str | None
    finish_reason: str
    searches: int
    visits: int
    code_blocks: int
    scores: dict[str, float] = field(default_factory=dict)  # grader -> score
    verdict: str | None = None  # the judge's, when it graded
    topics: tuple[str, ...] = ()


def topics_of(metadata: Mapping[str, Any]) -> tuple[str, ...]:
    """A question's topics: SimpleQA's ``topic``, Frames' ``reasoning_types`` (``a | b``)."""
    out: list[str] = []
    topic = metadata.get("topic")
    if isinstance(topic, str) and topic.strip():
        out.append(topic.strip())
    rt = metadata.get("reasoning_types")
    if isinstance(rt, str):
        out += [t.strip() for t in rt.split("|") if t.strip()]
    elif isinstance(rt, list):
        out += [str(t).strip() for t in rt if str(t).strip()]
    return tuple(dict.fromkeys(out))


def bootstrap_interval(values: Sequence[float], *, seed: int,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """The 95% percentile bootstrap interval of the mean of ``values`` (seeded)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased Pass@k of ``c`` correct among ``n`` samples (Chen et al., 2021)."""
    if n - c < k:
        return 1.0
    prob = 1.0
    for i in range(n - c + 1, n + 1):
        prob *= 1.0 - k / i
    return 1.0 - prob


def _by_question(rows: Iterable[GradedRow]) -> dict[str, list[GradedRow]]:
    out: dict[str, list[GradedRow]] = defaultdict(list)
    for r in rows:
        out[r.question_id].append(r)
    return {q: sorted(rs, key=lambda r: r.sample_index) for q, rs in sorted(out.items())}


def _accuracy(groups: Mapping[str, list[GradedRow]], grader: str, seed: int) -> dict[str, Any]:
    per_q = [float(np.mean([r.scores[grader] for r in rs])) for rs in groups.values()]
    lo, hi = bootstrap_interval(per_q, seed=seed)
    return {"questions": len(per_q), "accuracy": float(np.mean(per_q)) if per_q else 0.0,
            "ci95": [lo, hi]}


def _grader_block(groups: Mapping[str, list[GradedRow]], grader: str, k: int,
                  seed: int) -> dict[str, Any]:
    block = _accuracy(groups, grader, seed)
    block["avg_at_k"] = block["accuracy"]
    hits = [(len(rs), sum(1 for r in rs if r.scores[grader] >= 1.0)) for rs in groups.values()]
    block["pass_at_k"] = float(np.mean([pass_at_k(n, c, min(k, n)) for n, c in hits])) \
        if hits else 0.0
    by_source: dict[str, dict[str, list[GradedRow]]] = defaultdict(dict)
    by_topic: dict[str, dict[str, list[GradedRow]]] = defaultdict(dict)
    for q, rs in groups.items():
        by_source[rs[0].source][q] = rs
        for t in rs[0].topics:
            by_topic[t][q] = rs
    block["by_source"] = {s: _accuracy(g, grader, seed) for s, g in sorted(by_source.items())}
    block["by_topic"] = {t: _accuracy(g, grader, seed) for t, g in sorted(by_topic.items())}
    return block


def _counts(values: Iterable[int]) -> dict[str, int]:
    c = Counter(values)
    return {str(v): c[v] for v in sorted(c)}


def summarize(rows: Sequence[GradedRow], *, graders: Sequence[str], samples: int, seed: int,
              coverage: tuple[int, int]) -> dict[str, Any]:
    """The report's figures. ``coverage``: (calls the store answered, calls made)."""
    groups = _by_question(rows)
    n = max(len(rows), 1)
    nq = max(len(groups), 1)
    verdicts = Counter(r.verdict for r in rows if r.verdict is not None)
    no_answer = sum(1 for r in rows if r.prediction is None)
    not_attempted = verdicts["NOT_ATTEMPTED"] + no_answer  # no answer is never judged
    answered, calls = coverage
    report: dict[str, Any] = {
        "questions": len(groups), "samples": samples, "trajectories": len(rows),
        "graders": {g: _grader_block(groups, g, samples, seed) for g in graders},
        "not_attempted_rate": not_attempted / n,
        "finish_reasons": dict(sorted(Counter(r.finish_reason for r in rows).items())),
        "tools": {
            "searches_per_question": sum(r.searches for r in rows) / nq,
            "visits_per_question": sum(r.visits for r in rows) / nq,
            "code_blocks_per_question": sum(r.code_blocks for r in rows) / nq,
            "code_blocks_histogram": _counts(r.code_blocks for r in rows),
            "tool_calls_histogram": _counts(r.searches + r.visits for r in rows),
        },
        "replay_coverage": {"answered": answered, "calls": calls,
                            "share": answered / calls if calls else 1.0},
    }
    if "judge" in graders:
        report["judge"] = {"verdicts": {v: verdicts[v] for v in sorted(verdicts)},
                           "unparsable": verdicts["unparsable"],
                           "graded": sum(verdicts.values())}
    return report
