"""``build_sft``: TRL-ready SFT rows from trajectories or text-only traces.

Trajectory records keep their token ids as the server generated them (re-tokenizing generated
text is what misaligns masks in other stacks): ``input_ids = prompt_token_ids +
response_token_ids`` and ``labels`` are -100 on the prompt and on observation tokens. Text-only
traces are tokenized piece by piece so that the mask falls exactly on piece borders. Each row
also carries ``messages`` (system, user, assistant with the whole CIR text), so TRL can use
either the tokens (``input_ids`` + ``labels``, read as they are) or the conversation.

TRL 1.x's ``SFTTrainer`` treats a dataset with ``input_ids`` as pre-tokenized and keeps a
``labels`` column as it is (its collator pads it with -100); ``assistant_masks`` /
``completion_mask`` columns would only be read when ``labels`` is absent, so the rows carry
none. ``tests/cirkit/datasets/test_trl_consumer.py`` trains the tiny model on a built dataset
with the pinned TRL and checks the labels its collator produces.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from cirkit.errors import InputError
from cirkit.inputs import read_trace_blocks

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
from ._filters import Funnel, RejectSink
from ._io import (
    InputFile,
    ShardWriter,
    check_not_empty,
    discover_inputs,
    iter_frames,
    prefetch,
)
from ._options import SFTOptions
from ._report import LengthStats, code_block_counts, summarize_lengths
from ._rl import load_eval_questions
from ._rows import PromptContext, SFTRow, row_from_bad_line, row_from_trace, rows_from_frame
from ._sft_filters import sft_filters
from ._tokenize import BuildTokenizer, join_ids, split_pieces

__all__ = ["SFT_SCHEMA", "build_sft"]

Progress = Callable[[int], None]
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_IDS = pa.list_(pa.int32())
#: The SFT rows' columns, in order.
SFT_SCHEMA = pa.schema([
    ("messages", _MESSAGES), ("input_ids", _IDS), ("labels", _IDS), ("num_tokens", pa.int64()),
    ("num_code_blocks", pa.int64()), ("trajectory_id", pa.string()), ("source", pa.string()),
    ("question_id", pa.string()),
])
_USAGE = """\
```python
from datasets import load_dataset

ds = load_dataset("parquet", data_files="data/{split}-*.parquet", split="train")
# or, once pushed: load_dataset("<owner>/<name>", split="{split}")
```

TRL's `SFTTrainer` takes the rows as they are: a dataset with `input_ids` counts as
pre-tokenized (nothing is re-tokenized from `messages`), and its collator uses the `labels`
column as is: -100 on prompt and observation tokens (and on padding). One setting matters:

```python
from trl import SFTConfig, SFTTrainer

config = SFTConfig(output_dir="out", max_length=None)  # this build kept rows <= {max_tokens} tokens
trainer = SFTTrainer(model="<the tokenizer's model>", args=config, train_dataset=ds)
```

