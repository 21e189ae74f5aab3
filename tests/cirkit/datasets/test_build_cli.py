"""``cirkit build sft|rl`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from cirkit.cli import Cli, build
from cirkit.rollout import ChatTokenizer

from .conftest import ANSWER, CODE, OBS, cir_text, trajectory, write_jsonl


def test_build_sft_and_rl(chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    roll = write_jsonl(tmp_path / "roll" / "rollouts-00000-of-00001.jsonl",
                       [trajectory(chat_tokenizer, "Q?", [CODE, ANSWER], [OBS])]).parent
    teacher = write_jsonl(tmp_path / "teacher.jsonl",
                          [{"question": "Q2?", "response": cir_text([CODE, ANSWER], [OBS])}])
    runner = CliRunner()
    r = runner.invoke(build, ["sft", str(roll), str(teacher), "--tokenizer",
                              chat_tokenizer.name, "--out", str(tmp_path / "sft"),
                              "--license", "mit", "--reject", str(tmp_path / "rej.jsonl"),
                              "--train-on-observations", "--max-tokens", "5000"])
    assert r.exit_code == 0, r.output
    assert "rows out" in r.output and "2 rows in 1 shard(s)" in r.output
    assert json.loads((tmp_path / "sft" / "build.json").read_text())["license"] == "mit"
    qs = write_jsonl(tmp_path / "q.jsonl", [{"question": "Q?", "answer": "A"},
                                            {"question": "Q3?", "answer": "B"}])
    ev = write_jsonl(tmp_path / "eval.jsonl", [{"problem": "q"}])
    r = runner.invoke(build, ["rl", str(qs), "--tokenizer", chat_tokenizer.name, "--out",
                              str(tmp_path / "rl"), "--exclude-eval", str(ev),
                              "--max-prompt-tokens", "3000", "--split", "test",
                              "--data-source", "nq", "--ground-truth-format", "target"])
    assert r.exit_code == 0, r.output
    assert "eval excluded" in r.output
    shard = tmp_path / "rl" / "data" / "test-00000-of-00001.parquet"
    rows = pq.read_table(shard).to_pylist()
    assert [(x["data_source"], x["reward_model"]["ground_truth"], x["agent_name"])
            for x in rows] == [("nq", {"target": ["B"]}, "cir_agent")]  # "Q?" is an eval one


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    teacher = write_jsonl(tmp_path / "t.jsonl", [{"question": "Q?", "response": "x"}])
    cli = Cli(commands={"build": build})
    r = CliRunner().invoke(cli, ["build", "sft", str(teacher), "--tokenizer",
                                 str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "error: cannot load a tokenizer" in r.output
    assert "Traceback" not in r.output


def test_build_sft_excludes_eval_questions_read_as_published(chat_tokenizer: ChatTokenizer,
                                                             tmp_path: Path) -> None:
    roll = write_jsonl(tmp_path / "roll" / "rollouts-00000-of-00001.jsonl",
                       [trajectory(chat_tokenizer, "What is the capital of France?",
                                   [CODE, ANSWER], [OBS])]).parent
    teacher = write_jsonl(tmp_path / "teacher.jsonl",
                          [{"question": "Who painted the Night Watch?",
                            "response": cir_text([CODE, ANSWER], [OBS])},
                           {"question": "How many legs do TWO spiders have in total",
                            "response": cir_text([CODE, ANSWER], [OBS])}])
    data = Path(__file__).parents[1] / "eval" / "data"
    r = CliRunner().invoke(build, ["sft", str(roll), str(teacher), "--tokenizer",
                                   chat_tokenizer.name, "--out", str(tmp_path / "sft"),
                                   "--max-tokens", "5000",
                                   "--exclude-eval", str(data / "simple_qa.csv"),
                                   "--exclude-eval", str(data / "frames.tsv")])
    assert r.exit_code == 0, r.output
    assert "1 rows in 1 shard(s)" in r.output and "eval excluded" in r.output
    report = json.loads((tmp_path / "sft" / "report.json").read_text())
    assert report["eval_excluded"] == 2  # SimpleQA's France row; Frames' spiders, normalised
    funnel = {f["name"]: f for f in report["funnel"]["filters"]}
    assert funnel["eval_overlap"]["reasons"] == {"in_eval_set": 2}
    rows = pq.read_table(next((tmp_path / "sft" / "data").glob("*.parquet"))).to_pylist()
    assert [m["content"] for m in rows[0]["messages"] if m["role"] == "user"] == \
        ["Who painted the Night Watch?"]
