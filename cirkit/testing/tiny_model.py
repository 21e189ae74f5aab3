"""The tiny CIR model the demo and the vLLM tests serve: shipped with cirkit, built from a recipe.

No model can be downloaded in the tests, so one is made: a byte-level BPE tokenizer with Qwen3's
control tokens and chat layout, and a 3M-parameter ``Qwen3ForCausalLM`` (head_dim 64, the
smallest vLLM's CPU attention takes) trained for a few minutes on scripted CIR traces over the
demo corpus until greedy decoding writes well-formed code blocks and then an answer. It is not
smart; it speaks the format, which is what a rollout test needs.

The build has two halves: traces and tokenizer here (cirkit's env: recorders, tokenizers), the
torch training in ``_train.py`` under a python that has torch and transformers (by default the
dedicated vLLM venv, see ``vllm_env``). ``python -m cirkit.testing.tiny_model OUT_DIR`` builds
into OUT_DIR.

Training takes 5 minutes on a quiet 2-core machine (half an hour on a loaded one), so the
result ships inside the package (``cirkit/testing/cirkit-tiny/``: the tokenizer and the weights
in float16, about 6 MB) and ``ensure_tiny_model()`` returns that folder; ``train=True`` builds
into the cache instead. ``python -m cirkit.testing.tiny_model --ship`` retrains and rewrites the
shipped folder: on the same torch build (same bf16 support, the recipe's thread count) the
training is bit-reproducible, so it rewrites the same bytes, and
tests/cirkit/testing/test_tiny_model.py checks both that and that the shipped manifest names
this recipe.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cirkit.cir import BUILTIN_TEMPLATE, validate
from cirkit.errors import CirkitError, EnvError
from recorders import RecordersError, canonical_json
from recorders.backends import cache_dir as _cache_root

from ._trace_render import TRACE_RENDER
from .traces import (
    ADDED_TOKENS,
    EOS_TOKEN,
    SPECIAL_TOKENS,
    encode_trace,
    make_probes,
    make_traces,
    train_tokenizer,
    write_tokenizer_files,
)

__all__ = ["MANIFEST", "MODEL_NAME", "RECIPE", "SHIPPED_DIR", "SHIPPED_DTYPE", "SHIPPED_FILES",
           "TRACE_RENDER",
           "TinyModelError", "build_tiny_model", "code_digest", "ensure_tiny_model",
           "export_weights", "recipe_sha256", "ship_tiny_model", "shipped_manifest"]

MODEL_NAME = "cirkit-tiny"
MANIFEST = "cirkit-tiny.json"
#: Everything that decides the model's bytes; its hash (with the builder's source) names the
#: cache entry, so changing any of it builds a new model.
RECIPE: dict[str, Any] = {
    "format": 1,
    "seed": 20250801,
    "num_traces": 640,
    "num_probe_traces": 3,
    "vocab_size": 3072,
    "model": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
              "max_position_embeddings": 4096, "tie_word_embeddings": True,
              "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}},
    # One round (~3 min on 2 cores) normally suffices; more rounds only if a probe fails.
    # threads: torch splits reductions by thread count; fixing it keeps the bytes the same
    # on machines with more cores.
    "train": {"batch_size": 4, "lr": 3e-3, "warmup_steps": 30, "steps_per_round": 400,
              "min_rounds": 1, "max_rounds": 3, "samples": 8, "min_sampled_ok": 0.75,
              "bf16_autocast": True, "threads": 2},
}
_HERE = Path(__file__).resolve().parent
_SOURCES = ("traces.py", "_train.py")  # what decides the model's bytes (not this file)
#: The shipped model: package data, found next to this module.
SHIPPED_DIR = _HERE / MODEL_NAME
SHIPPED_DTYPE = "float16"  # 10 mantissa bits: closer to the float32 training than bfloat16
#: What ships besides the manifest: the serving files (the logs and build notes stay behind).
SHIPPED_FILES = ("config.json", "generation_config.json", "model.safetensors",
                 "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")
#: Manifest fields that are measurements of one build, left out of the shipped manifest so
#: that a rebuild writes the same bytes.
_TIMINGS = ("train_seconds", "build_seconds")


class TinyModelError(EnvError):
    """The tiny model could not be built (training failed or never learned the format)."""


def recipe_sha256() -> str:
    """Hash of the recipe, the trace and training code, the prompt and the renderer version."""
    h = hashlib.sha256(canonical_json({
        "recipe": RECIPE, "template": BUILTIN_TEMPLATE.sha256, "renderer": TRACE_RENDER.version,
    }))
    for name in _SOURCES:
        h.update(code_digest((_HERE / name).read_text(encoding="utf-8")).encode())
    return h.hexdigest()


def code_digest(source: str) -> str:
    """The code of a module without its docstrings and import statements: a moved import or a
    reworded docstring trains the same model, so it keeps the cached one."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            body[:] = [n for n in body if not isinstance(n, ast.Import | ast.ImportFrom)]
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body[:] = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def _check_probes(result: dict[str, Any], probes: list[dict[str, Any]],
                  expect: str) -> list[str]:
    """cirkit's own validator over the ``expect`` probes' generations (the trainer only
    checks their shape)."""
    errors = []
    for spec, got in zip(probes, result.get("probes", []), strict=False):
        if spec["expect"] != expect:
            continue
        finished = spec["expect"] == "answer"
        text = "<think>\n" + spec["response_prefix"] + got["text"].removesuffix(EOS_TOKEN)
        bad = [p for p in validate(text, finished=finished) if p.severity == "error"]
        if bad:
            errors.append(f"{spec['expect']} probe: {bad[0].code}: {got['text'][-200:]!r}")
    return errors


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _run_trainer(cmd: list[str], log_path: Path, echo: bool) -> tuple[int, str]:
    """Run the trainer, teeing its output to ``log_path`` (and stderr with ``echo``) as it
    comes, so a long build shows progress."""
    lines: list[str] = []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    with log_path.open("w", encoding="utf-8") as log, subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            log.write(line)
            log.flush()
            if echo:
                print(line, end="", file=sys.stderr, flush=True)
    return proc.returncode, "".join(lines)


