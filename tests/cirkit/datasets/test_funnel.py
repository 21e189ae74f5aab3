"""Every SFT filter drops what it should, with its stable reason; the funnel adds up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cirkit.cir import render_messages, wrap_observation
from cirkit.datasets import (
    Filter,
    Funnel,
    RejectSink,
    SFTOptions,
    Verdict,
    build_sft,
    normalize_answer,
    parse_verdict,
)
from cirkit.rollout import ChatTokenizer

from .conftest import ANSWER, CODE, CODE2, DATE, OBS, OBS2, THINK, cir_text, trajectory, write_jsonl
from .test_sft import rows_of

BAD_CODE = "Try.\n<start_code>\n```python\nprint(web_search('x'\n```<end_code>"


def _inputs(tok: ChatTokenizer, tmp: Path) -> tuple[list[Path], dict[str, tuple[str, str]], int]:
    """Trajectories and text traces, each meant to be dropped by one filter; the expected
    (filter, reason) per id, and the token count of the good row."""
    q = "What is the capital of France?"
    good = trajectory(tok, q, [CODE, ANSWER], [OBS], qid="good")
    long_obs = OBS * 40
    recs: list[dict[str, Any]] = [
        good,
        trajectory(tok, q + " (judged)", [CODE, ANSWER], [OBS], qid="judged",
                   ground_truth="Lyon", judge="A"),
        trajectory(tok, q, [CODE, ANSWER], [OBS], qid="cut", finish="max_code_blocks"),
        {**trajectory(tok, q, [CODE, ANSWER], [OBS], qid="mask"),
         "response_mask": [1, 0]},
        trajectory(tok, q, [CODE, ANSWER], [OBS], qid="tpl", prompt_template_sha256="0" * 64),
        {**trajectory(tok, q, [CODE, ANSWER], [OBS], qid="date"),
         "date": "2024-01-01"},
        trajectory(tok, q, [CODE, "\n\nstill thinking"], [OBS], qid="noanswer"),
        trajectory(tok, q, [BAD_CODE, ANSWER], [OBS], qid="syntax"),
        trajectory(tok, q, [CODE, CODE2, "\n\n" + CODE, ANSWER], [OBS, OBS2, OBS],
                   qid="blocks"),
        trajectory(tok, q, [CODE, ANSWER], [OBS], qid="wrong", ground_truth="Lyon"),
        trajectory(tok, q, [CODE, ANSWER], [OBS], qid="judged_b", judge="B"),
        trajectory(tok, q, [CODE, ANSWER], [OBS], qid="nogt", ground_truth=None),
        {**good, "id": "good-again"},
        trajectory(tok, q, [CODE, ANSWER], [long_obs], qid="long"),
    ]
    traj = write_jsonl(tmp / "rollouts" / "rollouts-00000-of-00001.jsonl", recs)
    text = write_jsonl(tmp / "teacher.jsonl", [
        {"id": "t-good", "question": "Where is Paris?", "response": cir_text([CODE, ANSWER], [OBS]),
         "answer": "paris!"},
        {"id": "t-empty", "foo": 1},
        {"id": "t-noasst", "messages": [{"role": "user", "content": "hi"}]},
        {"id": "t-parts", "messages": [{"role": "user", "content": "hi"},
                                       {"role": "assistant", "content": 5}]},
    ])
    expected = {
        "cut": ("finish_reason", "finish_max_code_blocks"),
        "mask": ("token_ids", "mask_length_mismatch"),
        "tpl": ("prompt_rebuilt", "template_mismatch"),
        "date": ("prompt_rebuilt", "prompt_mismatch"),
        "noanswer": ("has_final_answer", "no_final_answer"),
        "syntax": ("valid_format", "syntax_error"),
        "blocks": ("max_code_blocks", "too_many_code_blocks"),
        "wrong": ("correct", "incorrect"),
        "judged_b": ("correct", "judged_incorrect"),
        "nogt": ("correct", "no_ground_truth"),
        "good-again": ("duplicate", "duplicate"),
        "long": ("max_tokens", "too_many_tokens"),
        "t-empty": ("well_formed", "no_trace"),
        "t-noasst": ("well_formed", "no_assistant_message"),
        "t-parts": ("well_formed", "message_content_not_text"),
    }
    n_good = len(good["prompt_token_ids"]) + len(good["response_token_ids"])
    return [traj.parent, text], expected, n_good


def test_each_filter_drops_with_its_reason_and_the_funnel_adds_up(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    inputs, expected, n_good = _inputs(chat_tokenizer, tmp_path)
    reject = tmp_path / "rejects.jsonl"
    res = build_sft(inputs, tmp_path / "out", tokenizer=chat_tokenizer.name, options=SFTOptions(
        max_code_blocks=2, max_tokens=n_good + 100, require_correct=True, reject=reject))
    kept = [r["trajectory_id"] for r in rows_of(res)]
    assert kept == ["good-0", "judged-0", "t-good"]
    funnel = res.report["funnel"]
    assert funnel["rows_in"] == 18
    assert funnel["rows_out"] == 3 == res.rows_out
    assert funnel["rows_in"] - sum(f["removed"] for f in funnel["filters"]) == funnel["rows_out"]
    by_filter: dict[str, dict[str, int]] = {}
    for f, reason in expected.values():
        by_filter.setdefault(f, {}).setdefault(reason, 0)
        by_filter[f][reason] += 1
    assert {f["name"]: f["reasons"] for f in funnel["filters"] if f["removed"]} == by_filter
    seen = [f["seen"] for f in funnel["filters"]]
    assert seen == sorted(seen, reverse=True)  # each filter sees what the last one kept
    rejects = [json.loads(line) for line in reject.read_text().splitlines()]
    got = {r["trajectory_id"]: (r["filter"], r["reason"]) for r in rejects}
    want = {(k if k.startswith("t-") or k == "good-again" else f"{k}-0"): v
            for k, v in expected.items()}
    assert got == want
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| valid_format | -1 | syntax_error 1 |" in readme


def test_without_require_correct_the_correct_filter_is_absent(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    rec = trajectory(chat_tokenizer, "Q?", [CODE, ANSWER], [OBS], ground_truth="Lyon")
    res = build_sft([write_jsonl(tmp_path / "r.jsonl", [rec])], tmp_path / "out",
                    tokenizer=chat_tokenizer.name)
    assert res.rows_out == 1
    assert "correct" not in [f["name"] for f in res.report["funnel"]["filters"]]


def test_a_template_file_rebuilds_the_prompt_it_made(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    from cirkit.cir import PromptTemplate

    tpl_file = tmp_path / "prompt.txt"
    tpl_file.write_text("Tools:\n{tools}\nDate: {date}\n")
    tpl = PromptTemplate.from_file(tpl_file)
    msgs = render_messages("Q?", template=tpl, date=DATE)
    rec = trajectory(chat_tokenizer, "Q?", [CODE, ANSWER], [OBS],
                     prompt_template_sha256=tpl.sha256)
    rec["prompt_text"] = chat_tokenizer.chat_prompt(msgs) + THINK
    rec["prompt_token_ids"] = chat_tokenizer.encode(rec["prompt_text"])
    src = write_jsonl(tmp_path / "r.jsonl", [rec])
    res = build_sft([src], tmp_path / "a", tokenizer=chat_tokenizer.name,
                    options=SFTOptions(allow_empty=True))
    assert res.report["funnel"]["filters"][3]["reasons"] == {"template_mismatch": 1}
    res = build_sft([src], tmp_path / "b", tokenizer=chat_tokenizer.name,
                    options=SFTOptions(template=tpl_file))
    (row,) = rows_of(res)
    assert row["messages"][0]["content"] == msgs[0]["content"]


class _Even(Filter[Any]):
    name = "even"

    def check(self, row: Any) -> Verdict:
        return True if row.n % 2 == 0 else (False, "odd")


class _Row:
    def __init__(self, n: int) -> None:
        self.n = n

    def reject_record(self) -> dict[str, Any]:
        return {"n": self.n}


def test_filter_base_class_owns_the_bookkeeping(tmp_path: Path) -> None:
    sink = RejectSink(tmp_path / "r.jsonl")
    funnel: Funnel[Any] = Funnel([_Even()], sink)
    kept = funnel.run([_Row(i) for i in range(5)])
    funnel.close()
    assert [r.n for r in kept] == [0, 2, 4]
    assert funnel.to_json() == {"rows_in": 5, "rows_out": 3, "filters": [
        {"name": "even", "description": "", "seen": 5, "removed": 2, "reasons": {"odd": 2}}]}
    assert [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()] == [
        {"filter": "even", "reason": "odd", "n": 1}, {"filter": "even", "reason": "odd", "n": 3}]


@pytest.mark.parametrize(("a", "b"), [
    ("The Eiffel Tower!", "eiffel tower"), ("  Paris,  France ", "paris france"),
    ("An apple a day", "apple day"), ("1,000", "1000"),
])
def test_normalize_answer_is_squad_style(a: str, b: str) -> None:
    assert normalize_answer(a) == b


@pytest.mark.parametrize(("value", "verdict"), [
    (True, True), (False, False), ("A", True), ("B", False), ("C", False), ("correct", True),
    ("INCORRECT", False), (1, True), (0, False), ("true", True), (None, None), ("maybe", None),
])
def test_judge_verdicts(value: Any, verdict: bool | None) -> None:
    assert parse_verdict(value) == verdict


def test_observation_fixture_matches_the_format() -> None:
    assert cir_text([CODE, ANSWER], [OBS]).count(wrap_observation(OBS)) == 1


def test_any_of_several_ground_truths_is_correct(chat_tokenizer: ChatTokenizer,
                                                 tmp_path: Path) -> None:
    recs = [trajectory(chat_tokenizer, "Q1?", [CODE, ANSWER], [OBS], qid="a",
                       ground_truth=["Lyon", "paris"]),
            trajectory(chat_tokenizer, "Q2?", [CODE, ANSWER], [OBS], qid="b",
                       ground_truth=["Lyon", "Nice"]),
            trajectory(chat_tokenizer, "Q3?", [CODE, ANSWER], [OBS], qid="c", ground_truth=7,
                       correct=True)]
    res = build_sft([write_jsonl(tmp_path / "r.jsonl", recs)], tmp_path / "out",
                    tokenizer=chat_tokenizer.name, options=SFTOptions(require_correct=True))
    assert [r["question_id"] for r in rows_of(res)] == ["a", "c"]
