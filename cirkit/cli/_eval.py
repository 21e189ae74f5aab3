"""``cirkit eval BENCH...``: rollouts, grades and a byte-deterministic report; ``cirkit eval
compare``, ``cirkit eval pack`` and ``cirkit eval --replay PACK``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from cirkit.errors import CirkitError
from cirkit.llm import Sampling
from cirkit.rollout import RolloutLimits
from recorders import Mode, Recorder, Store

from ._errors import Group
from ._options import RecorderOptions, _ModeChoice, recorder_options, rollout_options

__all__ = ["eval_group"]

_LIMITS = RolloutLimits()
_EXISTING = click.Path(exists=True, dir_okay=False, path_type=Path)
_DIR = click.Path(file_okay=False, path_type=Path)


class _DefaultRun(Group):
    """``cirkit eval BENCH...`` means ``cirkit eval run BENCH...``: the subcommands are
    ``compare`` and ``pack``; anything else (a file, ``--replay``) goes to ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultRun)
def eval_group() -> None:
    """Evaluate a model on benchmarks, replayably: `cirkit eval BENCH... --out DIR`,
    `cirkit eval compare RUN_A RUN_B`, `cirkit eval pack RUN --out PACK`,
    `cirkit eval --replay PACK --out DIR`."""


def _print_report(report: dict[str, Any], out: Path, console: Console) -> None:
    for g, b in report["graders"].items():
        lo, hi = b["ci95"]
        console.print(f"{g}: accuracy {100 * b['accuracy']:.1f}% (95% interval "
                      f"{100 * lo:.1f}-{100 * hi:.1f}), Pass@k {100 * b['pass_at_k']:.1f}%",
                      markup=False)
    if "judge" in report:
        j = report["judge"]
        console.print(f"judge: {j['unparsable']} of {j['graded']} replies did not parse "
                      "(counted as not correct)", markup=False)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}", markup=False)


def _rollouts(out: Path, paths: tuple[Path, ...], *, spec: Any, recorder: RecorderOptions,
              base_urls: tuple[str, ...], tokenizer: str | None, limits: RolloutLimits,
              max_model_len: int | None, concurrency: int, console: Console) -> list[Any]:
    """Every benchmark's rollouts into ``out/rollouts/<stem>`` (resumable), through the
    engine ``cirkit rollout`` uses."""
    from cirkit.eval import rollout_dir, stage_benchmarks
    from cirkit.rollout import RolloutConfig, RolloutJob, run_job
    from cirkit.tokenizer import ModelTokenizer

    tools_mode = recorder.mode
    llm_mode = recorder.llm_mode or tools_mode
    if llm_mode is not Mode.REPLAY and not base_urls:
        raise click.UsageError("give --base-url (a server), or --llm-mode replay")
    benches = stage_benchmarks(out, list(paths))
    s = spec.sampling
    cfg = RolloutConfig(model=spec.model, date=spec.date,
                        sampling=Sampling(temperature=s["temperature"], top_p=s["top_p"],
                                          top_k=s["top_k"], seed=s["seed"],
                                          max_tokens=s["max_tokens"]),
                        limits=limits, max_model_len=max_model_len)
    tok = ModelTokenizer(tokenizer or spec.model)
    errors = 0
    with recorder.open(readonly=tools_mode is Mode.REPLAY and llm_mode is Mode.REPLAY) as tools:
        for b in benches:
            job = RolloutJob(questions=b.questions, out=rollout_dir(out, b), cfg=cfg, tok=tok,
                             tools=tools, llm=Recorder(tools.store, mode=llm_mode),
                             base_urls=base_urls, samples=spec.samples,
                             concurrency=concurrency, source=b.name)
            stats, _ = run_job(job, console=console)
            errors += len(stats.errors)
            for line in stats.errors[:5]:
                console.print(f"  error: {line}", style="red", markup=False)
    if errors:
        raise CirkitError(f"{errors} rollouts ended in an error (recorded in their records)",
                          hint="fix the cause shown above and rerun the same command: "
                               "finished rollouts are kept, errored ones are retried")
    return benches


@eval_group.command("run")
@click.argument("benchmarks", nargs=-1, type=_EXISTING)
@click.option("--out", type=_DIR, required=True, help="Run directory (a rerun resumes).")
@click.option("--replay", "replay", type=click.Path(exists=True, file_okay=False,
                                                    path_type=Path), default=None,
              help="Re-grade an eval pack offline into --out (no server, no network).")
@click.option("--model", default=None, help="Model name as the server serves it.")
@click.option("--base-url", "base_urls", multiple=True, help="OpenAI-compatible server URL.")
@click.option("--tokenizer", default=None, help="Tokenizer directory [default: MODEL].")
@rollout_options
@recorder_options(llm=True)
@click.option("--grader", "graders", multiple=True, default=("em", "f1", "cover_em"),
              show_default=True, help="em, f1, cover_em or judge (repeat; the first is the "
                                      "report's primary).")
@click.option("--judge-model", default=None, help="The judge's model name.")
@click.option("--judge-base-url", default=None, help="The judge's OpenAI-compatible server.")
@click.option("--judge-mode", type=_ModeChoice(), default="auto", show_default=True,
              help="Store mode for judge calls.")
@click.option("--judge-template", type=_EXISTING, default=None,
              help="Judge prompt template ({question}, {gold_answers}, {predicted_answer}) "
                   "[default: cirkit's CORRECT/INCORRECT/NOT_ATTEMPTED template].")
