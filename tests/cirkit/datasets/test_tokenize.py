"""Pieces, the vectorised join, and the batch tokenizer against the plain one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from cirkit.cir import render_messages
from cirkit.datasets import IGNORE_INDEX, BuildTokenizer, join_ids, split_pieces
from cirkit.rollout import ChatTokenizer

from .conftest import ANSWER, CODE, CODE2, OBS, OBS2, cir_text

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_pieces_cut_exactly_at_observations() -> None:
    text = cir_text([CODE, CODE2, ANSWER], [OBS, OBS2])
    pieces = split_pieces(text)
    assert "".join(p for p, _ in pieces) == text
    assert [m for _, m in pieces] == [1, 0, 1, 0, 1]
    assert pieces[1][0] == "\n```output\n" + OBS + "\n```"
    assert pieces[0][0].endswith("<end_code>")
    assert split_pieces("no code at all") == [("no code at all", 1)]
    assert split_pieces("") == []


def test_join_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(0)
    prompts, responses, masks = [], [], []
    for _ in range(50):
        prompts.append(rng.integers(0, 500, size=rng.integers(1, 20)).tolist())
        n = int(rng.integers(0, 30))
        responses.append(rng.integers(0, 500, size=n).tolist())
        masks.append(rng.integers(0, 2, size=n).tolist())
    ids_t = pa.list_(pa.int32())
    j = join_ids(pa.array(prompts, ids_t), pa.array(responses, ids_t),
                 pa.array(masks, pa.list_(pa.int8())))
    for k, (p, r, m) in enumerate(zip(prompts, responses, masks, strict=True)):
        assert j.input_ids[k].as_py() == p + r
        assert j.labels[k].as_py() == [IGNORE_INDEX] * len(p) + [
            t if g else IGNORE_INDEX for t, g in zip(r, m, strict=True)]
    assert j.num_tokens.tolist() == [len(p) + len(r) for p, r in zip(prompts, responses,
                                                                   strict=True)]
    assert j.observation_tokens == sum(m.count(0) for m in masks)
    with pytest.raises(ValueError, match="differ in length"):
        join_ids(pa.array([[1]], ids_t), pa.array([[1, 2]], ids_t),
                 pa.array([[1]], pa.list_(pa.int8())))


def test_batch_calls_agree_with_the_plain_tokenizer(
        build_tokenizer: BuildTokenizer, chat_tokenizer: ChatTokenizer) -> None:
    texts = [cir_text([CODE, ANSWER], [OBS]), "Zürich, 東京 <end_code>\n", "", "  x  "]
    assert build_tokenizer.encode_batch(texts) == [chat_tokenizer.encode(t) for t in texts]
    assert build_tokenizer.decode_batch(build_tokenizer.encode_batch(texts)) == texts
    assert build_tokenizer.display_name == Path(chat_tokenizer.name).name
    assert len(build_tokenizer.sha256) == 64 and "tokenizer.json" in build_tokenizer.files


@pytest.fixture(scope="module")
def chatml_tokenizer(tiny_tokenizer_path: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> BuildTokenizer:
    """The tiny tokenizer with <|im_start|>/<|im_end|> as special tokens (as in Qwen)."""
    from tokenizers import Tokenizer

    d = tmp_path_factory.mktemp("chatml")
    tok = Tokenizer.from_file(str(tiny_tokenizer_path))
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHATML,
        "eos_token": "<|im_end|>"}))
    return BuildTokenizer(d)


def test_prompt_pieces_between_special_tokens_are_reused_exactly(
        chatml_tokenizer: BuildTokenizer) -> None:
    tok = chatml_tokenizer
    prompts = [tok.chat_prompt(render_messages(q, date="2025-08-01")) + "<think>\n"
               for q in ["Where is Paris?", "Zürich?", " spaced  ", "<think> inside", "x" * 300]]
    prompts = prompts * 5  # past the 16 checked prompts
    assert tok._split is not None
    assert tok.encode_prompts(prompts) == tok.encode_batch(prompts)
    assert tok._split is not None  # the check agreed
    assert tok.turn_end == "<|im_end|>"


def test_a_tokenizer_with_stripping_tokens_encodes_prompts_whole(
        tiny_tokenizer_path: Path, tmp_path: Path) -> None:
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(tiny_tokenizer_path))
    tok.add_special_tokens([AddedToken("<|im_end|>", rstrip=True)])
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": CHATML}))
    bt = BuildTokenizer(tmp_path)
    assert bt._split is None
    prompts = [bt.chat_prompt([{"role": "user", "content": "hi"}])]
    assert bt.encode_prompts(prompts) == bt.encode_batch(prompts)
