"""``cirkit rollout questions.jsonl``: concurrent CIR rollouts, every outside call in a store."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console

from cirkit.cir import DEFAULT_DATE, DIALECTS
from cirkit.errors import CirkitError
from cirkit.llm import Sampling
from cirkit.rollout import RolloutConfig, RolloutLimits
from recorders import Mode, Recorder

from ._options import SECONDS, RecorderOptions, recorder_options, rollout_options

__all__ = ["rollout"]

# Every default below is the library's own.
_LIMITS = RolloutLimits()
_CONFIG = RolloutConfig(model="", date=DEFAULT_DATE)


@click.command()
@click.argument("questions", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory (a rerun into it skips finished rollouts).")
@click.option("--model", required=True, help="Model name as the server serves it.")
@click.option("--base-url", "base_urls", multiple=True,
              help="OpenAI-compatible server URL (repeat to spread requests over several).")
@click.option("--tokenizer", default=None,
              help="Local model directory with the tokenizer and chat template [default: MODEL].")
@rollout_options
@click.option("--max-observation-tokens", default=_LIMITS.max_observation_tokens,
              show_default=True)
@click.option("--dialect", type=click.Choice(sorted(DIALECTS)), default=_CONFIG.dialect,
              show_default=True)
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="System prompt template file [default: built-in].")
@click.option("--demo-error-hint", is_flag=True,
              help="Replace a failed block's output by the demo's fixed hint.")
@recorder_options(llm=True)
@click.option("-j", "--concurrency", default=32, show_default=True, type=click.IntRange(1))
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Sandbox workers (blocks running at once) [default: CPUs + 1].")
@click.option("--block-timeout", default=_CONFIG.block_timeout, show_default=True,
              type=SECONDS)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]), default="jsonl",
              show_default=True)
@click.option("--shard-size", default=1000, show_default=True, type=click.IntRange(1))
def rollout(questions: Path, out: Path, model: str, base_urls: tuple[str, ...],
            tokenizer: str | None, samples: int, seed: int, temperature: float, top_p: float,
            top_k: int, max_tokens: int, max_code_blocks: int, max_observation_tokens: int,
            max_response_tokens: int, max_total_tokens: int, max_model_len: int | None,
            date: str, dialect: str,
            template: Path | None, demo_error_hint: bool, recorder: RecorderOptions,
            concurrency: int, workers: int | None, block_timeout: float, fmt: str,
            shard_size: int) -> None:
    """Run SAMPLES rollouts per question of QUESTIONS (JSONL/CSV/TSV/parquet) into --out.

    With --tools-mode replay --llm-mode replay a run needs no server and no network, and gives
    byte-identical output."""
    from cirkit.cir import PromptTemplate
    from cirkit.rollout import RolloutJob, load_questions, run_job
    from cirkit.tokenizer import ModelTokenizer

    tools_mode = recorder.mode
    llm_mode = recorder.llm_mode or tools_mode
    if recorder.store is None and (tools_mode is not Mode.OFF or llm_mode is not Mode.OFF):
        raise click.UsageError("give --store DIR (or use --tools-mode off --llm-mode off)")
    if llm_mode is not Mode.REPLAY and not base_urls:
        raise click.UsageError("give --base-url (a server), or --llm-mode replay")
    qs = load_questions(questions)
    cfg = RolloutConfig(
        model=model, date=date, dialect=dialect,
        template=PromptTemplate.from_file(template) if template else None,
        sampling=Sampling(temperature=temperature, top_p=top_p, top_k=top_k, seed=seed,
                          max_tokens=max_tokens),
        limits=RolloutLimits(max_code_blocks, max_observation_tokens, max_response_tokens,
                             max_total_tokens),
        demo_error_hint=demo_error_hint, block_timeout=block_timeout,
        max_model_len=max_model_len)
    tok = ModelTokenizer(tokenizer or model)
    console = Console(stderr=True)
    with recorder.open(readonly=tools_mode is Mode.REPLAY and llm_mode is Mode.REPLAY) as tools:
        job = RolloutJob(questions=qs, out=out, cfg=cfg, tok=tok, tools=tools,
                         llm=Recorder(tools.store, mode=llm_mode), base_urls=base_urls,
                         samples=samples, concurrency=concurrency, workers=workers, fmt=fmt,
                         shard_size=shard_size, source=questions.name)
        stats, manifest = run_job(job, console=console)
    el = max(stats.seconds, 1e-9)
    console.print(f"{stats.done} rollouts in {stats.seconds:.1f} s ({stats.done / el:.2f}/s, "
                  f"{stats.generated_tokens / el:.0f} generated tok/s); {stats.skipped} "
                  f"already done; {manifest['trajectories']} in {out}")
    console.print("finish reasons: " + json.dumps(manifest["finish_reasons"]), markup=False)
    config = manifest["config"]
    if config["max_model_len"] is not None and config["total_token_cap"] < max_total_tokens:
        console.print(f"the server's context is {config['max_model_len']} tokens: each request "
                      f"asked for at most what was left of it (--max-total-tokens "
                      f"{max_total_tokens} clamped to {config['total_token_cap']})",
                      markup=False)
    if manifest["decode_mismatches"]:
        console.print(f"warning: {manifest['decode_mismatches']} trajectories whose ids do not "
                      "decode to their text", style="yellow")
    for line in stats.errors[:10]:
        console.print(f"  error: {line}", style="red", markup=False)
    if stats.errors:
        raise CirkitError(f"{len(stats.errors)} rollouts ended in an error (recorded in their "
                          "records)", hint="fix the cause shown above and rerun the same command: "
                          "finished rollouts are kept, errored ones are retried")

