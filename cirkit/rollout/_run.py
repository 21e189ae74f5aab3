"""Many rollouts at once: asyncio tasks over a semaphore, written as they finish."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from cirkit.inputs import Question
from cirkit.tokenizer import ModelTokenizer
from cirkit.trajectory import trajectory_id

from ._engine import Generate, RolloutConfig, run_rollout
from ._exec import Runner
from ._writer import RolloutWriter

__all__ = ["RunStats", "run_all"]


@dataclass(slots=True)
class RunStats:
    planned: int = 0
    skipped: int = 0
    done: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0
    finish_reasons: Counter[str] = field(default_factory=Counter)
    decode_mismatches: int = 0
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"planned": self.planned, "skipped": self.skipped, "done": self.done,
                "generated_tokens": self.generated_tokens, "seconds": round(self.seconds, 3),
                "finish_reasons": dict(sorted(self.finish_reasons.items())),
                "decode_mismatches": self.decode_mismatches}


async def run_all(
    questions: list[Question], *, samples: int, cfg: RolloutConfig, tok: ModelTokenizer,
    generate: Generate, runner: Runner, writer: RolloutWriter, concurrency: int = 32,
    console: Console | None = None,
) -> RunStats:
    """Run ``samples`` rollouts per question (skipping ids already finished in the output),
    ``concurrency`` at a time, each written the moment it finishes."""
    base = cfg.sampling.seed or 0
    done = writer.done_ids()
    todo = [(q, s) for q in questions for s in range(samples)
            if trajectory_id(q.id, s, base) not in done]
    stats = RunStats(planned=len(questions) * samples, skipped=len(questions) * samples - len(todo))
    sem = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    console = console or Console(stderr=True)
    columns = (TextColumn("rollouts"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[rate]}"))
    with Progress(*columns, console=console, disable=not todo) as progress:
        task = progress.add_task("rollouts", total=len(todo), rate="")

        async def one(q: Question, s: int) -> None:
            async with sem:
                t = await run_rollout(q, s, cfg=cfg, tok=tok, generate=generate,
                                      runner=runner)
            writer.write(t)
            stats.done += 1
            stats.generated_tokens += t.generated_tokens
            stats.finish_reasons[t.finish_reason] += 1
            stats.decode_mismatches += 0 if t.decode_ok else 1
            if t.error:
                stats.errors.append(f"{t.question_id}#{s}: {t.error}")
            el = max(time.perf_counter() - started, 1e-9)
            progress.update(task, advance=1, rate=f"{stats.done / el:.2f} rollouts/s  "
                                                  f"{stats.generated_tokens / el:.0f} tok/s")

        await asyncio.gather(*(one(q, s) for q, s in todo))
    stats.seconds = time.perf_counter() - started
    return stats
