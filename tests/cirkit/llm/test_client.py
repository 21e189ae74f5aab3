"""The completions client against a real HTTP server on 127.0.0.1 (a fake vLLM): token ids,
stop strings, seeds, retries, clear errors, load spreading, and record/replay through a store."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cirkit.llm import (
    Completion,
    CompletionClient,
    LLMError,
    ModelNotFoundError,
    OpenAICompletionClient,
    Sampling,
    ServerUnreachableError,
    derive_seed,
    prompt_sha256,
)
from recorders import Recorder, ReplayMissError, Store
from tests.servers.fake_vllm import END_CODE, EOS, MODEL, FakeVLLM, dead_url, decode

PROMPT = [5, 9, 14, 3, 22, 7]
STOP = ["<end_code>"]
SECRET = "sk-llm-CIRKIT-SECRET-42424242"
GREEDY = Sampling(temperature=0.0, max_tokens=200)


def sampling(seed: int | None = 7, max_tokens: int = 200) -> Sampling:
    return Sampling(temperature=0.6, top_p=0.95, top_k=-1, seed=seed, max_tokens=max_tokens)


def client(urls: str | list[str], **kw: object) -> OpenAICompletionClient:
    kw.setdefault("backoff", 0.01)
    return OpenAICompletionClient(urls, kw.pop("model", MODEL), **kw)  # type: ignore[arg-type]


async def test_token_ids_text_and_the_stop_string_kept(fake_vllm: FakeVLLM) -> None:
    async with client(fake_vllm.url) as c:
        as_protocol: CompletionClient = c  # mypy checks the conformance
        got = await as_protocol.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert got.token_ids[-1] == END_CODE and all(isinstance(i, int) for i in got.token_ids)
    assert got.text == decode(got.token_ids)  # the server's decoding, specials included
    assert got.text.startswith("<start_code>\n```python\n") and got.text.endswith("```<end_code>")
    assert (got.finish_reason, got.stop_reason) == ("stop", "<end_code>")
    assert got.key is None and not got.from_store
    assert got.extra["usage"]["prompt_tokens"] == len(PROMPT)
    body = fake_vllm.bodies[-1]
    assert body["prompt"] == PROMPT and body["model"] == MODEL and body["n"] == 1
    assert body["return_token_ids"] is True and body["include_stop_str_in_output"] is True
    assert body["skip_special_tokens"] is False and body["stop"] == STOP
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"],
            body["max_tokens"]) == (0.6, 0.95, -1, 7, 200)


async def test_eos_and_length_finish_reasons(fake_vllm: FakeVLLM) -> None:
    async with client(fake_vllm.url) as c:
        eos = await c.complete(PROMPT, sampling=sampling(), stop=[])
        short = await c.complete(PROMPT, sampling=sampling(max_tokens=4), stop=STOP)
    assert eos.token_ids[-1] == EOS and END_CODE in eos.token_ids
    assert (eos.finish_reason, eos.stop_reason) == ("stop", None)
    assert (short.finish_reason, short.stop_reason, len(short.token_ids)) == ("length", None, 4)


async def test_same_seed_same_tokens_other_seed_other_tokens(fake_vllm: FakeVLLM) -> None:
    async with client(fake_vllm.url) as c:
        a = await c.complete(PROMPT, sampling=sampling(seed=11), stop=STOP)
        b = await c.complete(PROMPT, sampling=sampling(seed=11), stop=STOP)
        other = await c.complete(PROMPT, sampling=sampling(seed=12), stop=STOP)
    assert a == b and a.token_ids != other.token_ids


async def test_retries_then_success(fake_vllm: FakeVLLM) -> None:
    fake_vllm.fail_next(2, 500)
    async with client(fake_vllm.url, retries=3) as c:
        got = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
        fake_vllm.fail_next(1, 429, retry_after="0")
        again = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert got == again and got.stop_reason == "<end_code>"
    assert (fake_vllm.requests, fake_vllm.completions) == (5, 2)


async def test_retries_exhausted_is_a_clear_error(fake_vllm: FakeVLLM) -> None:
    fake_vllm.fail_next(10, 503)
    async with client(fake_vllm.url, retries=2) as c:
        with pytest.raises(LLMError) as e:
            await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert not isinstance(e.value, ServerUnreachableError)
    assert "failed after 3 attempts" in str(e.value) and "HTTP 503" in str(e.value)
    assert fake_vllm.requests == 3


async def test_unreachable_server_says_how_to_start_one() -> None:
    url = dead_url()
    async with client(url, retries=1) as c:
        with pytest.raises(ServerUnreachableError) as e:
            await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    text = str(e.value)
    assert f"no server at {url}" in text
    assert f"cirkit serve {MODEL}" in text and "--base-url" in text


async def test_wrong_model_lists_the_served_models(fake_vllm: FakeVLLM) -> None:
    async with client(fake_vllm.url, model="no/such-model") as c:
        with pytest.raises(ModelNotFoundError) as e:
            await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert e.value.available == [MODEL]
    assert "'no/such-model'" in str(e.value) and MODEL in str(e.value)
    assert fake_vllm.completions == 0 and len(fake_vllm.bodies) == 1  # not retried


async def test_the_context_length_is_read_where_vllm_lists_it(
        make_fake_vllm: Callable[..., FakeVLLM]) -> None:
    small, large = make_fake_vllm(max_model_len=2048), make_fake_vllm()
    async with OpenAICompletionClient([large.url, small.url], MODEL) as client:
        assert await client.max_model_len() == 2048  # the smallest: every request fits all
    async with OpenAICompletionClient([large.url, dead_url()], MODEL) as client:
        assert await client.max_model_len() == 4096  # a dead server reports nothing
    async with OpenAICompletionClient(large.url, "another-model") as client:
        assert await client.max_model_len() is None  # only the model's own entry counts


async def test_rejected_request_is_not_retried(fake_vllm: FakeVLLM) -> None:
    async with client(fake_vllm.url + "/v1/") as c:  # a trailing /v1 is accepted
        with pytest.raises(LLMError, match=r"HTTP 400.*maximum context length"):
            await c.complete(PROMPT, sampling=sampling(max_tokens=5000), stop=STOP)
    assert fake_vllm.requests == 1


async def test_two_endpoints_share_the_load(make_fake_vllm: Callable[..., FakeVLLM]) -> None:
    a, b = make_fake_vllm(), make_fake_vllm()
    async with client([a.url, b.url]) as c:
        for i in range(8):  # one at a time: ties go in turn
            await c.complete(PROMPT, sampling=sampling(seed=i), stop=STOP)
        assert (a.completions, b.completions) == (4, 4)
        a.delay = b.delay = 0.05
        got = await asyncio.gather(*(c.complete(PROMPT, sampling=sampling(seed=i), stop=STOP)
                                     for i in range(16)))
    assert len(got) == 16 and a.completions + b.completions == 24
    assert a.completions >= 10 and b.completions >= 10
    assert a.max_in_flight > 1 and b.max_in_flight > 1  # requests really run concurrently


async def test_a_dead_endpoint_is_skipped(fake_vllm: FakeVLLM) -> None:
    dead = dead_url()
    async with client([dead, fake_vllm.url], retries=0, cooldown=60) as c:
        for i in range(6):
            await c.complete(PROMPT, sampling=sampling(seed=i), stop=STOP)
        stats = {s["url"]: s for s in c.stats()}
    assert fake_vllm.completions == 6
    assert stats[dead]["failures"] == 1 and stats[dead]["requests"] == 1
    assert stats[dead]["dead_for"] > 0 and stats[fake_vllm.url]["failures"] == 0


async def test_ids_from_logprobs_when_the_server_has_no_token_ids(
        make_fake_vllm: Callable[..., FakeVLLM]) -> None:
    old = make_fake_vllm(token_ids_supported=False)
    async with client(old.url) as c:
        got = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
        again = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert got.token_ids[-1] == END_CODE and got.text == decode(got.token_ids)
    assert got == again and old.completions == 3  # one request found out, then logprobs
    assert old.bodies[-1]["return_tokens_as_token_ids"] is True


def test_one_client_serves_several_event_loops(fake_vllm: FakeVLLM) -> None:
    c = client(fake_vllm.url)

    async def one() -> Completion:
        try:
            return await c.complete(PROMPT, sampling=sampling(), stop=STOP)
        finally:
            await c.aclose()

    assert asyncio.run(one()) == asyncio.run(one())


# -- the store ---------------------------------------------------------------------------------
def _recorder(path: Path, mode: str) -> Recorder:
    return Recorder(Store(path), mode=mode, clock=lambda: 0.0)


async def test_record_then_replay_without_a_server(fake_vllm: FakeVLLM, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    calls = [(PROMPT, sampling(seed=s), STOP) for s in range(3)] + [
        ([1, 2, 3], sampling(seed=0, max_tokens=5), []), (PROMPT, GREEDY, [])]
    async with client(fake_vllm.url, recorder=_recorder(store_dir, "record")) as c:
        recorded = [await c.complete(p, sampling=s, stop=st) for p, s, st in calls]
    assert fake_vllm.completions == len(calls) and not any(r.from_store for r in recorded)
    assert all(r.key for r in recorded) and len({r.key for r in recorded}) == len(calls)
    fake_vllm.stop()
    seen = fake_vllm.requests
    replayer = _recorder(store_dir, "replay")
    async with client(dead_url(), recorder=replayer) as c:  # another URL: not in the key
        replayed = [await c.complete(p, sampling=s, stop=st) for p, s, st in calls]
        assert c._clients == {}  # replay never even opened a connection pool
        with pytest.raises(ReplayMissError) as miss:
            await c.complete(PROMPT, sampling=sampling(seed=99), stop=STOP)
    assert replayed == [dataclasses.replace(r, from_store=True) for r in recorded]
    assert fake_vllm.requests == seen
    assert "prompt_sha256" in str(miss.value) and replayer.keys_used[:3] == [
        r.key for r in recorded[:3]]


async def test_the_stored_record(fake_vllm: FakeVLLM, tmp_path: Path) -> None:
    async with client(fake_vllm.url, recorder=_recorder(tmp_path / "s", "auto")) as c:
        got = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
        again = await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert again.from_store and dataclasses.replace(got, from_store=True) == again
    assert fake_vllm.completions == 1
    assert got.key is not None
    entry, blob = Store(tmp_path / "s").load(got.key)  # type: ignore[misc]
    assert entry.tool == "completion" and entry.backend == "openai-completions"
    assert entry.args == {
        "model": MODEL, "prompt_sha256": prompt_sha256(PROMPT), "num_prompt_tokens": 6,
        "sampling": sampling().to_json(), "stop": STOP,
        "api": {"include_stop_str_in_output": True, "skip_special_tokens": False}}
    data = json.loads(blob)["data"]
    assert data["token_ids"] == got.token_ids and data["text"] == got.text
    assert (data["finish_reason"], data["stop_reason"]) == ("stop", "<end_code>")
    assert "prompt_token_ids" not in data["raw"] and "logprobs" not in data["raw"]
    assert data["usage"]["completion_tokens"] == len(got.token_ids)


async def test_the_api_key_never_reaches_the_store(
        make_fake_vllm: Callable[..., FakeVLLM], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_fake_vllm(api_key=SECRET)
    monkeypatch.setenv("CIRKIT_LLM_API_KEY", SECRET)
    async with client(server.url, recorder=_recorder(tmp_path / "s", "record")) as c:
        await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert server.auth == [f"Bearer {SECRET}"] and server.completions == 1
    files = [p for p in (tmp_path / "s").rglob("*") if p.is_file()]
    assert files and not [p for p in files if SECRET.encode() in p.read_bytes()]


async def test_a_wrong_key_is_a_clear_error(make_fake_vllm: Callable[..., FakeVLLM]) -> None:
    server = make_fake_vllm(api_key=SECRET)
    async with client(server.url, api_key="wrong-key") as c:
        with pytest.raises(LLMError, match="CIRKIT_LLM_API_KEY") as e:
            await c.complete(PROMPT, sampling=sampling(), stop=STOP)
    assert "401" in str(e.value) and server.requests == 1


async def test_recording_a_sample_needs_a_seed(fake_vllm: FakeVLLM, tmp_path: Path) -> None:
    async with client(fake_vllm.url, recorder=_recorder(tmp_path / "s", "auto")) as c:
        with pytest.raises(LLMError, match="needs a seed"):
            await c.complete(PROMPT, sampling=sampling(seed=None), stop=STOP)
        greedy = await c.complete(PROMPT, sampling=GREEDY, stop=STOP)
    assert greedy.stop_reason == "<end_code>" and fake_vllm.completions == 1
    async with client(fake_vllm.url) as c:  # without a recorder, seeds are optional
        await c.complete(PROMPT, sampling=sampling(seed=None), stop=STOP)
    assert "seed" not in fake_vllm.bodies[-1]


# -- seeds -------------------------------------------------------------------------------------
def test_derive_seed_is_stable_across_processes_and_distinct() -> None:
    here = derive_seed(1234, "simpleqa-0042", 3)
    assert here == 231448404331830384  # a contract: recorded completions are keyed by it
    code = ("from cirkit.llm import derive_seed; "
            "print(derive_seed(1234, 'simpleqa-0042', 3))")
    for hashseed in ("0", "987"):
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env={"PYTHONHASHSEED": hashseed, "PATH": ""},
                             cwd=Path(__file__).resolve().parents[3])
        assert int(out.stdout) == here
    seeds = {derive_seed(b, q, i) for b in (0, 1, 2**40) for q in ("q1", "q2", "q10", "q1 ")
             for i in range(50)}
    assert len(seeds) == 3 * 4 * 50
    assert all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(1, "a", 12) != derive_seed(1, "a1", 2)  # no concatenation ambiguity
    with pytest.raises(ValueError):
        derive_seed(1, "q", -1)


def test_derive_seed_turns_differ_and_turn_zero_is_the_sample_seed() -> None:
    assert derive_seed(5, "q", 2, 0) == derive_seed(5, "q", 2)
    assert len({derive_seed(5, "q", 2, t) for t in range(33)}) == 33
