"""An evaluation run: benchmarks read as published, rollouts through the engine, every
trajectory graded, the report written.

A run directory holds ``eval.json`` (what was asked: benchmarks, graders, seed, judge),
``benchmarks/`` (the files as given), ``rollouts/<benchmark>/`` (one resumable rollout
directory per benchmark), ``data/grades.jsonl`` (one graded row per trajectory, what
``cirkit eval compare`` reads) and the report. Grading reads only these files and the store,
so a re-grade (``--replay``) gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cirkit.answers import gold_answers
from cirkit.errors import CirkitError, InputError
from cirkit.inputs import Question, read_questions
from cirkit.trajectory import RolloutDir
from recorders import COMPLETION, Store, make_key

from ._graders import GRADERS, Judge, JudgeCall, parse_verdict, score_rule
from ._metrics import GradedRow, summarize, topics_of
from ._report import write_report

__all__ = ["EVAL_FILE", "GRADES_FILE", "Benchmark", "EvalSpec", "grade_run", "load_benchmark",
           "read_grades", "rollout_dir", "stage_benchmarks"]

EVAL_FILE = "eval.json"
GRADES_FILE = "data/grades.jsonl"


@dataclass(slots=True, frozen=True)
class Benchmark:
    """A benchmark file's questions (one per id: the first row of a repeated question)."""

    name: str  # the file's name; its stem names its rollouts and is the default source
    questions: tuple[Question, ...]

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def load_benchmark(path: Path) -> Benchmark:
    """A benchmark in its published form (SimpleQA CSV, Frames TSV/CSV, verl parquet,
    Seal-0-style or plain JSONL), through the input adapters."""
    seen: dict[str, Question] = {}
    for q in read_questions(path, unique=False):
        if not gold_answers(q.ground_truth):
            raise InputError(f"question {q.id!r} has no gold answer", path=path,
                             field="answer",
                             hint="an evaluation set needs an answer per question (answer, "
                                  "true_answer, golden_answers...)")
        seen.setdefault(q.id, q)
    return Benchmark(Path(path).name, tuple(seen.values()))


@dataclass(slots=True, frozen=True, kw_only=True)
class EvalSpec:
    """What a run grades with, as ``eval.json`` keeps it."""

    benchmarks: tuple[str, ...]  # file names under benchmarks/
    graders: tuple[str, ...] = ("em", "f1", "cover_em")
    seed: int = 0
    samples: int = 1
    model: str = ""
    sampling: dict[str, Any] | None = None
    date: str = ""
    judge_model: str | None = None
    judge_template: str | None = None  # the template's text

    def __post_init__(self) -> None:
        bad = [g for g in self.graders if g not in GRADERS]
        if bad or not self.graders:
            raise CirkitError(f"unknown grader {bad[0]!r}" if bad else "no grader given",
                              setting="grader", hint=f"use one of: {', '.join(GRADERS)}")
        if "judge" in self.graders and not self.judge_model:
            raise CirkitError("the judge grader needs a judge model", setting="judge_model",
                              hint="give --judge-model (and --judge-base-url to record)")

    @property
    def primary(self) -> str:
        return self.graders[0]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["benchmarks"], d["graders"] = list(self.benchmarks), list(self.graders)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EvalSpec:
        d = dict(d)
        d["benchmarks"], d["graders"] = tuple(d["benchmarks"]), tuple(d["graders"])
        return cls(**d)


def rollout_dir(run: Path, bench: Benchmark) -> Path:
    return run / "rollouts" / bench.stem


def stage_benchmarks(run: Path, paths: Sequence[Path]) -> list[Benchmark]:
    """Read every benchmark (refusing a bad one before anything is written), then copy the
    files into ``run/benchmarks`` as they are."""
    names = [p.name for p in paths]
    stems = [Path(n).stem for n in names]
    dup = next((s for s in stems if stems.count(s) > 1), None)
    if dup is not None:
        raise CirkitError(f"two benchmark files are named {dup!r}", setting="benchmarks",
                          hint="rename one: a file's name names its rollouts and its source")
    benches = [load_benchmark(p) for p in paths]
    (run / "benchmarks").mkdir(parents=True, exist_ok=True)
    for p in paths:
        dest = run / "benchmarks" / p.name
        if not dest.exists() or dest.read_bytes() != p.read_bytes():
            shutil.copyfile(p, dest)
    return benches