TRL's default `max_length` (1024) cuts every longer row and drops the rows left with no
trainable token: pass `max_length=None` (or at least the longest row). Leave
`assistant_only_loss` and `completion_only_loss` unset: they only shape the labels of data TRL
tokenizes itself. The `messages` column holds the same conversation as text (system, user, and
one assistant turn with the whole CIR trace) for trainers that apply the chat template
themselves.
"""


@dataclass(slots=True)
class _Batch:
    """A chunk of text-only rows whose pieces are in the tokenizer."""

    rows: list[SFTRow]
    pieces: list[list[tuple[str, int]]]
    ids: Future[tuple[list[list[int]], list[list[int]]]]
    nbytes: int


class _Masks:
    __slots__ = ("decode_mismatches", "observation", "prompt", "total", "trainable")

    def __init__(self) -> None:
        self.total = self.prompt = self.observation = self.trainable = 0
        self.decode_mismatches = 0


class _SFTBuild:
    def __init__(self, out: Path, tok: BuildTokenizer, opts: SFTOptions,
                 progress: Progress | None) -> None:
        self.out, self.tok, self.opts, self.progress = out, tok, opts, progress
        self.template = load_template(opts.template)
        self.ctx = PromptContext(tok, self.template, date=opts.date, dialect=opts.dialect,
                                 max_code_blocks=opts.max_code_blocks)
        self.funnel: Funnel[SFTRow] = Funnel(
            sft_filters(tok, max_tokens=opts.max_tokens, max_code_blocks=opts.max_code_blocks,
                        require_correct=opts.require_correct,
                        eval_questions=load_eval_questions(opts.exclude_eval)
                        if opts.exclude_eval else None,
                        eval_names=[p.name for p in opts.exclude_eval]),
            RejectSink(opts.reject) if opts.reject is not None else None)
        self.token_stage = self.funnel.index("max_tokens")
        self.writer = ShardWriter(out, opts.split, SFT_SCHEMA, shard_rows=opts.shard_rows,
                                  row_group_rows=opts.row_group_rows)
        self.lengths = LengthStats()
        self.masks = _Masks()
        self.turn_end_ids = tok.encode(tok.turn_end) if tok.turn_end else []
        self.first_bad: InputError | None = None  # the first line that held no row, if any

    # -- trajectories: ids as they are --------------------------------------------------
    def trajectories(self, src: InputFile) -> int:
        limits = ((src.manifest or {}).get("config") or {}).get("limits") or {}
        mcb = limits.get("max_code_blocks")
        n = 0
        source = src.path.parent.name
        for frame in prefetch(iter_frames(src, self.opts.block_bytes)):
            df, nbytes = frame.df, frame.nbytes
            bad = [row_from_bad_line(e, default_source=source) for e in frame.bad]
            self.funnel.run(bad, 0, self.token_stage)  # well_formed drops them, counted
            if bad and self.first_bad is None:
                self.first_bad = frame.bad[0]
            rows = rows_from_frame(df, self.ctx, default_source=source, max_code_blocks=mcb)
            n += len(rows) + len(bad)
            kept = self.funnel.run(self.funnel.run(rows, 0, self.token_stage),
                                   self.token_stage, count_in=False)
            self.masks.decode_mismatches += sum(1 for r in kept if not r.decode_ok)
            if kept:
                sub = df[[r.index for r in kept]]
                self._emit(kept, sub["prompt_token_ids"].to_arrow(),
                           sub["response_token_ids"].to_arrow(), sub["response_mask"].to_arrow())
            self._advance(nbytes)
        return n

    # -- text-only traces: tokenized piece by piece ---------------------------------------
    def texts(self, src: InputFile) -> int:
        """Rows as ``cirkit validate`` reads them (``cirkit.inputs.read_trace_blocks``): an
        unreadable line is a malformed row, counted by the funnel. Chunk i+1 is read and
        filtered while chunk i is in the tokenizer (which releases the GIL): the Python work
        hides behind the tokenization."""
        n = 0
        pending: _Batch | None = None
        blocks = read_trace_blocks(src.path, block_bytes=max(1, self.opts.block_bytes // 4),
                                   allow_empty=True)
        with ThreadPoolExecutor(1, thread_name_prefix="cirkit-tokenize") as pool:
            for traces, nbytes in blocks:
                rows = [row_from_trace(t, i, self.ctx, default_source=src.path.stem)
                        for i, t in enumerate(traces)]
                if self.first_bad is None:
                    t = next((t for t in traces if not t.row and t.reason), None)
                    if t is not None:
                        self.first_bad = InputError(t.detail, path=src.path, line=t.line)
                n += len(rows)
                batch = self._submit(pool, self.funnel.run(rows, 0, self.token_stage), nbytes)
                if pending is not None:
                    self._finish(pending)
                pending = batch
            if pending is not None:
                self._finish(pending)
        return n

    def _submit(self, pool: ThreadPoolExecutor, rows: list[SFTRow], nbytes: int) -> _Batch:
        """One batch call per chunk: the new prompts, then every piece of every trace."""
        prompts = [self.ctx.chat_prompt(r.prompt_messages) for r in rows]
        pieces = [split_pieces(r.assistant, r.segments) for r in rows]
        flat = [text for ps in pieces for text, _ in ps]

        def encode() -> tuple[list[list[int]], list[list[int]]]:
            return self.tok.encode_prompts(prompts), self.tok.encode_batch(flat)

        return _Batch(rows, pieces, pool.submit(encode), nbytes)

    def _finish(self, b: _Batch) -> None:
        prompt_ids, ids = b.ids.result()
        at = 0
        for r, pids, ps in zip(b.rows, prompt_ids, b.pieces, strict=True):
            r.prompt_ids = pids
            resp: list[int] = []
            mask: list[int] = []
            for (_, m), pid in zip(ps, ids[at:at + len(ps)], strict=True):
                resp += pid
                mask += [m] * len(pid)
            at += len(ps)
            resp += self.turn_end_ids
            mask += [1] * len(self.turn_end_ids)
            r.response_ids, r.response_mask = resp, mask
            r.num_tokens = len(r.prompt_ids) + len(resp)
        kept = self.funnel.run(b.rows, self.token_stage, count_in=False)
        if kept:
            expect = [r.assistant + self.tok.turn_end for r in kept]
            got = self.tok.decode_batch([r.response_ids for r in kept])
            self.masks.decode_mismatches += sum(a != e for a, e in zip(got, expect, strict=True))
            self._emit(kept, pa.array([r.prompt_ids for r in kept], _IDS),
                       pa.array([r.response_ids for r in kept], _IDS),
                       pa.array([r.response_mask for r in kept], pa.list_(pa.int8())))
            for r in kept:  # the ids are in Arrow now
                r.prompt_ids = r.response_ids = r.response_mask = []
        self._advance(b.nbytes)

    def _emit(self, rows: list[SFTRow], prompt: pa.Array, response: pa.Array,
              mask: pa.Array) -> None:
        j = join_ids(prompt, response, mask,
                     train_on_observations=self.opts.train_on_observations)
        blocks = [r.num_code_blocks for r in rows]
        messages = [[*r.prompt_messages, {"role": "assistant", "content": r.assistant}]
                    for r in rows]
        table = pa.table({
            "messages": pa.array(messages, _MESSAGES), "input_ids": j.input_ids,
            "labels": j.labels, "num_tokens": pa.array(j.num_tokens, pa.int64()),
            "num_code_blocks": pa.array(blocks, pa.int64()),
            "trajectory_id": pa.array([r.trajectory_id for r in rows], pa.string()),
            "source": pa.array([r.source for r in rows], pa.string()),
            "question_id": pa.array([r.question_id for r in rows], pa.string()),
        }, schema=SFT_SCHEMA)
        self.writer.write(table)
        self.lengths.add(j.num_tokens, blocks)
        m = self.masks
        m.total += int(j.num_tokens.sum())
        m.prompt += j.prompt_tokens
        m.observation += j.observation_tokens
        m.trainable += j.trainable_tokens

    def _advance(self, nbytes: int) -> None:
        if self.progress is not None:
            self.progress(nbytes)

    def report(self) -> tuple[dict[str, Any], list[Plot]]:
        tokens = summarize_lengths(self.lengths.token_series(), self.opts.max_tokens)
        blocks = code_block_counts(self.lengths.code_block_series())
        m = self.masks
        masks = {
            "total_tokens": m.total, "prompt_tokens": m.prompt,
            "response_tokens": m.total - m.prompt, "observation_tokens": m.observation,
            "trainable_tokens": m.trainable,
            "trainable_fraction": round(m.trainable / m.total, 4) if m.total else 0.0,
            "observations_trained": self.opts.train_on_observations,
        }
        hist = tokens["histogram"]
        most = max((int(k) for k in blocks["histogram"]), default=0)
        plots = [
            Plot("num_tokens", "Tokens per row", "tokens (prompt + response)", hist["counts"],
                 edges=hist["bin_edges"]),
            Plot("code_blocks", "Code blocks per row", "code blocks",
                 [blocks["histogram"].get(str(i), 0) for i in range(most + 1)],
                 labels=[str(i) for i in range(most + 1)]),
        ]
        report = {"kind": "sft", "tokens_label": "tokens per row", "tokens": tokens,
                  "code_blocks": blocks, "masks": masks,
                  "decode_mismatches": m.decode_mismatches}
        if self.opts.exclude_eval:
            stage = self.funnel.filters[self.funnel.index("eval_overlap")]
            report["eval_excluded"] = stage.stats.removed
        return report, plots


def _input_entries(files: list[InputFile], counts: list[int], roots: list[Path]
                   ) -> list[dict[str, Any]]:
    """One entry per path given: its name (never a machine path), kind, rows, hashes."""
    out: dict[str, dict[str, Any]] = {}
    for f, n in zip(files, counts, strict=True):
        root = next((r for r in roots if r == f.path or r in f.path.parents), f.path)
        e = out.setdefault(root.name, {"name": root.name, "kind": f.kind, "files": 0, "rows": 0})
        e["files"] += 1
        e["rows"] += n
        if f.manifest_sha256:
            e["rollouts_manifest_sha256"] = f.manifest_sha256
            config = (f.manifest or {}).get("config") or {}
            store = (f.manifest or {}).get("store_manifest_sha256") or config.get(
                "store_manifest_sha256")
            if store:
                e["store_manifest_sha256"] = store
    return list(out.values())


def build_sft(inputs: Sequence[str | Path], out: str | Path, *,
              tokenizer: str | Path | BuildTokenizer, options: SFTOptions | None = None,
              progress: Progress | None = None) -> BuildResult:
    """Build an SFT dataset folder (shards, README.md, build.json, report.json, plots).

    ``inputs``: rollout directories, trajectory JSONL/parquet files, or text-only traces.
    ``progress`` is called with the input bytes each chunk covered.
    """
    opts = options or SFTOptions()
    out = Path(out)
    tok = tokenizer if isinstance(tokenizer, BuildTokenizer) else BuildTokenizer(tokenizer)
    roots = [Path(p) for p in inputs]
    for p in roots:
        if p.is_file():
            check_not_empty(p, allow_empty=opts.allow_empty,
                            hint=f"give a file of traces or trajectories, {ALLOW_EMPTY_HINT}")
    files = discover_inputs(roots)
    b = _SFTBuild(out, tok, opts, progress)
    try:
        counts = [b.trajectories(f) if f.kind == "trajectories" else b.texts(f) for f in files]
        refuse_empty_build(b.funnel, allow_empty=opts.allow_empty, first_bad=b.first_bad)
    except BaseException:
        b.writer.abort()
        raise
    finally:
        b.funnel.close()
    report, plots = b.report()
    manifest = {
        "kind": "sft", "title": opts.title, "license": opts.license,
        "description": "Code-Integrated Reasoning (CIR) traces for supervised fine-tuning, "
                       "built with cirkit: one row per trace, pre-tokenized with the model's "
                       "tokenizer, observation tokens masked from the loss"
                       + (" (here: trained on)" if opts.train_on_observations else "") + ".",
        "tags": ["cirkit", "code-integrated-reasoning", "sft", "tool-use"],
        "tokenizer": tokenizer_info(tok),
        "prompt": prompt_info(b.template, date=opts.date, dialect=opts.dialect),
        "limits": {"max_tokens": opts.max_tokens, "max_code_blocks": opts.max_code_blocks},
        "options": {"require_correct": opts.require_correct,
                    "train_on_observations": opts.train_on_observations,
                    "shard_rows": opts.shard_rows, "row_group_rows": opts.row_group_rows},
        "inputs": _input_entries(files, counts, roots),
    }
    return finish_build(out, writer=b.writer, funnel=b.funnel, report=report,
                        manifest=manifest, plots=plots,
                        usage=_USAGE.replace("{split}", opts.split).replace(
                            "{max_tokens}", str(opts.max_tokens)))
