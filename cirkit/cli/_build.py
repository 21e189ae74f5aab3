"""``cirkit build sft|rl``: dataset folders ready for TRL, verl and ``cirkit push``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from cirkit.cir import DIALECTS
from cirkit.datasets import GROUND_TRUTH_FORMATS, RLOptions, SFTOptions

from ._errors import Group

__all__ = ["build"]

F = TypeVar("F", bound=Callable[..., Any])
_SFT, _RL = SFTOptions(), RLOptions()  # every default below is theirs


def _common(f: F) -> F:
    """Options every build takes, spelled the same way."""
    opts = [
        click.option("--tokenizer", required=True,
                     help="Local model directory with tokenizer.json and the chat template."),
        click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
                     help="Output folder (data/ shards, README.md, build.json, report.json)."),
        click.option("--split", default=_SFT.split, show_default=True),
        click.option("--shard-rows", default=_SFT.shard_rows, show_default=True,
                     type=click.IntRange(min=1), help="Rows per parquet shard."),
        click.option("--license", "license_", default=_SFT.license, show_default=True,
                     help="License field of the dataset card."),
        click.option("--date", default=_SFT.date, show_default=True,
                     help="The date the system prompt states (when a prompt is rendered)."),
        click.option("--dialect", type=click.Choice(sorted(DIALECTS)), default=_SFT.dialect,
                     show_default=True),
        click.option("--template", type=click.Path(exists=True, dir_okay=False,
                                                    path_type=Path),
                     default=None, help="System prompt template file [default: built-in]."),
        click.option("--reject", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write dropped rows (with filter and reason) to this JSONL file."),
        click.option("--allow-empty", is_flag=True,
                     help="Write the dataset even when no row is left (default: an error)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _progress(console: Console, bytes_mode: bool) -> Progress:
    count = DownloadColumn() if bytes_mode else MofNCompleteColumn()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), count,
                    TimeElapsedColumn(), console=console, transient=True)


def _done(result: Any) -> None:
    from cirkit.datasets import rich_report

    out = Console(highlight=False)
    out.print(rich_report(result.report))
    out.print(f"{result.rows_out} rows in {len(result.shards)} shard(s) in {result.out}; "
              f"fingerprint {result.fingerprint[:16]}", markup=False)
    mismatches = result.report.get("decode_mismatches", 0)
    if mismatches:
        out.print(f"warning: {mismatches} rows whose token ids do not decode to their text",
                  style="yellow")


@click.group(cls=Group)
def build() -> None:
    """Build datasets: SFT rows for TRL, RL prompts for verl."""


@build.command("sft")
@click.argument("inputs", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@_common
@click.option("--max-tokens", default=_SFT.max_tokens, show_default=True,
              type=click.IntRange(min=1), help="Drop rows with more tokens (prompt + response).")
@click.option("--max-code-blocks", default=_SFT.max_code_blocks, show_default=True,
              type=click.IntRange(min=0), help="Drop traces with more code blocks.")
@click.option("--require-correct", is_flag=True,
              help="Keep only correct rows: a judge/correct column, else exact match of the "
                   "normalised final answer with the ground truth.")
@click.option("--train-on-observations", is_flag=True,
              help="Keep observation tokens trainable (default: -100).")
@click.option("--exclude-eval", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Evaluation set (SimpleQA CSV, Frames TSV, any question file) whose "
                   "questions are dropped (normalised text match). Repeatable.")
def sft(inputs: tuple[Path, ...], tokenizer: str, out: Path, split: str, shard_rows: int,
        license_: str, date: str, dialect: str, template: Path | None, reject: Path | None,
        allow_empty: bool, max_tokens: int, max_code_blocks: int, require_correct: bool,
        train_on_observations: bool, exclude_eval: tuple[Path, ...]) -> None:
    """SFT rows from INPUTS: rollout directories, trajectory JSONL/parquet, or text-only
    traces (messages, or prompt/question + response/completion)."""
    from cirkit.datasets import BuildTokenizer, build_sft, discover_inputs

    opts = SFTOptions(max_tokens=max_tokens, max_code_blocks=max_code_blocks,
                      require_correct=require_correct, exclude_eval=exclude_eval,
                      train_on_observations=train_on_observations, reject=reject,
                      allow_empty=allow_empty, split=split,
                      shard_rows=shard_rows, license=license_, date=date, dialect=dialect,
                      template=template)
    tok = BuildTokenizer(tokenizer)
    total = sum(f.path.stat().st_size for f in discover_inputs(list(inputs)))
    with _progress(Console(stderr=True), True) as bar:
        task = bar.add_task("build sft", total=total)
        result = build_sft(list(inputs), out, tokenizer=tok, options=opts,
                           progress=lambda n: bar.advance(task, n))
    _done(result)


@build.command("rl")
@click.argument("questions", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_common
@click.option("--exclude-eval", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Evaluation set (JSONL/CSV/TSV/parquet, e.g. SimpleQA's or Frames' file as "
                   "published) whose questions are removed; repeat.")
@click.option("--max-tokens", "--max-prompt-tokens", "max_tokens", default=_RL.max_prompt_tokens,
              show_default=True, type=click.IntRange(min=1),
              help="Drop prompts longer than this (verl's max_prompt_length).")
@click.option("--max-response-tokens", default=_RL.max_response_tokens, show_default=True,
              help="Recorded in the card (verl's max_response_length).")
@click.option("--max-total-tokens", default=_RL.max_total_tokens, show_default=True,
              help="Recorded in the card.")
@click.option("--max-code-blocks", default=_RL.max_code_blocks, show_default=True,
              help="The block budget the system prompt states.")
@click.option("--ability", default=_RL.ability, show_default=True)
@click.option("--data-source", default=None,
              help="Every row's data_source [default: the question file's source field].")
@click.option("--agent-name", default=_RL.agent_name, show_default=True,
              help="verl's agent_name column: the agent loop that runs each row.")
@click.option("--ground-truth-format", type=click.Choice(list(GROUND_TRUTH_FORMATS)),
              default=_RL.ground_truth_format, show_default=True,
              help='reward_model.ground_truth as a list of strings, or {"target": [...]} '
                   "(Search-R1's and verl's QA scorers).")
def rl(questions: tuple[Path, ...], tokenizer: str, out: Path, split: str, shard_rows: int,
       license_: str, date: str, dialect: str, template: Path | None, reject: Path | None,
       allow_empty: bool, exclude_eval: tuple[Path, ...], max_tokens: int,
       max_response_tokens: int, max_total_tokens: int, max_code_blocks: int, ability: str,
       data_source: str | None, agent_name: str, ground_truth_format: str) -> None:
    """verl RL rows from QUESTIONS (JSONL/CSV/TSV/parquet with a question and a ground truth;
    SimpleQA, Frames, Search-R1 and verl files as published)."""
    from cirkit.datasets import BuildTokenizer, build_rl

    opts = RLOptions(max_prompt_tokens=max_tokens, max_response_tokens=max_response_tokens,
                     max_total_tokens=max_total_tokens, max_code_blocks=max_code_blocks,
                     exclude_eval=exclude_eval, ability=ability, reject=reject,
                     allow_empty=allow_empty, split=split,
                     shard_rows=shard_rows, license=license_, date=date, dialect=dialect,
                     template=template, data_source=data_source, agent_name=agent_name,
                     ground_truth_format=ground_truth_format)
    tok = BuildTokenizer(tokenizer)
    with _progress(Console(stderr=True), False) as bar:
        task = bar.add_task("build rl", total=None)
        result = build_rl(list(questions), out, tokenizer=tok, options=opts,
                          progress=lambda n: bar.advance(task, n))
    _done(result)
