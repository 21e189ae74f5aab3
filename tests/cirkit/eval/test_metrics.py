"""The report's figures: accuracy with its seeded interval, Avg@k, Pass@k, not attempted,
tool use; the judge verdict parser; byte-deterministic report.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cirkit.errors import CirkitError
from cirkit.eval import (
    Judge,
    JudgeCall,
    JudgeTemplate,
    bootstrap_interval,
    dumps_report,
    parse_verdict,
    pass_at_k,
)
from recorders import Mode, Recorder, Store
from tests.cirkit.eval.synthetic import GOLD, make_run


def test_pass_at_k_is_the_unbiased_estimator() -> None:
    assert pass_at_k(4, 0, 4) == 0.0 and pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)


def test_the_bootstrap_is_seeded() -> None:
    v = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert bootstrap_interval(v, seed=3) == bootstrap_interval(v, seed=3)
    assert bootstrap_interval(v, seed=3) != bootstrap_interval(v, seed=4)
    assert bootstrap_interval([1.0] * 5, seed=0) == (1.0, 1.0)


@pytest.mark.parametrize(("reply", "verdict"), [
    ("CORRECT", "CORRECT"), (" incorrect.\n", "INCORRECT"), ("NOT_ATTEMPTED", "NOT_ATTEMPTED"),
    ("B", "INCORRECT"), ("The answer is CORRECT", "CORRECT"),
    ("CORRECT or INCORRECT", "unparsable"), ("Paris is nice", "unparsable"), ("", "unparsable"),
])
def test_a_judge_reply_is_parsed_or_counted_unparsable(reply: str, verdict: str) -> None:
    assert parse_verdict(reply) == verdict


def test_avg_and_pass_at_k_not_attempted_and_tool_use(tmp_path: Path) -> None:
    answers: dict[str, list[str | None]] = {q: ["no", "no"] for q in GOLD}
    answers["q0"] = [GOLD["q0"], GOLD["q0"]]
    answers["q1"] = [GOLD["q1"], "no"]
    answers["q2"] = [None, None]
    report = make_run(tmp_path / "run", answers, searches=2)
    em = report["graders"]
    assert isinstance(em, dict)
    assert em["em"]["accuracy"] == em["em"]["avg_at_k"] == pytest.approx(1.5 / 10)
    assert em["em"]["pass_at_k"] == pytest.approx(2 / 10)
    assert report["not_attempted_rate"] == pytest.approx(2 / 20)
    assert report["finish_reasons"] == {"answer": 18, "max_code_blocks": 2}
    tools = report["tools"]
    assert isinstance(tools, dict)
    assert tools["searches_per_question"] == 4.0 and tools["code_blocks_per_question"] == 2.0
    assert tools["tool_calls_histogram"] == {"2": 20}
    raw = (tmp_path / "run" / "report.json").read_bytes()
    assert raw == dumps_report(json.loads(raw))  # sorted keys, fixed floats: a fixed point
    assert b'"accuracy": 0.15,' in raw
    make_run(tmp_path / "twin", answers, searches=2)
    assert (tmp_path / "twin" / "report.json").read_bytes() == raw


def test_a_judge_template_must_name_its_fields(tmp_path: Path) -> None:
    bad = tmp_path / "t.txt"
    bad.write_text("Grade {question} against {gold_answers}.")
    with pytest.raises(CirkitError, match="lacks \\{predicted_answer\\}"):
        JudgeTemplate.from_file(bad)
    assert "{predicted_answer}" in JudgeTemplate.builtin().text


def test_a_missing_judge_call_in_replay_names_the_question_and_the_key(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as st:
        judge = Judge(model="j", base_url=None, recorder=Recorder(st, mode=Mode.REPLAY),
                      template=JudgeTemplate.builtin())
        with pytest.raises(CirkitError, match=r"question 'bench:q3' was never recorded "
                                              r"\(key [0-9a-f]{64}\)"):
            judge.replies([JudgeCall("bench:q3", "what?", ("a",), "b")])


def test_the_rule_graders_are_the_answers_module_scores() -> None:
    from cirkit.answers import score_answer
    from cirkit.eval import score_rule

    cases = [("The Seine.", ("Seine",)), ("seine river", ("the Seine", "x")), ("no", ("yes",))]
    for pred, golds in cases:
        for g in ("em", "f1", "cover_em"):
            assert score_rule(g, pred, golds) == score_answer(pred, golds, g)
        assert score_rule("em", None, golds) == 0.0