@click.option("-j", "--concurrency", default=32, show_default=True, type=click.IntRange(1))
def run(benchmarks: tuple[Path, ...], out: Path, replay: Path | None, model: str | None,
        base_urls: tuple[str, ...], tokenizer: str | None, samples: int, seed: int,
        temperature: float, top_p: float, top_k: int, max_tokens: int, max_code_blocks: int,
        max_response_tokens: int, max_total_tokens: int, max_model_len: int | None, date: str,
        recorder: RecorderOptions, graders: tuple[str, ...], judge_model: str | None,
        judge_base_url: str | None, judge_mode: Mode, judge_template: Path | None,
        concurrency: int) -> None:
    """Run, grade and report BENCHMARKS (SimpleQA CSV, Frames TSV/CSV, verl parquet,
    Seal-0-style or {id, question, answer} JSONL), or re-grade an eval pack (--replay)."""
    from cirkit.eval import EvalSpec, Judge, JudgeTemplate, grade_run, replay_pack

    console = Console(stderr=True)
    if replay is not None:
        if benchmarks:
            raise click.UsageError("--replay takes no BENCHMARKS: the pack holds them")
        res = replay_pack(replay, out)
        _print_report(res.report, out, console)
        if not res.identical:
            raise CirkitError("the replayed report.json differs from the pack's",
                              hint="the pack was made by another cirkit version, or edited; "
                                   "compare the two report.json files")
        console.print("report.json is byte-identical to the pack's", markup=False)
        return
    if not benchmarks:
        raise click.UsageError("give BENCHMARKS (files), or --replay PACK")
    if not model:
        raise click.UsageError("give --model")
    template = JudgeTemplate.from_file(judge_template) if judge_template else \
        JudgeTemplate.builtin()
    spec = EvalSpec(benchmarks=tuple(p.name for p in benchmarks), graders=graders, seed=seed,
                    samples=samples, model=model,
                    sampling=Sampling(temperature=temperature, top_p=top_p, top_k=top_k,
                                      seed=seed, max_tokens=max_tokens).to_json(),
                    date=date, judge_model=judge_model,
                    judge_template=template.text if "judge" in graders else None)
    if "judge" in graders and judge_mode is not Mode.REPLAY and not judge_base_url:
        raise click.UsageError("give --judge-base-url (the judge's server), or "
                               "--judge-mode replay")
    if recorder.store is None:
        raise click.UsageError("give --store DIR: an evaluation records every call")
    benches = _rollouts(out, benchmarks, spec=spec, recorder=recorder,
                                base_urls=base_urls, tokenizer=tokenizer,
                                limits=RolloutLimits(max_code_blocks,
                                                     _LIMITS.max_observation_tokens,
                                                     max_response_tokens, max_total_tokens),
                                max_model_len=max_model_len, concurrency=concurrency,
                                console=console)
    (out / "eval.json").write_text(json.dumps(spec.to_json(), sort_keys=True, indent=2) + "\n",
                                   encoding="utf-8")
    with Store(recorder.store, readonly=judge_mode is Mode.REPLAY) as st:
        judge = Judge(model=judge_model or "", base_url=judge_base_url,
                      recorder=Recorder(st, mode=judge_mode), template=template,
                      concurrency=concurrency) if "judge" in graders else None
        report = grade_run(out, spec, judge=judge, store=st)
    console.print(f"{len(benches)} benchmark(s), {report['trajectories']} trajectories",
                  markup=False)
    _print_report(report, out, console)


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("run_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--grader", default="em", show_default=True, help="The grader to compare by.")
@click.option("--seed", default=0, show_default=True, help="Bootstrap seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(run_a: Path, run_b: Path, grader: str, seed: int, as_json: bool) -> None:
    """Paired comparison of two graded runs (B minus A): difference, paired bootstrap
    interval, exact McNemar p-value, and the questions that flipped either way."""
    from cirkit.eval import compare_runs

    c = compare_runs(run_a, run_b, grader=grader, seed=seed)
    if as_json:
        click.echo(json.dumps(c, sort_keys=True, indent=2))
        return
    lo, hi = c["ci95"]
    click.echo(f"{c['questions']} questions in both runs, by {grader}: A "
               f"{100 * c['accuracy_a']:.1f}%, B {100 * c['accuracy_b']:.1f}%, B - A "
               f"{100 * c['difference']:+.1f} points (95% interval {100 * lo:+.1f} to "
               f"{100 * hi:+.1f}); exact McNemar p = {c['mcnemar_p']:.4g}")
    for label, key in (("wrong in A, right in B", "flipped_to_correct"),
                       ("right in A, wrong in B", "flipped_to_incorrect")):
        click.echo(f"{label}: {len(c[key])}")
        for q in c[key]:
            click.echo(f"  {q}")


@eval_group.command("pack")
@click.argument("run_dir", metavar="RUN",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--store", type=click.Path(exists=True, file_okay=False, path_type=Path),
              required=True, help="The store the run recorded into.")
@click.option("--out", type=_DIR, required=True, help="The pack folder to write (new).")
def pack_cmd(run_dir: Path, store: Path, out: Path) -> None:
    """Bundle RUN (benchmarks, trajectories, grades, report) and its store into an eval pack
    folder; `cirkit push` uploads it."""
    from cirkit.eval import pack_run

    info = pack_run(run_dir, out, store=store)
    click.echo(f"eval pack {info.sha256} ({info.files} files) in {info.path}")
