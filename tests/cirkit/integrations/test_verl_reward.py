"""The CIR reward as verl calls it: the answer after ``</think>``, EM by default, F1 or cover-EM
on request, every shape of ground truth, 0 with a reason when there is nothing to score; and
loaded by path the way verl loads ``custom_reward_function.path`` (verl's own loader is run in
test_verl_consumer.py)."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from cirkit.errors import CirkitError
from cirkit.integrations.verl import REWARD_PATH, compute_score

SOLUTION = "<think>\nsearching...\n</think>\n\nThe Eiffel Tower."


@pytest.mark.parametrize("ground_truth", [
    "Eiffel Tower", ["the eiffel tower"], np.array(["Louvre", "Eiffel tower"], dtype=object),
    {"target": ["Eiffel Tower"]}, {"target": np.array(["Eiffel Tower"])},
    "Louvre<|answer_split|>Eiffel Tower",
])
def test_every_ground_truth_shape_scores_exact_match(ground_truth: Any) -> None:
    got = compute_score("nq", SOLUTION, ground_truth)
    assert got == {"score": 1.0, "acc": 1.0, "pred": "The Eiffel Tower.", "metric": "em",
                   "reason": ""}


def test_the_metric_comes_from_extra_info_or_reward_kwargs() -> None:
    gold = ["Eiffel Tower in Paris"]
    assert compute_score("nq", SOLUTION, gold)["score"] == 0.0
    # "eiffel tower" against "eiffel tower in paris": precision 1, recall 1/2
    assert compute_score("nq", SOLUTION, gold, {"metric": "f1"})["score"] == pytest.approx(
        2 * 1 * 0.5 / 1.5)
    assert compute_score("nq", SOLUTION, ["eiffel"], None, metric="cover_em")["score"] == 1.0
    # the row's choice wins over the trainer-wide default
    assert compute_score("nq", SOLUTION, ["eiffel"], {"metric": "em"},
                         metric="cover_em")["metric"] == "em"
    with pytest.raises(CirkitError, match="unknown answer metric") as e:
        compute_score("nq", SOLUTION, gold, {"metric": "bleu"})
    assert "em, f1, cover_em" in (e.value.hint or "")


@pytest.mark.parametrize(("solution", "ground_truth", "reason"), [
    ("<think>\nstill going", ["x"], "thinking never closed (no </think>)"),
    ("<think>\ndone\n</think>\n\n", ["x"], "no answer after </think>"),
    (SOLUTION, None, "no gold answer in ground_truth"),
    (SOLUTION, {"target": []}, "no gold answer in ground_truth"),
])
def test_nothing_to_score_is_zero_with_the_reason(solution: str, ground_truth: Any,
                                                   reason: str) -> None:
    got = compute_score("nq", solution, ground_truth, {})
    assert (got["score"], got["acc"], got["reason"]) == (0.0, 0.0, reason)
    assert set(got) == {"score", "acc", "pred", "metric", "reason"}  # one set of keys, always


def test_loaded_by_file_path_as_verl_loads_it() -> None:
    spec = importlib.util.spec_from_file_location("custom_module", REWARD_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.compute_score(data_source="x", solution_str=SOLUTION,
                                ground_truth=["Eiffel Tower"], extra_info=None)["score"] == 1.0
