"""One rollout job from start to finish: sandbox and client up, every rollout run, shards
written. ``cirkit rollout`` and ``cirkit demo`` both run their rollouts through it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cirkit.inputs import Question
from cirkit.tokenizer import ModelTokenizer
from recorders import Recorder

from ._engine import RolloutConfig
from ._exec import exec_runner, sandbox_setup
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
    manifest: (the run's stats, the manifest)."""
    from cirkit.llm import OpenAICompletionClient
    from cirkit.sandbox import Sandbox

    cfg = job.cfg
    writer = RolloutWriter(job.out, shard_size=job.shard_size, fmt=job.fmt)
    limits, fingerprint = sandbox_setup(cfg.block_timeout)

    async def main() -> RunStats:
        async with Sandbox(workers=job.workers, limits=limits,
                           tool_handler=job.tools.call) as sb, \
                OpenAICompletionClient(list(job.base_urls), cfg.model,
                                       recorder=job.llm) as client:
            runner = exec_runner(job.tools, sb.run, fingerprint=fingerprint)
            return await run_all(list(job.questions), samples=job.samples, cfg=cfg, tok=job.tok,
                                 generate=client.complete, runner=runner, writer=writer,
                                 concurrency=job.concurrency, console=console)

    try:
        stats = asyncio.run(main())
    finally:
        writer.close()
    manifest = writer.finalize({q.id: i for i, q in enumerate(job.questions)}, config={
        "model": cfg.model, "samples": job.samples, "sampling": cfg.sampling.to_json(),
        "limits": asdict(cfg.limits),
        "date": cfg.date, "dialect": cfg.dialect,
        "prompt_template_sha256": cfg.template_sha256(), "questions": job.source})
    return stats, manifest
