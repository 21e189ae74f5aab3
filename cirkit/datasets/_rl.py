"""``build_rl``: verl's RL parquet from a question file.

verl's ``RLHFDataset`` (``verl/utils/dataset/rl_dataset.py``) reads parquet with
``datasets.load_dataset("parquet")``, takes the chat messages from the ``prompt`` column
(``data.prompt_key``, default "prompt"), applies the model's chat template with
``add_generation_prompt=True``, drops prompts longer than ``data.max_prompt_length`` and reads
``extra_info["index"]``; its reward functions get ``data_source`` and
``reward_model["ground_truth"]``. The rows here have exactly those columns, and the prompt is
counted the same way at build time, so no row is dropped silently at training time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cirkit.answers import gold_answers
from cirkit.errors import CirkitError, InputError
from cirkit.inputs import Question, RowError, read_questions

from ._common import (
    ALLOW_EMPTY_HINT,
    BuildResult,
    Plot,
    finish_build,
    load_template,
    prompt_info,
    refuse_empty_build,
    tokenizer_info,
)
from ._filters import Filter, Funnel, RejectSink, Verdict, normalize_answer
from ._io import ShardWriter, check_not_empty
from ._options import GROUND_TRUTH_FORMATS, RLOptions
from ._report import LengthStats, summarize_lengths
from ._rows import PromptContext
from ._tokenize import BuildTokenizer

__all__ = ["RLRow", "build_rl", "load_eval_questions", "rl_schema"]

Progress = Callable[[int], None]
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_USAGE = """\
```python
from datasets import load_dataset

ds = load_dataset("parquet", data_files="data/{split}-*.parquet", split="train")
```

verl reads the shards as they are (`RLHFDataset`: `data.prompt_key=prompt`, the default):

```
data.train_files=[<the shards>] data.max_prompt_length={max_prompt} \\
data.max_response_length={max_response}
```

`prompt` holds the chat messages (the CIR system prompt and the question); verl applies the
model's chat template itself. `agent_name` ({agent}) picks cirkit's CIR agent loop, which runs
each code block in cirkit's sandbox with the tools replayed from a store; the reward is
cirkit's (`compute_score`, the answer after `</think>` against
`reward_model["ground_truth"]`, {gt_shape}). With `V` for `cirkit.integrations.verl`:

