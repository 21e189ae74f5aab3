"""The rollout loop: masks, observations, limits, errors, and bit-identical replay."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from cirkit.llm import Sampling
from cirkit.rollout import (
    ChatTokenizer,
    Question,
    RolloutConfig,
    RolloutLimits,
    RolloutWriter,
    exec_runner,
    run_all,
    run_rollout,
)
from cirkit.sandbox import Sandbox
from cirkit.trajectory import Trajectory
from recorders import Store
from tests.cirkit.rollout.conftest import ScriptedModel, make_tools

CODE = ("I should search.\n<start_code>\n```python\nprint(web_search('night watch', 1))\n"
        "```<end_code>")
ANSWER = "It was Rembrandt.\n</think>\n\nRembrandt painted it."
Q = Question("nw", "Who painted The Night Watch?", "Rembrandt", "demo")
CFG = RolloutConfig(model="scripted", date="2025-08-01", sampling=Sampling(seed=7))


def _wire(sandbox: Sandbox, store: Store, mode: str = "auto") -> Any:
    tools = make_tools(store, mode)
    sandbox.tool_handler = tools.call
    return exec_runner(tools, sandbox.run, fingerprint={"version": 1})


async def test_code_block_runs_and_observation_is_masked(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    model = ScriptedModel(chat_tokenizer, [CODE, ANSWER])
    runner = _wire(sandbox, Store(tmp_path / "store"))
    rec = (await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                             runner=runner)).to_json()
    assert rec["finish_reason"] == "answer" and rec["error"] is None
    assert rec["final_answer"] == "Rembrandt painted it."
    assert rec["num_code_blocks"] == 1
    block = rec["code_blocks"][0]
    assert block["code"] == "print(web_search('night watch', 1))"
    assert "Title: The Night Watch" in block["output"]
    assert [c["tool"] for c in block["tool_calls"]] == ["web_search"]
    obs = "\n```output\n" + block["output"] + "\n```"
    assert rec["response_text"] == CODE + obs + ANSWER
    # Masks: generated ids 1 (the <end_code> included), the observation's ids 0.
    tok = chat_tokenizer
    n_code, n_obs = len(tok.encode(CODE)), len(tok.encode(obs))
    assert rec["response_mask"] == [1] * n_code + [0] * n_obs + [1] * len(tok.encode(ANSWER))
    assert tok.decode(rec["response_token_ids"][:n_code]).endswith("<end_code>")
    assert rec["decode_ok"]
    assert rec["prompt_text"].endswith("<|im_start|>assistant\n<think>\n")
    assert rec["prompt_token_ids"] == tok.encode(rec["prompt_text"])
    # Provenance: the code run and the search it made are in the store.
    assert len(rec["store_keys"]) == 2
    # The second request continues the first: prompt + generated + observation ids.
    second_prompt, _ = model.requests[1]
    assert second_prompt == rec["prompt_token_ids"] + rec["response_token_ids"][: n_code + n_obs]
    # The typed record reads back from its JSON as it was.
    assert Trajectory.from_json(json.loads(json.dumps(rec))).to_json() == rec


async def test_seeds_are_derived_per_sample_and_turn(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    model = ScriptedModel(chat_tokenizer, [CODE, ANSWER])
    runner = _wire(sandbox, Store(tmp_path / "store"))
    a = (await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                             runner=runner)).to_json()
    b = (await run_rollout(Q, 1, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                             runner=runner)).to_json()
    seeds = [s.seed for _, s in model.requests]
    assert len(set(seeds)) == 4 and a["sampling"]["seed"] != b["sampling"]["seed"]
    assert a["id"] != b["id"] and a["sampling"]["base_seed"] == 7


async def test_each_limit_names_its_finish_reason(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    runner = _wire(sandbox, Store(tmp_path / "store"))
    tok = chat_tokenizer

    async def finish(script: list[str], **limits: int) -> dict[str, Any]:
        cfg = RolloutConfig(model="m", date="2025-08-01", limits=RolloutLimits(**limits))
        t = await run_rollout(Q, 0, cfg=cfg, tok=tok,
                              generate=ScriptedModel(tok, script).complete, runner=runner)
        return t.to_json()

    r = await finish([CODE], max_code_blocks=2)
    assert r["finish_reason"] == "max_code_blocks" and r["num_code_blocks"] == 2
    r = await finish([CODE, ANSWER], max_response_tokens=len(tok.encode(CODE)) + 5)
    assert r["finish_reason"] == "max_response_tokens"
    assert len(r["response_token_ids"]) == len(r["response_mask"]) == len(tok.encode(CODE)) + 5
    assert r["decode_ok"]
    prompt_len = len((await finish([ANSWER]))["prompt_token_ids"])
    r = await finish([ANSWER], max_total_tokens=prompt_len + 3)
    assert r["finish_reason"] == "max_total_tokens" and len(r["response_token_ids"]) == 3


async def test_a_failing_server_is_recorded_not_raised(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    model = ScriptedModel(chat_tokenizer, [CODE, ANSWER], fail_on_turn=1)
    runner = _wire(sandbox, Store(tmp_path / "store"))
    rec = (await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                             runner=runner)).to_json()
    assert rec["finish_reason"] == "error"
    assert rec["error"] == "ConnectionError: server went away"
    assert rec["num_code_blocks"] == 1  # what happened before the failure is kept


async def test_malformed_block_gets_a_hint_observation(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    bad = "Let me try.\n<start_code>\nprint(1)<end_code>"
    model = ScriptedModel(chat_tokenizer, [bad, ANSWER])
    runner = _wire(sandbox, Store(tmp_path / "store"))
    rec = (await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                             runner=runner)).to_json()
    assert rec["code_blocks"][0]["error"] == "no_code"
    assert "no well-formed code block" in rec["code_blocks"][0]["output"]
    assert "<end_code>" not in rec["code_blocks"][0]["output"]


async def _run_dir(tok: ChatTokenizer, sandbox: Sandbox, store: Store, out: Path,
                   mode: str) -> bytes:
    runner = _wire(sandbox, store, mode)
    writer = RolloutWriter(out)
    questions = [Q, Question("q2", "What is the Night Watch?", None, "demo")]
    code = CODE.replace("print(web_search('night watch', 1))",
                        "import time, random\nprint(time.time(), random.random())\n"
                        "print(web_search('night watch', 1))")
    stats = await run_all(questions, samples=2, cfg=CFG, tok=tok,
                          generate=ScriptedModel(tok, [code, ANSWER]).complete, runner=runner,
                          writer=writer, concurrency=4)
    assert stats.done + stats.skipped == 4
    writer.finalize({"nw": 0, "q2": 1}, config={"model": "scripted"})
    return b"".join(p.read_bytes() for p in sorted(out.glob("rollouts-*.jsonl")))


async def test_replay_gives_the_same_bytes_even_for_clock_reading_code(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = await _run_dir(chat_tokenizer, sandbox, store, tmp_path / "a", "auto")
    again = await _run_dir(chat_tokenizer, sandbox, store, tmp_path / "b", "replay")
    assert first == again
    rows = [json.loads(line) for line in first.splitlines()]
    assert [(r["question_id"], r["sample_index"]) for r in rows] == [
        ("nw", 0), ("nw", 1), ("q2", 0), ("q2", 1)]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["trajectories"] == 4 and manifest["finish_reasons"] == {"answer": 4}


async def test_restart_skips_finished_ids(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    runner = _wire(sandbox, Store(tmp_path / "store"))
    out = tmp_path / "out"
    w = RolloutWriter(out)
    rec = await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer,
                            generate=ScriptedModel(chat_tokenizer, [ANSWER]).complete,
                            runner=runner)
    w.write(rec)
    w.close()
    model = ScriptedModel(chat_tokenizer, [ANSWER])
    stats = await run_all([Q], samples=2, cfg=CFG, tok=chat_tokenizer, generate=model.complete,
                          runner=runner, writer=RolloutWriter(out))
    assert (stats.skipped, stats.done, len(model.requests)) == (1, 1, 1)


async def test_every_request_fits_the_servers_context(
        chat_tokenizer: ChatTokenizer, sandbox: Sandbox, tmp_path: Path) -> None:
    """With the card's budgets (16384 a request) and a small server context, each request
    asks for what is left of the context, and an observation that fills it ends the rollout
    there, cut to the context."""
    prompt = len(chat_tokenizer.encode(
        (await run_rollout(Q, 0, cfg=CFG, tok=chat_tokenizer,
                           generate=ScriptedModel(chat_tokenizer, [ANSWER]).complete,
                           runner=_wire(sandbox, Store(tmp_path / "s0")))).prompt_text))
    roomy = dataclasses.replace(CFG, max_model_len=prompt + 300)
    model = ScriptedModel(chat_tokenizer, [CODE, ANSWER])
    rec = await run_rollout(Q, 0, cfg=roomy, tok=chat_tokenizer, generate=model.complete,
                            runner=_wire(sandbox, Store(tmp_path / "s1")))
    assert rec.finish_reason == "answer" and rec.error is None
    assert roomy.sampling.max_tokens == 16384 and roomy.total_cap() == prompt + 300
    assert [len(p) + s.max_tokens for p, s in model.requests] == [prompt + 300] * 2

    tight = dataclasses.replace(CFG, max_model_len=prompt + len(chat_tokenizer.encode(CODE)) + 5)
    model = ScriptedModel(chat_tokenizer, [CODE, ANSWER])
    rec = await run_rollout(Q, 0, cfg=tight, tok=chat_tokenizer, generate=model.complete,
                            runner=_wire(sandbox, Store(tmp_path / "s2")))
    assert rec.finish_reason == "max_total_tokens" and len(model.requests) == 1
    assert len(rec.prompt_token_ids) + len(rec.response_token_ids) == tight.max_model_len
