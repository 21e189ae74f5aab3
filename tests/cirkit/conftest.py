"""Fixtures for the cirkit tests: a tiny byte-level BPE tokenizer built on the spot.

No model hub is reachable from the tests, so a real ``tokenizer.json`` is trained in memory on
a few sentences. Byte-level BPE behaves like Qwen's tokenizer where it matters: any string
round-trips, and a cut can fall inside a multi-byte character.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cirkit.cir import Tokenizer
from cirkit.tokenizer import ModelTokenizer, load_tokenizer

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "print(web_search('capital of France', num_result=3))",
    "print(web_visit('https://en.wikipedia.org/wiki/Paris'))",
    "Index: 1\nURL: https://example.org/page\nTitle: Example\nPreview: an example page\n",
    "Paris is the capital and largest city of France.",
    "Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\n",
    "NameError: name 'x' is not defined",
    "Zürich, São Paulo, Kraków, 東京, Москва",
] * 20

SPECIAL_TOKENS = ["<|endoftext|>", "<think>", "</think>", "<start_code>", "<end_code>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="session")
def tiny_tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a freshly trained byte-level BPE ``tokenizer.json`` (vocabulary ~500)."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS, trainer)
    path = tmp_path_factory.mktemp("tiny-tokenizer") / "tokenizer.json"
    tok.save(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_path: Path) -> Tokenizer:
    """The tiny tokenizer, loaded through ``load_tokenizer``."""
    return load_tokenizer(tiny_tokenizer_path)


@pytest.fixture(scope="session")
def chat_tokenizer(tiny_tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory
                   ) -> ModelTokenizer:
    """The tiny tokenizer with a ChatML-style chat template, as a local model directory."""
    d = tmp_path_factory.mktemp("chat-tokenizer")
    shutil.copy(tiny_tokenizer_path, d / "tokenizer.json")
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHAT_TEMPLATE,
        "eos_token": "<|endoftext|>"}))
    return ModelTokenizer(d)
