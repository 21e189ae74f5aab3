"""``cirkit record calls.jsonl``: many tool calls into a store, concurrently, with progress."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cirkit.inputs import read_calls
from recorders import Recorder, RecordersError

from ._options import RecorderOptions, recorder_options

__all__ = ["record"]


async def _record_all(rec: Recorder, calls: list[tuple[str, dict[str, Any]]], concurrency: int,
                      progress: Progress) -> list[tuple[int, str]]:
    task = progress.add_task("recording", total=len(calls))
    sem = asyncio.Semaphore(concurrency)
    failures: list[tuple[int, str]] = []

    async def one(i: int, tool: str, args: dict[str, Any]) -> None:
        async with sem:
            try:
                await rec.call(tool, args)
            except (RecordersError, ValueError) as e:
                failures.append((i, str(e).splitlines()[0]))
            finally:
                progress.advance(task)

    await asyncio.gather(*(one(i, t, a) for i, (t, a) in enumerate(calls, start=1)))
    return sorted(failures)


@click.command()
@click.argument("calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@recorder_options()
@click.option("-n", "--num-results", default=5, show_default=True, type=click.IntRange(min=1),
              help="Hits per search when a line gives none.")
@click.option("-j", "--concurrency", default=8, show_default=True, type=click.IntRange(1, 256))
def record(calls_file: Path, recorder: RecorderOptions, num_results: int,
           concurrency: int) -> None:
    """Record every call in CALLS_FILE into the store.

    CALLS_FILE is JSONL: {"query": ..., "num_results"?} or {"url": ...} per line, optionally
    with "tool" (search, visit, or any spelling a trace may use). A bad line stops the run
    before any call is made.

    Mode auto (the default) skips calls already recorded, so an interrupted run resumes where it
    stopped; --mode record re-asks everything."""
    if recorder.store is None:
        raise click.UsageError("record needs --store DIR (or CIRKIT_STORE)")
    calls = read_calls(calls_file, num_results=num_results)
    console = Console(stderr=True)
    with recorder.open() as rec, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console) as progress:
        failures = asyncio.run(_record_all(rec, calls, concurrency, progress))
    c = rec.counts
    console.print(f"{len(calls)} calls: {c['recorded']} recorded, {c['replayed']} already in the "
                  f"store, {len(failures)} failed")
    for i, msg in failures[:20]:
        console.print(f"  call {i}: {msg}", style="red", markup=False)
    if failures:
        raise SystemExit(1)
