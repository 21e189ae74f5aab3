"""One rollout job from start to finish: sandbox and client up, every rollout run, shards
written. ``cirkit rollout`` and ``cirkit demo`` both run their rollouts through it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from cirkit.inputs import Question
from cirkit.tokenizer import ModelTokenizer
from recorders import Mode, Recorder

from ._engine import RolloutConfig, check_prompts_fit
from ._exec import exec_runner, sandbox_fingerprint
from ._run import RunStats, run_all
from ._writer import RolloutWriter

__all__ = ["RolloutJob", "run_job"]


@dataclass(slots=True, frozen=True, kw_only=True)
class RolloutJob:
    """What to run and where; the recorders say which calls the store answers."""

    questions: Sequence[Question]
    out: Path
    cfg: RolloutConfig
    tok: ModelTokenizer
    tools: Recorder
    llm: Recorder
    base_urls: Sequence[str] = ()
    samples: int = 1
    concurrency: int = 32
    workers: int | None = None
    fmt: str = "jsonl"
    shard_size: int = 1000
    source: str = ""  # the questions file's name, for the manifest


def run_job(job: RolloutJob, *, console: Console | None = None) -> tuple[RunStats, dict[str, Any]]:
    """Run every rollout not finished yet in ``job.out``, then write the shards and the
    manifest: (the run's stats, the manifest).

    Unless ``job.cfg.max_model_len`` is given, a live run asks the servers for their context
    length first and clamps every request to it; a prompt that alone fills the context is one
    error before any request is sent. The manifest records the context length that applied:
    a replay passes the same one (``--max-model-len``) to ask for the same budgets."""
    from cirkit.llm import OpenAICompletionClient
    from cirkit.sandbox import Limits, Sandbox

    limits = Limits(wall_time_s=job.cfg.block_timeout)
    fingerprint = sandbox_fingerprint(limits)
    cfg = job.cfg
    writer: RolloutWriter | None = None

    async def main() -> RunStats:
        nonlocal cfg, writer
        async with OpenAICompletionClient(list(job.base_urls), cfg.model,
                                          recorder=job.llm) as client:
            if cfg.max_model_len is None and job.base_urls and job.llm.mode is not Mode.REPLAY:
                cfg = replace(cfg, max_model_len=await client.max_model_len())
            check_prompts_fit(job.questions, cfg, job.tok)  # before anything is written
            writer = RolloutWriter(job.out, shard_size=job.shard_size, fmt=job.fmt)
            async with Sandbox(workers=job.workers, limits=limits,
                               tool_handler=job.tools.call) as sb:
                runner = exec_runner(job.tools, sb.run, fingerprint=fingerprint)
                return await run_all(list(job.questions), samples=job.samples, cfg=cfg,
                                     tok=job.tok, generate=client.complete, runner=runner,
                                     writer=writer, concurrency=job.concurrency,
                                     console=console)

    try:
        stats = asyncio.run(main())
    finally:
        if writer is not None:
            writer.close()
    assert writer is not None
    manifest = writer.finalize({q.id: i for i, q in enumerate(job.questions)}, config={
        "model": cfg.model, "samples": job.samples, "sampling": cfg.sampling.to_json(),
        "limits": asdict(cfg.limits),
        # The server's context length and the total-token limit it leaves (None: unknown).
        "max_model_len": cfg.max_model_len, "total_token_cap": cfg.total_cap(),
        "date": cfg.date, "dialect": cfg.dialect,
        "prompt_template_sha256": cfg.template_sha256(), "questions": job.source})
    return stats, manifest