def _tool_counts(record: dict[str, Any]) -> tuple[int, int, int]:
    blocks = record.get("code_blocks") or []
    calls = [c.get("tool") for b in blocks for c in (b.get("tool_calls") or [])]
    return calls.count("web_search"), calls.count("web_visit"), len(blocks)


def _rows(run: Path, bench: Benchmark) -> list[tuple[GradedRow, Question, list[str]]]:
    by_id = {q.id: q for q in bench.questions}
    out = []
    for rec in RolloutDir(rollout_dir(run, bench)).records():
        q = by_id.get(rec["question_id"])
        if q is None:
            continue  # a rollout of a question this benchmark no longer holds
        searches, visits, blocks = _tool_counts(rec)
        row = GradedRow(question_id=f"{bench.stem}:{q.id}",
                        sample_index=int(rec["sample_index"]), source=q.source or bench.stem,
                        prediction=rec.get("final_answer"), finish_reason=rec["finish_reason"],
                        searches=searches, visits=visits, code_blocks=blocks,
                        topics=topics_of(q.metadata))
        out.append((row, q, list(rec.get("store_keys") or [])))
    out.sort(key=lambda t: (t[0].question_id, t[0].sample_index))
    return out


def grade_run(run: Path, spec: EvalSpec, *, judge: Judge | None = None,
              store: Store | None = None) -> dict[str, Any]:
    """Grade every trajectory of ``run``, write ``data/grades.jsonl`` and the report, and
    return the report. ``store``: where coverage is counted (and the judge's calls live)."""
    benches = [load_benchmark(run / "benchmarks" / n) for n in spec.benchmarks]
    graded = [t for b in benches for t in _rows(run, b)]
    if not graded:
        raise CirkitError(f"{run} holds no trajectories to grade", setting="out",
                          hint="run the rollouts first (cirkit eval BENCH... --out DIR)")
    keys: list[str] = []
    for row, q, used in graded:
        golds = gold_answers(q.ground_truth)
        for g in spec.graders:
            if g != "judge":
                row.scores[g] = score_rule(g, row.prediction, golds)
        keys += used
    if "judge" in spec.graders:
        if judge is None:
            raise CirkitError("the judge grader needs a judge", setting="judge_model",
                              hint="give --judge-model")
        todo = [(row, JudgeCall(row.question_id, q.question, gold_answers(q.ground_truth),
                                row.prediction)) for row, q, _ in graded
                if row.prediction is not None]
        for (row, call), reply in zip(todo, judge.replies([c for _, c in todo]), strict=True):
            row.verdict = parse_verdict(reply)
            keys.append(make_key(COMPLETION, judge.args(judge.template.render(
                call.question, call.golds, call.predicted)))[0])
        for row, _, _ in graded:
            row.scores["judge"] = 1.0 if row.verdict == "CORRECT" else 0.0
    unique = list(dict.fromkeys(keys))
    answered = sum(1 for k in unique if store is not None and store.get_entry(k) is not None)
    report = summarize([r for r, _, _ in graded], graders=spec.graders, samples=spec.samples,
                       seed=spec.seed, coverage=(answered, len(unique)))
    report["benchmarks"] = list(spec.benchmarks)
    report["model"] = spec.model
    report["seed"] = spec.seed
    grades = run / GRADES_FILE
    grades.parent.mkdir(parents=True, exist_ok=True)
    with grades.open("w", encoding="utf-8") as f:
        for row, _, _ in graded:
            f.write(json.dumps({"question_id": row.question_id, "sample_index":
                                row.sample_index, "source": row.source,
                                "prediction": row.prediction, "verdict": row.verdict,
                                "scores": row.scores, "finish_reason": row.finish_reason},
                               sort_keys=True, ensure_ascii=False) + "\n")
    write_report(run, report, primary=spec.primary)
    return report


def read_grades(run: Path) -> list[dict[str, Any]]:
    """The graded rows a run wrote (``data/grades.jsonl``)."""
    path = run / GRADES_FILE
    if not path.is_file():
        raise InputError(f"{run} is not a graded evaluation run (no {GRADES_FILE})",
                         path=run, hint="pass the --out directory of `cirkit eval`")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise InputError("not a JSON line", path=path, line=n,
                             hint="re-grade the run: cirkit eval --replay or rerun") from None
    return rows
