"""cirkit.answers: one reading of answers for the reward, the graders and the filters."""

from __future__ import annotations

import pytest

from cirkit.answers import (
    AnswerMetric,
    cover_exact_match,
    exact_match,
    extract_answer,
    f1_score,
    gold_answers,
    normalize_answer,
    score_answer,
)
from cirkit.errors import CirkitError


@pytest.mark.parametrize(("text", "want"), [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  An   apple, a pear ", "apple pear"),
    ("Théâtre", "théâtre"),
    ("", ""),
])
def test_normalisation_is_squad_style(text: str, want: str) -> None:
    assert normalize_answer(text) == want


@pytest.mark.parametrize(("truth", "want"), [
    ("Paris", ("Paris",)),
    ("Paris<|answer_split|>City of Light", ("Paris", "City of Light")),
    (["Paris", "", "Lutetia"], ("Paris", "Lutetia")),
    (("Paris",), ("Paris",)),
    ({"target": ["Paris", "Lutetia"]}, ("Paris", "Lutetia")),
    ({"target": "Paris"}, ("Paris",)),
    (1989, ("1989",)),
    ([1989, "1989 AD"], ("1989", "1989 AD")),
    (None, ()),
    ({"answer": "Paris"}, ()),
    (True, ()),
    (b"Paris", ()),
])
def test_gold_answers_read_every_published_shape(truth: object, want: tuple[str, ...]) -> None:
    assert gold_answers(truth) == want


def test_gold_answers_read_a_numpy_object_array() -> None:
    np = pytest.importorskip("numpy")
    assert gold_answers(np.array(["a", "b"], dtype=object)) == ("a", "b")


def test_the_answer_is_the_text_after_thinking() -> None:
    assert extract_answer("<think>hmm</think>\n\n Paris \n") == "Paris"
    assert extract_answer("<think>still thinking") is None
    assert extract_answer("<think>done</think>   ") is None


def test_exact_and_cover_match() -> None:
    assert exact_match("the Paris.", ["paris"])
    assert not exact_match("Paris, France", ["Paris"])
    assert cover_exact_match("Paris, France", ["Paris"])
    assert not cover_exact_match("Paris", ["Paris, France"])
    assert not cover_exact_match("anything", ["", "the"])  # an empty gold never covers


def test_f1_is_the_best_over_golds() -> None:
    assert f1_score("Barack Obama", ["Obama", "Michelle Obama"]) == pytest.approx(2 / 3)
    assert f1_score("Barack Obama", ["barack obama"]) == 1.0
    assert f1_score("x", []) == 0.0
    assert f1_score("", ["x"]) == 0.0


def test_score_answer_by_metric_name() -> None:
    assert score_answer("Paris", ["paris"], "em") == 1.0
    assert score_answer("in Paris", ["paris"], AnswerMetric.COVER_EM) == 1.0
    assert score_answer("in Paris", ["paris"]) == 0.0
    assert score_answer("in Paris", ["paris"], "f1") == pytest.approx(2 / 3)


def test_an_unknown_metric_names_the_valid_ones() -> None:
    with pytest.raises(CirkitError) as e:
        score_answer("a", ["a"], "accuracy")
    assert e.value.hint == "use one of: em, f1, cover_em"
    assert e.value.setting == "metric"
