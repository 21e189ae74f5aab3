"""Train the tiny Qwen3 CIR model on CPU: ``python _train.py BUILD_DIR``.

Runs under the dedicated vLLM venv's python, which has torch and transformers but not cirkit,
so this file imports nothing from cirkit (it is run by path, not as a module). The tokenized
traces, the model config and the probes come from ``BUILD_DIR/train.json``, written by
``cirkit.testing.tiny_model``; the model is saved into ``BUILD_DIR`` and what happened goes to
``BUILD_DIR/train_result.json``.

Training stops at the first round after which every probe passes: greedy generation from a
prompt must produce a well-formed code block (``<start_code>`` ... ``<end_code>``, code that
compiles) or, after the last observation, ``</think>`` and an answer ending in EOS; and enough
sampled generations must pass too. Out of rounds, the model is kept (exit 0) when the code
probes pass, else the exit code is 3. Same input, same seed, same machine: same model.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

CODE_OPEN = "<start_code>\n```python\n"
CODE_CLOSE = "\n```<end_code>"


_MARKERS = ("<think>", "</think>", "<start_code>", "<end_code>", "```")


def _clean(text: str) -> bool:
    return not any(m in text for m in _MARKERS)


def _code_ok(text: str, eos: str) -> bool:
    """Prose, then exactly one well-formed block with compilable code, ending at the stop
    token; no stray CIR marker anywhere (cirkit's validator re-checks the result)."""
    i = text.find(CODE_OPEN)
    if i < 0 or not text.endswith(CODE_CLOSE) or not _clean(text[:i]):
        return False
    code = text[i + len(CODE_OPEN): -len(CODE_CLOSE)]
    if not code.strip() or not _clean(code):
        return False
    try:
        compile(code, "<probe>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _answer_ok(text: str, eos: str) -> bool:
    """Prose, ``</think>``, then a non-empty answer ending in EOS, with no marker inside."""
    head, sep, tail = text.partition("</think>\n\n")
    body = tail.removesuffix(eos)
    return bool(sep) and tail.endswith(eos) and bool(body.strip()) and _clean(head) \
        and _clean(body) and eos not in body


def _decode(tok: Any, ids: list[int], stop_ids: list[int]) -> str:
    """Text up to and including the first stop token (a batch pads finished rows after it)."""
    for i, t in enumerate(ids):
        if t in stop_ids:
            ids = ids[: i + 1]
            break
    return str(tok.decode(ids, skip_special_tokens=False))


def _probe(model: Any, tok: Any, probes: list[dict[str, Any]], stop_ids: list[int],
           eos: str, samples: int) -> list[dict[str, Any]]:
    """Greedy output and its verdict per probe, plus the pass rate of ``samples`` generations
    at temperature 1 (what a sampled rollout will see)."""
    import torch

    out = []
    model.eval()
    with torch.no_grad():
        for p in probes:
            ids = torch.tensor([p["ids"]])
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=p["max_new_tokens"], eos_token_id=stop_ids,
                                 pad_token_id=stop_ids[0])
            text = _decode(tok, gen[0, ids.shape[1]:].tolist(), stop_ids)
            check = _answer_ok if p["expect"] == "answer" else _code_ok
            ok = check(text, eos)
            sampled = model.generate(ids.repeat(samples, 1), do_sample=True, temperature=1.0,
                                     attention_mask=torch.ones_like(ids).repeat(samples, 1),
                                     max_new_tokens=p["max_new_tokens"],
                                     eos_token_id=stop_ids, pad_token_id=stop_ids[0])
            rate = sum(check(_decode(tok, row[ids.shape[1]:].tolist(), stop_ids), eos)
                       for row in sampled) / samples
            out.append({"expect": p["expect"], "ok": ok, "text": text, "sampled_ok": rate})
    model.train()
    return out


def _batches(examples: list[dict[str, Any]], batch_size: int, rng: random.Random) -> Any:
    """Endless shuffled batches, padded on the right; labels -100 where ``mask`` is 0.
    Rows of similar length go together (sorted within windows of 16 batches): less padding."""
    import torch

    while True:
        order = list(range(len(examples)))
        rng.shuffle(order)
        window = batch_size * 16
        groups: list[list[int]] = []
        for w in range(0, len(order), window):
            chunk = sorted(order[w:w + window], key=lambda i: len(examples[i]["ids"]))
            groups += [chunk[k:k + batch_size]
                       for k in range(0, len(chunk) - batch_size + 1, batch_size)]
        rng.shuffle(groups)
        for group in groups:
            rows = [examples[i] for i in group]
            width = max(len(r["ids"]) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            att = torch.zeros((len(rows), width), dtype=torch.long)
            lab = torch.full((len(rows), width), -100, dtype=torch.long)
            for j, r in enumerate(rows):
                n = len(r["ids"])
                ids[j, :n] = torch.tensor(r["ids"])
                att[j, :n] = 1
                lab[j, :n] = torch.tensor([t if m else -100 for t, m in zip(r["ids"], r["mask"],
                                                                            strict=True)])
            yield ids, att, lab


def _loss(model: Any, ids: Any, att: Any, lab: Any) -> Any:
    """Next-token cross-entropy on the trained positions only: the LM head runs on the ~15%
    of positions that are not prompt or observation."""
    import torch

    hidden = model.model(input_ids=ids, attention_mask=att).last_hidden_state[:, :-1]
    target = lab[:, 1:]
    keep = target != -100
    logits = model.lm_head(hidden[keep])
    return torch.nn.functional.cross_entropy(logits.float(), target[keep])


def train(build: Path) -> dict[str, Any]:
    """Train per ``build/train.json``, save the model into ``build``, return the summary."""
    import torch
    import transformers
    from tokenizers import Tokenizer

    spec = json.loads((build / "train.json").read_text())
    seed = int(spec["seed"])
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(int(spec.get("threads") or torch.get_num_threads()))
    tok = Tokenizer.from_file(str(build / "tokenizer.json"))
    classes: Any = transformers  # untyped library: keep mypy's strict mode quiet
    model = classes.Qwen3ForCausalLM(classes.Qwen3Config(**spec["config"]))
    model.train()
    steps_per_round, max_rounds = int(spec["steps_per_round"]), int(spec["max_rounds"])
    min_rounds = int(spec.get("min_rounds", 1))
    min_sampled_ok = float(spec.get("min_sampled_ok", 0.0))
    warmup, lr = int(spec["warmup_steps"]), float(spec["lr"])
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)

    planned = steps_per_round * min_rounds

    def schedule(step: int) -> float:  # warmup, cosine to 10% over the planned rounds, then flat
        if step < warmup:
            return (step + 1) / warmup
        done = min(1.0, (step - warmup) / max(1, planned - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    # bf16 autocast nearly halves a step where the CPU has bf16 instructions (fp32 weights
    # and optimizer either way); elsewhere it would be slower, so it is off.
    bf16 = bool(spec.get("bf16_autocast", True)) and torch.cpu._is_avx512_bf16_supported()
    batches = _batches(spec["examples"], int(spec["batch_size"]), random.Random(seed))
    eos = spec["eos_token"]
    stop_ids = [int(i) for i in spec["stop_ids"]]
    started = time.perf_counter()
    step, losses, probes = 0, [], []
    for rnd in range(1, max_rounds + 1):
        for _ in range(steps_per_round):
            ids, att, lab = next(batches)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = _loss(model, ids, att, lab)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if step % 25 == 0:
                print(f"step {step} loss {sum(losses[-25:]) / 25:.4f} "
                      f"{time.perf_counter() - started:.0f}s", flush=True)
        probes = _probe(model, tok, spec["probes"], stop_ids, eos, int(spec["samples"]))
        passed = sum(p["ok"] for p in probes)
        rate = sum(p["sampled_ok"] for p in probes) / len(probes)
        print(f"round {rnd}: {passed}/{len(probes)} probes pass greedy, "
              f"{rate:.0%} sampled", flush=True)
        for p in probes:
            if not p["ok"]:
                print(f"  failed {p['expect']} probe: {p['text'][-300:]!r}", flush=True)
        if passed == len(probes) and rate >= min_sampled_ok and rnd >= min_rounds:
            break
        if rnd == max_rounds:
            print("out of rounds: keeping the model if every code probe passes", flush=True)
    model.save_pretrained(str(build), safe_serialization=True)
    tail = losses[-25:] or [float("nan")]
    result = {"steps": step, "rounds": rnd, "final_loss": round(sum(tail) / len(tail), 4),
              "train_seconds": round(time.perf_counter() - started, 1),
              "probes": probes, "sampled_ok": round(rate, 3),
              "all_probes_pass": all(p["ok"] for p in probes) and rate >= min_sampled_ok,
              "code_probes_pass": all(p["ok"] for p in probes if p["expect"] == "code"),
              "torch": torch.__version__, "bf16_autocast": bf16}
    (build / "train_result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python _train.py BUILD_DIR")
    res = train(Path(sys.argv[1]))
    sys.exit(0 if res["code_probes_pass"] else 3)