```
actor_rollout_ref.rollout.mode=async \\
actor_rollout_ref.rollout.agent.agent_loop_config_path=<V.AGENT_LOOP_CONFIG> \\
reward.custom_reward_function.path=<V.REWARD_PATH> \\
reward.custom_reward_function.name=compute_score
```
"""


@dataclass(slots=True)
class RLRow:
    question: Question
    messages: list[dict[str, str]]
    normalized: str
    num_prompt_tokens: int = -1
    malformed: str | None = None  # a line that holds no row: the reader's code
    line: int | None = None

    def reject_record(self) -> dict[str, Any]:
        q = self.question
        record = {"question_id": q.id, "source": q.source, "question": q.question}
        return record if self.line is None else {**record, "line": self.line}


class WellFormed(Filter[RLRow]):
    name = "well_formed"
    description = "the line holds a row (JSON object, UTF-8, no lone surrogate)"

    def check(self, row: RLRow) -> Verdict:
        return True if row.malformed is None else (False, row.malformed)


class ControlTokens(Filter[RLRow]):
    name = "control_tokens"
    description = ("no chat control token (turn marker, end of text) in the question or the "
                   "system prompt: the trainer's chat template would make it a turn")

    def __init__(self, tok: BuildTokenizer) -> None:
        super().__init__()
        self.tok = tok

    def check(self, row: RLRow) -> Verdict:
        if self.tok.find_control(row.question.question):
            return False, "control_token_in_question"
        if any(self.tok.find_control(m["content"]) for m in row.messages):
            return False, "control_token_in_prompt"
        return True

    def config(self) -> dict[str, Any]:
        return {"control_tokens": list(self.tok.control_strings)}


class HasGroundTruth(Filter[RLRow]):
    name = "has_ground_truth"
    description = "a ground truth for the rule-based reward"

    def check(self, row: RLRow) -> Verdict:
        gt = row.question.ground_truth
        return True if gold_answers(gt) else (False, "no_ground_truth")


class EvalOverlap(Filter[RLRow]):
    name = "eval_overlap"
    description = "question not in an evaluation set (normalised text match)"

    def __init__(self, eval_questions: set[str], names: list[str]) -> None:
        super().__init__()
        self.eval_questions, self.names = eval_questions, names

    def check(self, row: RLRow) -> Verdict:
        return (False, "in_eval_set") if row.normalized in self.eval_questions else True

    def config(self) -> dict[str, Any]:
        return {"eval_sets": self.names, "eval_questions": len(self.eval_questions)}


class DuplicateQuestion(Filter[RLRow]):
    name = "duplicate"
    description = "question text (normalised) not seen earlier in the file"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def check(self, row: RLRow) -> Verdict:
        if row.normalized in self._seen:
            return False, "duplicate_question"
        self._seen.add(row.normalized)
        return True


class PromptTooLong(Filter[RLRow]):
    name = "prompt_too_long"
    description = "chat-templated prompt at most this many tokens (verl's max_prompt_length)"

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def check(self, row: RLRow) -> Verdict:
        return True if row.num_prompt_tokens <= self.limit else (False, "prompt_too_long")

    def config(self) -> dict[str, Any]:
        return {"max_prompt_tokens": self.limit}


def load_eval_questions(paths: Sequence[Path]) -> set[str]:
    """Normalised question texts of evaluation sets, read as ``cirkit.inputs.read_questions``
    reads any question file (SimpleQA's and Frames' CSV/TSV as published). Repeated
    questions are fine here; a row without a question is an error, as anywhere."""
    return {normalize_answer(q.question) for p in paths
            for q in read_questions(p, unique=False)}


def rl_schema(ground_truth_format: str = "list") -> pa.Schema:
    """verl's columns. ``reward_model.ground_truth`` is always a list of strings ("list") or
    always ``{"target": [...]}`` ("target"), never a type that depends on the questions, so
    any two builds of one format concatenate."""
    golds = pa.list_(pa.string())
    gt = golds if ground_truth_format == "list" else pa.struct([("target", golds)])
    return pa.schema([
        ("data_source", pa.string()), ("prompt", _MESSAGES), ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", gt)])),
        ("extra_info", pa.struct([
            ("index", pa.int64()), ("split", pa.string()), ("question_id", pa.string()),
            ("num_prompt_tokens", pa.int64()), ("question", pa.string())])),
        ("agent_name", pa.string()),
    ])


def _collect(into: list[RowError]) -> Callable[[InputError], None]:
    """Lines that hold no row are kept for the funnel (counted, reported), not fatal."""
    def take(e: InputError) -> None:
        if not isinstance(e, RowError):
            raise e
        into.append(e)
    return take


def _bad_row(e: RowError) -> RLRow:
    source = Path(e.path).stem if e.path is not None else ""
    return RLRow(Question("", "", None, source), [], "", malformed=e.code, line=e.line)


def _gt(gt: Any, fmt: str) -> list[str] | dict[str, list[str]]:
    golds = list(gold_answers(gt))
    return golds if fmt == "list" else {"target": golds}


def build_rl(questions: str | Path | Sequence[str | Path], out: str | Path, *,
             tokenizer: str | Path | BuildTokenizer, options: RLOptions | None = None,
             progress: Progress | None = None) -> BuildResult:
    """Build a verl RL dataset folder from question files (JSONL/CSV/TSV/parquet, read by
    ``cirkit.inputs.read_questions``)."""
    opts = options or RLOptions()
    if opts.ground_truth_format not in GROUND_TRUTH_FORMATS:
        raise CirkitError(f"unknown ground truth format {opts.ground_truth_format!r}",
                          setting="ground_truth_format",
                          hint=f"use one of: {', '.join(GROUND_TRUTH_FORMATS)}")
    out = Path(out)
    tok = tokenizer if isinstance(tokenizer, BuildTokenizer) else BuildTokenizer(tokenizer)
    paths = [Path(questions)] if isinstance(questions, (str, Path)) else [
        Path(q) for q in questions]
    for p in paths:
        check_not_empty(p, allow_empty=opts.allow_empty,
                        hint=f"give a file of questions, {ALLOW_EMPTY_HINT}")
    bad: list[RowError] = []
    per_file = [read_questions(p, on_bad_row=_collect(bad), allow_empty=opts.allow_empty)
                for p in paths]
    qs = [q for file_qs in per_file for q in file_qs]
    template = load_template(opts.template)
    ctx = PromptContext(tok, template, date=opts.date, dialect=opts.dialect,
                        max_code_blocks=opts.max_code_blocks)
    eval_names = [p.name for p in opts.exclude_eval]
    funnel: Funnel[RLRow] = Funnel(
        [WellFormed(), ControlTokens(tok), HasGroundTruth(),
         EvalOverlap(load_eval_questions(opts.exclude_eval), eval_names),
         DuplicateQuestion(), PromptTooLong(opts.max_prompt_tokens)],
        RejectSink(opts.reject) if opts.reject is not None else None)
    eval_stage = funnel.filters[funnel.index("eval_overlap")]
    token_stage = funnel.index("prompt_too_long")
    fmt = opts.ground_truth_format
    schema = rl_schema(fmt)
    writer = ShardWriter(out, opts.split, schema, shard_rows=opts.shard_rows,
                         row_group_rows=opts.row_group_rows)
    lengths = LengthStats()
    index = 0
    try:
        funnel.run([_bad_row(e) for e in bad])  # well_formed drops them, counted
        for start in range(0, len(qs), opts.chunk_rows):
            chunk = qs[start:start + opts.chunk_rows]
            rows = [RLRow(q, ctx.messages(q.question), normalize_answer(q.question))
                    for q in chunk]
            kept = funnel.run(rows, 0, token_stage)
            ids = tok.encode_prompts([ctx.chat_prompt(r.messages) for r in kept])
            for r, i in zip(kept, ids, strict=True):
                r.num_prompt_tokens = len(i)
            kept = funnel.run(kept, token_stage, count_in=False)
            n = [r.num_prompt_tokens for r in kept]
            writer.write(pa.table({
                "data_source": [opts.data_source or r.question.source for r in kept],
                "prompt": pa.array([r.messages for r in kept], _MESSAGES),
                "ability": [opts.ability] * len(kept),
                "reward_model": [{"style": "rule", "ground_truth": _gt(r.question.ground_truth,
                                                                       fmt)} for r in kept],
                "extra_info": [{"index": index + k, "split": opts.split,
                                "question_id": r.question.id, "num_prompt_tokens": n[k],
                                "question": r.question.question} for k, r in enumerate(kept)],
                "agent_name": [opts.agent_name] * len(kept),
            }, schema=schema))
            index += len(kept)
            lengths.add(np.asarray(n, dtype=np.int64))
            if progress is not None:
                progress(len(chunk))
        refuse_empty_build(funnel, allow_empty=opts.allow_empty,
                           first_bad=bad[0] if bad else None)
    except BaseException:
        writer.abort()
        raise
    finally:
        funnel.close()
    tokens = summarize_lengths(lengths.token_series(), opts.max_prompt_tokens)
    report = {"kind": "rl", "tokens_label": "prompt tokens", "tokens": tokens,
              "eval_excluded": eval_stage.stats.removed,
              "ground_truth_type": fmt}
    hist = tokens["histogram"]
    limits = {"max_prompt_tokens": opts.max_prompt_tokens,
              "max_response_tokens": opts.max_response_tokens,
              "max_total_tokens": opts.max_total_tokens, "max_code_blocks": opts.max_code_blocks}
    manifest = {
        "kind": "rl", "title": opts.title, "license": opts.license,
        "description": "Questions for reinforcement learning of Code-Integrated Reasoning "
                       "(CIR) with verl, built with cirkit: chat prompts with the CIR system "
                       "prompt, rule-based ground truths, evaluation questions removed.",
        "tags": ["cirkit", "code-integrated-reasoning", "rl", "verl", "tool-use"],
        "tokenizer": tokenizer_info(tok),
        "prompt": prompt_info(template, date=opts.date, dialect=opts.dialect),
        "limits": limits, "ability": opts.ability, "agent_name": opts.agent_name,
        "ground_truth_type": report["ground_truth_type"],
        "inputs": [{"name": p.name, "kind": "questions", "rows": len(file_qs)}
                   for p, file_qs in zip(paths, per_file, strict=True)],
        "eval_sets": eval_names,
    }
    usage = (_USAGE.replace("{split}", opts.split)
             .replace("{max_prompt}", str(opts.max_prompt_tokens))
             .replace("{max_response}", str(opts.max_response_tokens))
             .replace("{agent}", opts.agent_name)
             .replace("{gt_shape}", "a list of strings" if fmt == "list"
                      else '{"target": [...]}'))
    return finish_build(out, writer=writer, funnel=funnel, report=report, manifest=manifest,
                        plots=[Plot("prompt_tokens", "Prompt tokens per row", "prompt tokens",
                                    hist["counts"], edges=hist["bin_edges"])],
                        usage=usage)