def build_tiny_model(out: Path, *, python: str | os.PathLike[str] | None = None,
                     cache_dir: Path | None = None, log: bool = True) -> dict[str, Any]:
    """Build the model into the (empty or new) directory ``out``; returns the manifest.

    ``python`` must have torch and transformers; by default the dedicated vLLM venv's.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if python is None:
        from .vllm_env import ensure_vllm_venv

        python = ensure_vllm_venv(cache_dir)
    n_probe = int(RECIPE["num_probe_traces"])
    traces = make_traces(int(RECIPE["num_traces"]) + n_probe, seed=int(RECIPE["seed"]),
                         cache_dir=cache_dir)
    train_traces, probe_traces = traces[n_probe:], traces[:n_probe]
    tok = train_tokenizer(["".join(p.text for p in t) for t in train_traces],
                          int(RECIPE["vocab_size"]))
    cfg = RECIPE["model"]
    ids = write_tokenizer_files(tok, out, model_max_length=int(cfg["max_position_embeddings"]))
    examples = [dict(zip(("ids", "mask"), encode_trace(tok, t), strict=True)) for t in train_traces]
    probes = make_probes(tok, probe_traces)
    config = {**cfg, "vocab_size": tok.get_vocab_size(), "bos_token_id": ids["<|endoftext|>"],
              "eos_token_id": ids[EOS_TOKEN], "pad_token_id": ids["<|endoftext|>"]}
    spec = {"seed": RECIPE["seed"], "config": config, **RECIPE["train"],
            "examples": examples, "probes": probes, "eos_token": EOS_TOKEN,
            "stop_ids": [ids[EOS_TOKEN], ids["<end_code>"]]}
    (out / "train.json").write_text(json.dumps(spec))
    code, output = _run_trainer([os.fspath(python), "-I", str(_HERE / "_train.py"), str(out)],
                                out / "train.log", log)
    result_path = out / "train_result.json"
    if code not in (0, 3) or not result_path.is_file():
        raise TinyModelError(f"training the tiny model failed (exit {code}):\n{_tail(output)}",
                             hint=f"the trainer ran with {python}; see {out / 'train.log'}")
    result = json.loads(result_path.read_text())
    problems = _check_probes(result, probes, "code")
    if code == 3 or problems:
        raise TinyModelError("the tiny model did not learn to write CIR code blocks: "
                             + ("; ".join(problems) or "a code probe failed"),
                             hint="raise RECIPE['train']['max_rounds'] or the learning rate")
    answer_problems = _check_probes(result, probes, "answer")
    if answer_problems or not result["all_probes_pass"]:
        print("warning: the tiny model writes code blocks but not every answer probe passed: "
              + ("; ".join(answer_problems) or "see the manifest"), file=sys.stderr)
    (out / "train.json").unlink()
    manifest = {
        "name": MODEL_NAME, "recipe_sha256": recipe_sha256(), "recipe": RECIPE,
        "seed": RECIPE["seed"], "training_steps": result["steps"], "rounds": result["rounds"],
        "final_loss": result["final_loss"], "train_seconds": result["train_seconds"],
        "sampled_ok": result["sampled_ok"],
        "all_probes_pass": result["all_probes_pass"] and not answer_problems,
        "answer_problems": answer_problems,
        "build_seconds": round(time.perf_counter() - started, 1), "torch": result["torch"],
        "bf16_autocast": result["bf16_autocast"],
        "vocab_size": tok.get_vocab_size(),
        "token_ids": {t: ids[t] for t in (*SPECIAL_TOKENS, *ADDED_TOKENS)},
        "probes": [{"expect": p["expect"], "text": p["text"]} for p in result["probes"]],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _complete(path: Path) -> bool:
    try:
        meta = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return bool(meta.get("recipe_sha256") == recipe_sha256()
                and (path / "model.safetensors").is_file())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_weights(src: Path, dest: Path) -> None:
    """The float32 weights of ``src`` as ``SHIPPED_DTYPE`` safetensors in ``dest`` (numpy's
    round-to-nearest-even, tensors in name order: the same input gives the same bytes)."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(src))
    save_file({k: tensors[k].astype(np.dtype(SHIPPED_DTYPE)) for k in sorted(tensors)},
              str(dest), metadata={"format": "pt"})


