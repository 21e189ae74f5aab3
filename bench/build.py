"""SFT build throughput and memory, against raw tokenization measured in the same run.

    python bench/build.py                       # 100,000 rows, both paths (~10 min on 2 cores)
    python bench/build.py --rows 1000000 --paths trajectories   # the memory figure at 1M rows
    python bench/build.py --rows 2000 --quick   # smoke run

1. Trains a byte-level BPE (vocabulary 16k, ``tokenizers``) on the synthetic text, with a
   ChatML chat template, into a temporary model directory: no download.
2. Writes N synthetic trajectories (seeded; 1 to 4 code blocks, observations of 100-400 words,
   ~1-3k tokens per row with the system prompt) as rollout JSONL, and the same traces as
   text-only JSONL (question + response). The trajectory ids are random ids of realistic
   length: the builder takes them as they are and never decodes them.
3. Anchor: raw ``tokenizers`` batch encoding (``encode_batch_fast``, chunks of 10,000) of the
   same texts (chat prompt + response), timed without the reading; measured before and after
   each build, and each build is compared with the mean of the two.
4. Builds each path with ``build_sft`` in its own subprocess, which reports its wall time and
   peak memory (``resource.getrusage`` maxrss).

Targets: the text-only build (where tokenization dominates) at most 1.5x the anchor; peak memory
at most 2 GiB at 1M rows. The trajectory build does not tokenize the response at all, so its
ratio is reported for scale. This is a benchmark, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
           "<start_code>", "<end_code>"]
_SYL = ["ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "an", "er", "in", "on", "us",
        "pre", "str", "ing", "tion", "al", "ic", "ber", "gar", "mon", "tel"]


class Pool:
    """Deterministic prose, observations and questions, assembled from a fixed pool."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        words = ["".join(rng.choice(_SYL, size=int(rng.integers(1, 4)))) for _ in range(5000)]
        words += ["the", "of", "and", "in", "is", "was", "to", "a", "for", "with", "that"] * 200
        self.words = np.array(words)
        self.rng = rng
        self.prose = [self._words(int(rng.integers(30, 120))) for _ in range(3000)]
        self.obs = [self._observation(int(rng.integers(100, 400))) for _ in range(3000)]

    def _words(self, n: int) -> str:
        w = self.rng.choice(self.words, size=int(n))
        return " ".join(w).capitalize() + "."

    def _observation(self, n: int) -> str:
        hits = []
        for i in range(1, 6):
            hits.append(f"\nIndex: {i}\nURL: https://example.org/{self.rng.integers(1 << 30)}"
                        f"\nTitle: {self._words(6)}\nPreview: {self._words(n // 5)}\n")
        return "".join(hits)


def make_tokenizer(pool: Pool, out: Path) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=16000, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    from cirkit.cir import BUILTIN_TEMPLATE

    english = [BUILTIN_TEMPLATE.text] * 50  # the system prompt tokenizes like English
    tok.train_from_iterator(english + pool.prose[:2000] + pool.obs[:500], trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE,
        "eos_token": "<|im_end|>"}))
    return out


def _response(pool: Pool, rng: np.random.Generator, i: int) -> list[tuple[str, int]]:
    pieces: list[tuple[str, int]] = []
    for k in range(int(rng.integers(1, 5))):
        prose = pool.prose[int(rng.integers(len(pool.prose)))]
        head = "\n\n" if k else ""
        pieces.append((f"{head}{prose}\n<start_code>\n```python\nprint(web_search("
                       f"'query {i} {k}', num_result=5))\n```<end_code>", 1))
        pieces.append(("\n```output\n" + pool.obs[int(rng.integers(len(pool.obs)))]
                       + "\n```", 0))
    pieces.append((f"\n\n{pool.prose[int(rng.integers(len(pool.prose)))]}\n</think>\n\n"
                   f"Answer {i}.", 1))
    return pieces


