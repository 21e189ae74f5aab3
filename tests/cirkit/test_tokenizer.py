"""One tokenizer, one loading rule (local files only), one error class."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cirkit.cir import Tokenizer
from cirkit.errors import EnvError
from cirkit.tokenizer import ModelTokenizer, TokenizerLoadError, load_tokenizer

from .conftest import CHAT_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def test_loads_file_and_directory(tiny_tokenizer_path: Path) -> None:
    for where in (tiny_tokenizer_path, tiny_tokenizer_path.parent, str(tiny_tokenizer_path)):
        tok = load_tokenizer(where)
        assert isinstance(tok, Tokenizer)
        assert tok.decode(tok.encode("Paris, France")) == "Paris, France"


def test_a_bare_tokenizer_json_has_no_chat_template(tiny_tokenizer_path: Path) -> None:
    tok = load_tokenizer(tiny_tokenizer_path)
    assert tok.chat_template is None
    with pytest.raises(TokenizerLoadError, match="no chat template") as e:
        tok.chat_prompt([{"role": "user", "content": "hi"}])
    assert e.value.setting == "tokenizer" and e.value.hint
    with pytest.raises(TokenizerLoadError, match="no chat template"):
        ModelTokenizer(tiny_tokenizer_path)  # a rollout or a build needs the template


def _errors(tmp_path: Path, tiny_tokenizer_path: Path) -> dict[str, tuple[str | Path, str]]:
    bad = tmp_path / "bad" / "tokenizer.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    empty = tmp_path / "empty-model"
    empty.mkdir()
    plain = tmp_path / "no-template"
    plain.mkdir()
    shutil.copy(tiny_tokenizer_path, plain / "tokenizer.json")
    (plain / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast"}))
    return {
        "missing file": (tmp_path / "missing" / "tokenizer.json", "no such tokenizer file"),
        "missing directory": (tmp_path / "missing" / "model", "no such file or directory"),
        "not a tokenizer.json": (bad, r"not a tokenizer\.json"),
        "a directory without tokenizer files": (empty, "cannot load a tokenizer"),
        "no chat template": (plain, "no chat template"),
        "a model id not in the cache": ("no-such-org/no-such-model-cirkit-test",
                                        "Hugging Face cache"),
    }


def test_every_failure_is_one_error_class_with_a_hint(
        tmp_path: Path, tiny_tokenizer_path: Path) -> None:
    for case, (where, message) in _errors(tmp_path, tiny_tokenizer_path).items():
        with pytest.raises(TokenizerLoadError, match=message) as e:
            ModelTokenizer(where)
        err = e.value
        assert isinstance(err, EnvError), case
        assert err.setting == "tokenizer", case
        assert err.hint and "--" not in err.hint, case  # library terms, never a CLI flag
        assert str(err).endswith("hint: " + err.hint), case
        if case != "no chat template":
            assert err.message.startswith("cannot load a tokenizer from "), case


def test_counting_tokens_needs_no_chat_template(tmp_path: Path,
                                                tiny_tokenizer_path: Path) -> None:
    where, _ = _errors(tmp_path, tiny_tokenizer_path)["no chat template"]
    assert load_tokenizer(where).encode("Paris") == load_tokenizer(tiny_tokenizer_path).encode(
        "Paris")


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_ids_are_what_transformers_gives(chat_tokenizer: ModelTokenizer, text: str) -> None:
    """Encoding goes through the Rust backend: the same ids and text as transformers'
    ``encode(add_special_tokens=False)`` / ``decode`` (what rollouts used before)."""
    from transformers import AutoTokenizer

    hf = _hf(chat_tokenizer.name, AutoTokenizer)
    ids = chat_tokenizer.encode(text)
    assert ids == hf.encode(text, add_special_tokens=False)
    assert chat_tokenizer.decode(ids) == hf.decode(
        ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) == text
    assert chat_tokenizer.encode_batch([text, text + "<end_code>"]) == [
        ids, chat_tokenizer.encode(text + "<end_code>")]


_HF: dict[str, object] = {}


def _hf(name: str, auto: type) -> object:
    if name not in _HF:
        _HF[name] = auto.from_pretrained(name, local_files_only=True)  # type: ignore[attr-defined]
    return _HF[name]


def test_chat_prompt_and_provenance(chat_tokenizer: ModelTokenizer) -> None:
    d = Path(chat_tokenizer.name)
    msgs = [{"role": "user", "content": "Q?"}]
    assert chat_tokenizer.chat_prompt(msgs) == "<|im_start|>user\nQ?<|im_end|>\n" \
        "<|im_start|>assistant\n"
    assert chat_tokenizer.chat_prompt(msgs, add_generation_prompt=False).endswith("<|im_end|>\n")
    assert chat_tokenizer.eos_token == "<|endoftext|>"
    sha = hashlib.sha256((d / "tokenizer.json").read_bytes()).hexdigest()
    assert chat_tokenizer.provenance() == {
        "name": d.name, "sha256": sha,
        "files": {"tokenizer.json": sha, "tokenizer_config.json": hashlib.sha256(
            (d / "tokenizer_config.json").read_bytes()).hexdigest()},
        "chat_template_sha256": hashlib.sha256(CHAT_TEMPLATE.encode()).hexdigest()}
    bare = load_tokenizer(d / "tokenizer.json")
    assert bare.sha256 == sha and bare.display_name == "tokenizer.json"


def test_a_model_id_loads_from_the_local_cache_only(
        chat_tokenizer: ModelTokenizer, tmp_path: Path) -> None:
    """The third place of the rule: a model id already in the Hugging Face cache, read with
    no network (a subprocess: the cache location is read when huggingface_hub is imported)."""
    snap = tmp_path / "hub" / "models--cirkit-test--tiny" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in Path(chat_tokenizer.name).iterdir():
        shutil.copy(f, snap / f.name)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("0" * 40)
    code = ("from cirkit.tokenizer import ModelTokenizer; t = ModelTokenizer('cirkit-test/tiny');"
            " print(t.display_name, t.encode('Paris'))")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), "TRANSFORMERS_VERBOSITY": "error"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       check=False, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split()[0] == "cirkit-test/tiny"
    assert p.stdout.strip().endswith(str(chat_tokenizer.encode("Paris")))