def ship_tiny_model(build: Path, dest: Path) -> dict[str, Any]:
    """Write the shipped form of the model built in ``build`` into ``dest`` (emptied first):
    the serving files, the weights in ``SHIPPED_DTYPE`` and a manifest without timings that
    names the float32 weights it came from. Returns that manifest."""
    manifest = json.loads((build / MANIFEST).read_text(encoding="utf-8"))
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in SHIPPED_FILES:
        if name == "model.safetensors":
            export_weights(build / name, dest / name)
        else:
            shutil.copyfile(build / name, dest / name)
    shipped = {k: v for k, v in manifest.items() if k not in _TIMINGS}
    shipped["weights"] = {"dtype": SHIPPED_DTYPE,
                          "trained_float32_sha256": _sha256(build / "model.safetensors"),
                          "files": {n: _sha256(dest / n) for n in SHIPPED_FILES}}
    (dest / MANIFEST).write_text(json.dumps(shipped, indent=2, sort_keys=True) + "\n",
                                 encoding="utf-8")
    for f in dest.iterdir():  # package data: readable by all (safetensors writes 0600)
        f.chmod(0o644)
    return shipped


def shipped_manifest() -> dict[str, Any] | None:
    """The shipped model's manifest, or None when the package holds no model (a trimmed
    install): then ``ensure_tiny_model`` trains one."""
    try:
        data: dict[str, Any] = json.loads((SHIPPED_DIR / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if (SHIPPED_DIR / "model.safetensors").is_file() else None


def ensure_tiny_model(cache_dir: str | os.PathLike[str] | None = None, *,
                      python: str | os.PathLike[str] | None = None,
                      train: bool = False) -> Path:
    """The tiny model's directory: the shipped one, unless ``train`` (or the package holds
    none). Training builds into the cache once per recipe (under a file lock, in a temp dir
    renamed into place so a crash never leaves half a model)."""
    from filelock import FileLock

    if not train and shipped_manifest() is not None:
        return SHIPPED_DIR
    root = _cache_root(cache_dir)
    final = root / "models" / f"{MODEL_NAME}-{recipe_sha256()[:16]}"
    if _complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if _complete(final):
            return final
        if final.exists():
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
        try:
            build_tiny_model(tmp, python=python, cache_dir=Path(root))
            for f in tmp.iterdir():  # a cache may be shared: readable by all
                f.chmod(0o644)
            os.chmod(tmp, 0o755)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m cirkit.testing.tiny_model",
        description="Train the tiny CIR model into OUT_DIR, or with --ship rewrite the "
                    "shipped copy (OUT_DIR: where to write it, default the package's).")
    ap.add_argument("out_dir", type=Path, nargs="?")
    ap.add_argument("--ship", action="store_true",
                    help="train in a temp dir and write the shipped form (float16 weights)")
    ap.add_argument("--python", help="a python with torch and transformers "
                                     "(default: the dedicated vLLM venv)")
    args = ap.parse_args(argv)
    if args.out_dir is None and not args.ship:
        ap.error("give OUT_DIR, or --ship")
    try:
        if args.ship:
            with tempfile.TemporaryDirectory(prefix="cirkit-tiny-") as tmp:
                manifest = build_tiny_model(Path(tmp), python=args.python)
                ship_tiny_model(Path(tmp), args.out_dir or SHIPPED_DIR)
        else:
            manifest = build_tiny_model(args.out_dir, python=args.python)
    except (RecordersError, CirkitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({k: manifest[k] for k in ("recipe_sha256", "training_steps",
                                               "final_loss", "build_seconds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
