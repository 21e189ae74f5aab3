"""``cirkit eval compare RUN_A RUN_B``: are two runs' scores different on the same questions?

Per question, each run's score is its mean over samples (by one grader); the difference is
paired, its interval a seeded paired bootstrap, and for 0/1 graders an exact McNemar test
(two-sided binomial on the discordant questions, computed with integers, no approximation).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import Any

import numpy as np

from cirkit.errors import CirkitError

from ._metrics import BOOTSTRAP_RESAMPLES
from ._run import read_grades

__all__ = ["compare_runs", "compare_scores", "mcnemar_exact"]


def mcnemar_exact(b: int, c: int) -> float:
    """The exact two-sided McNemar p-value for ``b`` and ``c`` discordant pairs:
    ``min(1, 2 * P(X <= min(b, c)))`` with X ~ Binomial(b + c, 1/2), computed exactly."""
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(comb(n, i) for i in range(min(b, c) + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


def _per_question(rows: Sequence[dict[str, Any]], grader: str) -> dict[str, float]:
    acc: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        scores = r.get("scores") or {}
        if grader not in scores:
            raise CirkitError(f"a run was not graded with {grader!r}", setting="grader",
                              hint="compare by a grader both runs used (--grader)")
        acc[r["question_id"]].append(float(scores[grader]))
    return {q: sum(v) / len(v) for q, v in acc.items()}


def compare_scores(a: dict[str, float], b: dict[str, float], *, seed: int = 0
                   ) -> dict[str, Any]:
    """Paired comparison of two per-question score maps over the questions both hold."""
    common = sorted(set(a) & set(b))
    if not common:
        raise CirkitError("the two runs share no question", setting="runs",
                          hint="compare two evaluations of the same benchmark files")
    xa = np.array([a[q] for q in common])
    xb = np.array([b[q] for q in common])
    d = xb - xa
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(BOOTSTRAP_RESAMPLES, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    gained = [q for q in common if a[q] < 1.0 <= b[q]]  # wrong in A, right in B
    lost = [q for q in common if b[q] < 1.0 <= a[q]]
    return {"questions": len(common), "only_a": len(set(a) - set(b)),
            "only_b": len(set(b) - set(a)),
            "accuracy_a": float(xa.mean()), "accuracy_b": float(xb.mean()),
            "difference": float(d.mean()), "ci95": [float(lo), float(hi)],
            "mcnemar_p": mcnemar_exact(len(gained), len(lost)),
            "flipped_to_correct": gained, "flipped_to_incorrect": lost}


def compare_runs(run_a: Path, run_b: Path, *, grader: str = "em", seed: int = 0
                 ) -> dict[str, Any]:
    """Compare two graded runs by ``grader`` (B minus A)."""
    out = compare_scores(_per_question(read_grades(run_a), grader),
                         _per_question(read_grades(run_b), grader), seed=seed)
    out["grader"] = grader
    return out
