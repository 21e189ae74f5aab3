"""`cirkit eval` costs: grading against a plain loop, and a replayed evaluation against the
replayed rollouts alone. Both anchors are measured in the same run.

    python bench/eval.py                    # 100,000 answers; 1,000 questions (a few minutes)
    python bench/eval.py --quick            # 20,000 answers; 100 questions (smoke run)

1. Grading: EM and F1 of N seeded (prediction, gold answers) pairs through the graders
   ``cirkit eval`` uses (``cirkit.eval.score_rule``, i.e. ``cirkit.answers``), against a plain
   Python loop of the same SQuAD normalisation written inline (regex, translate, split, a
   Counter for F1). Rounds alternate the two; the ratio is the median round's.
   Target: <= 1.2x.
2. Evaluation overhead: Q questions are recorded once (``cirkit eval`` against the repository's
   vLLM-shaped test server on 127.0.0.1, the fake one: it generates a code block calling
   web_search, then words; tools from the demo corpus). Then, with no server, in alternating
   rounds: ``cirkit rollout --tools-mode replay --llm-mode replay`` of the same questions into a
   fresh directory (the anchor), and ``cirkit eval`` in replay into a fresh directory (the same
   rollouts, then grading and the report with its plots). Target: eval <= 1.2x the rollouts.

This is a benchmark, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.eval import score_rule

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "cirkit" / "testing" / "cirkit-tiny"
_WORDS = ("paris", "the", "a", "river", "seine", "an", "tower", "1889", "eiffel", "gustave",
          "france", "capital", "city", "of", "and", "is", "was", "built", "in", "by")


def _pairs(n: int, seed: int = 0) -> list[tuple[str, tuple[str, ...]]]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        words = [rng.choice(_WORDS) for _ in range(k)]
        return " ".join(w.capitalize() if rng.random() < 0.3 else w for w in words) + \
            rng.choice(("", ".", "!", ","))

    return [(text(rng.randint(1, 12)), tuple(text(rng.randint(1, 4))
                                            for _ in range(rng.randint(1, 3))))
            for _ in range(n)]


_ART = re.compile(r"\b(a|an|the)\b")
_PUN = str.maketrans("", "", string.punctuation)


def _plain(pairs: list[tuple[str, tuple[str, ...]]]) -> float:
    """The anchor: the same normalisation, EM and F1, written inline."""
    total = 0.0
    for pred, golds in pairs:
        p = " ".join(_ART.sub(" ", pred.lower().translate(_PUN)).split())
        gs = [" ".join(_ART.sub(" ", g.lower().translate(_PUN)).split()) for g in golds]
        total += 1.0 if p in gs else 0.0
        p = " ".join(_ART.sub(" ", pred.lower().translate(_PUN)).split())
        best = 0.0
        pt = p.split()
        for g in golds:
            gt = " ".join(_ART.sub(" ", g.lower().translate(_PUN)).split()).split()
            same = sum((Counter(pt) & Counter(gt)).values())
            if same:
                pr, rc = same / len(pt), same / len(gt)
                best = max(best, 2 * pr * rc / (pr + rc))
        total += best
    return total


def _cirkit(pairs: list[tuple[str, tuple[str, ...]]]) -> float:
    return sum(score_rule("em", p, g) + score_rule("f1", p, g) for p, g in pairs)


def bench_grading(n: int, rounds: int) -> tuple[float, float, float]:
    pairs = _pairs(n)
    assert abs(_plain(pairs) - _cirkit(pairs)) < 1e-6, "the anchor must grade the same"
    ratios, ours, anchor = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _plain(pairs)
        t1 = time.perf_counter()
        _cirkit(pairs)
        t2 = time.perf_counter()
        anchor.append(t1 - t0)
        ours.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
    return statistics.median(ratios), statistics.median(ours), statistics.median(anchor)


def _invoke(*args: object) -> None:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exit_code != 0:
        raise SystemExit(f"cirkit {args[0]} failed:\n{r.output}")


def bench_eval(questions: int, rounds: int, tmp: Path) -> tuple[float, float, float]:
    from tests.servers.fake_vllm import MODEL, start_fake_vllm

    bench = tmp / "bench.jsonl"
    bench.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is item {i}?",
                                         "answer": f"item {i}"}) + "\n"
                             for i in range(questions)))
    common = ["--model", MODEL, "--tokenizer", TOKENIZER, "--store", tmp / "store",
              "--max-tokens", "200", "--max-model-len", "4096", "-j", "32"]
    with ExitStack() as stack:
        server = start_fake_vllm(stack)
        _invoke("eval", bench, "--out", tmp / "recorded", "--base-url", server.url, *common)
    replay = ["--tools-mode", "replay", "--llm-mode", "replay", *common]
    ratios, evals, rolls = [], [], []
    for r in range(rounds):
        t0 = time.perf_counter()
        _invoke("rollout", bench, "--out", tmp / f"ro{r}", *replay)
        t1 = time.perf_counter()
        _invoke("eval", bench, "--out", tmp / f"ev{r}", *replay)
        t2 = time.perf_counter()
        rolls.append(t1 - t0)
        evals.append(t2 - t1)
        ratios.append((t2 - t1) / (t1 - t0))
        same = (tmp / f"ev{r}" / "report.json").read_bytes() == \
            (tmp / "recorded" / "report.json").read_bytes()
        assert same, "a replayed evaluation must give the recorded report's bytes"
    return statistics.median(ratios), statistics.median(evals), statistics.median(rolls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--answers", type=int, default=100_000)
    ap.add_argument("--questions", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.answers, a.questions = 20_000, 100
    g, g_ours, g_anchor = bench_grading(a.answers, max(a.rounds, 5))
    print(f"grading {a.answers:,} answers (EM+F1): cirkit {g_ours:.3f} s, plain loop "
          f"{g_anchor:.3f} s, ratio {g:.3f}x (target <= 1.2x) "
          f"{'PASS' if g <= 1.2 else 'FAIL'}")
    with tempfile.TemporaryDirectory(prefix="cirkit-bench-eval-") as tmp:
        e, e_eval, e_roll = bench_eval(a.questions, a.rounds, Path(tmp))
    print(f"replayed evaluation of {a.questions:,} questions: eval {e_eval:.2f} s, rollouts "
          f"alone {e_roll:.2f} s, ratio {e:.3f}x (target <= 1.2x) "
          f"{'PASS' if e <= 1.2 else 'FAIL'}")


if __name__ == "__main__":
    main()