def generate(n: int, d: Path, tok_dir: Path, pool: Pool, seed: int) -> tuple[Path, Path]:
    """Trajectory JSONL and text-only JSONL of the same n traces."""
    from cirkit.cir import BUILTIN_TEMPLATE, render_messages
    from cirkit.tokenizer import ModelTokenizer

    tok = ModelTokenizer(tok_dir)
    rng = np.random.default_rng(seed + 1)
    traj, text = d / "rollouts" / "rollouts-00000-of-00001.jsonl", d / "teacher.jsonl"
    traj.parent.mkdir(parents=True, exist_ok=True)
    opt = orjson.OPT_SERIALIZE_NUMPY
    with traj.open("wb") as ft, text.open("wb") as fx:
        for i in range(n):
            question = f"Question {i}: {pool.prose[i % len(pool.prose)][:120]}?"
            msgs = render_messages(question, date="2025-08-01")
            prompt = tok.chat_prompt(msgs) + "<think>\n"
            pieces = _response(pool, rng, i)
            response = "".join(p for p, _ in pieces)
            lens = [max(1, len(p) * 10 // 37) for p, _ in pieces]  # ~3.7 chars per token
            ids = rng.integers(16, 16000, size=sum(lens), dtype=np.int32)
            mask = np.repeat(np.array([m for _, m in pieces], dtype=np.int8), lens)
            pids = rng.integers(16, 16000, size=len(prompt) * 10 // 37, dtype=np.int32)
            ft.write(orjson.dumps({
                "id": f"t{i}", "question_id": f"q{i}", "question": question,
                "ground_truth": f"Answer {i}.", "source": "bench", "sample_index": 0,
                "model": "bench", "dialect": "card", "date": "2025-08-01",
                "prompt_template_sha256": BUILTIN_TEMPLATE.sha256, "prompt_text": prompt,
                "prompt_token_ids": pids, "response_text": response,
                "response_token_ids": ids, "response_mask": mask, "code_blocks": [],
                "final_answer": f"Answer {i}.", "finish_reason": "answer",
                "num_code_blocks": len(pieces) // 2, "decode_ok": True}, option=opt) + b"\n")
            fx.write(orjson.dumps({"id": f"t{i}", "question_id": f"q{i}",
                                   "question": question, "response": "<think>\n" + response,
                                   "ground_truth": f"Answer {i}.", "source": "bench"}) + b"\n")
    return traj, text


_ANCHOR = """
import json, resource, sys, time
import polars as pl
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
seconds = tokens = 0
for df in pl.scan_ndjson(sys.argv[2], schema={"prompt_text": pl.String, "response_text":
        pl.String}).collect_batches(chunk_size=10000):
    texts = [p + "<think>\\n" + r for p, r in zip(df["prompt_text"].to_list(),
                                                 df["response_text"].to_list())]
    t = time.perf_counter()
    enc = tok.encode_batch_fast(texts, add_special_tokens=False)
    seconds += time.perf_counter() - t
    tokens += sum(len(e) for e in enc)
print(json.dumps({"seconds": seconds, "tokens": tokens,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_BUILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
from cirkit.datasets import SFTOptions, build_sft
t = time.perf_counter()
r = build_sft([sys.argv[1]], sys.argv[2], tokenizer=sys.argv[3], options=SFTOptions())
print(json.dumps({"seconds": time.perf_counter() - t, "rows_in": r.rows_in,
                  "rows_out": r.rows_out, "shards": len(r.shards),
                  "decode_mismatches": r.report["decode_mismatches"],
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _run(code: str, *args: str) -> dict[str, Any]:
    env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error"}
    p = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                       env=env, check=False)
    if p.returncode:
        raise SystemExit(f"subprocess failed:\n{p.stderr[-3000:]}")
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--paths", default="trajectories,text",
                    help="comma-separated: trajectories, text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="2,000 rows")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder, keep it")
    ap.add_argument("--no-anchor", action="store_true",
                    help="skip the tokenization anchor (for the memory figure alone)")
    args = ap.parse_args()
    n = 2000 if args.quick else args.rows
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    console = Console(highlight=False, width=120)
    with tempfile.TemporaryDirectory(prefix="cirkit-bench-build-") as tmp:
        d = args.keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        pool = Pool(args.seed)
        tok_dir = make_tokenizer(pool, d / "model")
        traj, text = generate(n, d, tok_dir, pool, args.seed)
        size = traj.stat().st_size + text.stat().st_size
        console.print(f"generated {n:,} rows ({size / 2**30:.2f} GiB of JSONL) in "
                      f"{time.perf_counter() - t:.0f} s")

        def measure_anchor() -> dict[str, Any]:
            if args.no_anchor:
                return {"seconds": float("nan"), "tokens": 0}
            a = _run(_ANCHOR, str(tok_dir), str(traj))
            console.print(f"anchor: {a['tokens']:,} tokens ({a['tokens'] / n:.0f} per row) "
                          f"in {a['seconds']:.1f} s")
            return a

        # The anchor is measured before and after each build and the build is compared with
        # their mean: a neighbour's load that comes and goes then biases both sides alike.
        before = measure_anchor()
        table = Table("build", "rows/s", "seconds", "anchor s", "x raw tokenization",
                      "peak RSS", "target", title=f"cirkit build sft, {n:,} rows")
        for path in paths:
            src = traj.parent if path == "trajectories" else text
            r = _run(_BUILD, str(src), str(d / f"out-{path}"), str(tok_dir), str(ROOT))
            after = measure_anchor()
            anchor_s = (before["seconds"] + after["seconds"]) / 2
            before = after
            ratio = r["seconds"] / anchor_s
            rss = r["maxrss_kib"] / 2**20
            ok_t = path != "text" or ratio <= 1.5
            ok_m = n < 1_000_000 or rss <= 2.0
            target = ("time ≤ 1.5x " + ("✓" if ok_t else "✗")) if path == "text" else "-"
            if n >= 1_000_000:
                target += f"; memory ≤ 2 GiB {'✓' if ok_m else '✗'}"
            table.add_row(path, f"{r['rows_out'] / r['seconds']:,.0f}", f"{r['seconds']:.1f}",
                          f"{anchor_s:.1f}", f"{ratio:.2f}", f"{rss:.2f} GiB", target)
            if r["rows_out"] != n or r["decode_mismatches"]:
                console.print(f"warning: {path}: {r['rows_out']} of {n} rows kept, "
                              f"{r['decode_mismatches']} decode mismatches", style="yellow")
        console.print(table)


if __name__ == "__main__":
    main()
