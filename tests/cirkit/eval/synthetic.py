"""Graded runs built from synthetic trajectories (no server): a benchmark file, one rollout
record per sample with the answer the test chooses, written by the rollout writer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from cirkit.eval import EvalSpec, grade_run, rollout_dir, stage_benchmarks
from cirkit.rollout import RolloutWriter
from cirkit.trajectory import CodeBlock, Trajectory, trajectory_id

GOLD = {f"q{i}": f"answer {i}" for i in range(10)}


def make_run(run: Path, answers: Mapping[str, Sequence[str | None]], *,
             graders: tuple[str, ...] = ("em", "f1", "cover_em"), bench: Path | None = None,
             searches: int = 1) -> dict[str, object]:
    """A graded run whose question ``qid``'s sample ``i`` answered ``answers[qid][i]``
    (None: no answer)."""
    if bench is None:
        bench = run.parent / f"{run.name}-bench" / "bench.jsonl"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text("".join(json.dumps({"id": q, "question": f"what is {q}?",
                                             "answer": a}) + "\n" for q, a in GOLD.items()))
    (b,) = stage_benchmarks(run, [bench])
    samples = max(len(v) for v in answers.values())
    w = RolloutWriter(rollout_dir(run, b))
    for q in b.questions:
        for i, ans in enumerate(answers.get(q.id, ())):
            block = CodeBlock(code="web_search('x')", output="...", error=None, duration_ms=1.0,
                              tool_calls=[CodeBlock.tool_call("web_search", {"query": "x"},
                                                              f"k{j}", None)
                                          for j in range(searches)])
            w.write(Trajectory(
                id=trajectory_id(q.id, i, 0), question_id=q.id, question=q.question,
                ground_truth=q.ground_truth, source=q.source, sample_index=i, model="m",
                sampling={}, dialect="card", prompt_template_sha256="0", date="2025-01-01",
                prompt_text="", prompt_token_ids=[], response_text="", response_token_ids=[],
                response_mask=[], code_blocks=[block], final_answer=ans,
                finish_reason="answer" if ans is not None else "max_code_blocks",
                decode_ok=True, store_keys=[], error=None))
    w.finalize({q.id: n for n, q in enumerate(b.questions)}, config={})
    spec = EvalSpec(benchmarks=(b.name,), graders=graders, samples=samples, model="m")
    (run / "eval.json").write_text(json.dumps(spec.to_json(), sort_keys=True))
    return grade_run(run, spec)
