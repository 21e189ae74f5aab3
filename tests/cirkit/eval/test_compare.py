"""`cirkit eval compare`: paired differences, a paired bootstrap interval, the exact McNemar
p-value and the flipped questions, on two runs with known flips."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.eval import compare_runs, mcnemar_exact
from tests.cirkit.eval.synthetic import GOLD, make_run


def _answers(right: set[str]) -> dict[str, list[str | None]]:
    return {q: [GOLD[q] if q in right else "wrong"] for q in GOLD}


def test_mcnemar_is_the_exact_two_sided_binomial() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == 2 / 32  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert mcnemar_exact(1, 6) == mcnemar_exact(6, 1) == 2 * (1 + 7) / 128
    assert mcnemar_exact(3, 3) == 1.0  # capped
    assert mcnemar_exact(2, 20) == 2 * sum(comb(22, i) for i in range(3)) / 2 ** 22


def test_two_runs_with_known_flips(tmp_path: Path) -> None:
    a = {"q0", "q1", "q2", "q3", "q4"}
    b = {"q0", "q1", "q5", "q6", "q7", "q8"}  # gains q5-q8, loses q2-q4
    make_run(tmp_path / "a", _answers(a))
    make_run(tmp_path / "b", _answers(b))
    c = compare_runs(tmp_path / "a", tmp_path / "b", grader="em", seed=0)
    assert c["questions"] == 10
    assert (c["accuracy_a"], c["accuracy_b"]) == (0.5, 0.6)
    assert abs(c["difference"] - 0.1) < 1e-12
    lo, hi = c["ci95"]
    assert lo <= 0.1 <= hi and lo < 0 < hi  # 7 discordant pairs: no clear winner
    assert c["flipped_to_correct"] == ["bench:q5", "bench:q6", "bench:q7", "bench:q8"]
    assert c["flipped_to_incorrect"] == ["bench:q2", "bench:q3", "bench:q4"]
    assert c["mcnemar_p"] == mcnemar_exact(4, 3) == 1.0
    assert compare_runs(tmp_path / "a", tmp_path / "b", seed=0) == c  # seeded

    r = CliRunner().invoke(cli, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"),
                                 "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["flipped_to_incorrect"] == c["flipped_to_incorrect"]
    r = CliRunner().invoke(cli, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert "B - A +10.0 points" in r.output and "  bench:q5" in r.output


def test_a_one_sided_change_is_significant(tmp_path: Path) -> None:
    make_run(tmp_path / "a", _answers(set()))
    make_run(tmp_path / "b", _answers(set(GOLD)))
    c = compare_runs(tmp_path / "a", tmp_path / "b")
    assert c["mcnemar_p"] == 2 / 2 ** 10 and c["ci95"] == [1.0, 1.0]
