"""Trajectory records and text-only traces built by hand, in the rollout engine's shape.

A trajectory is assembled exactly as ``cirkit.rollout._engine.run_rollout`` assembles one:
the chat prompt plus ``<think>\\n`` as prompt ids, then each generated piece (mask 1, ending in
``<end_code>``) and each observation ``"\\n```output\\n…\\n```"`` tokenized alone (mask 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cirkit.cir import BUILTIN_TEMPLATE, final_answer, render_messages, wrap_observation
from cirkit.datasets import BuildTokenizer
from cirkit.rollout import ChatTokenizer

CODE = ("I will search for it.\n<start_code>\n```python\n"
        "print(web_search('capital of France', num_result=3))\n```<end_code>")
CODE2 = ("\n\nLet me read the page.\n<start_code>\n```python\n"
         "print(web_visit('https://en.wikipedia.org/wiki/Paris'))\n```<end_code>")
OBS = "Index: 1\nURL: https://example.org/page\nTitle: Example\nPreview: Paris is the capital.\n"
OBS2 = "Paris is the capital and largest city of France."
ANSWER = "\n\nThe sources agree.\n</think>\n\nParis"
THINK = "<think>\n"
DATE = "2025-08-01"


def trajectory(tok: ChatTokenizer, question: str, generated: list[str], observations: list[str],
               *, qid: str = "q1", sample: int = 0, finish: str = "answer",
               ground_truth: Any = "Paris", **extra: Any) -> dict[str, Any]:
    """One trajectory record in the engine's shape (ids as a server would send them)."""
    messages = render_messages(question, date=DATE, dialect="card", max_code_blocks=32)
    prompt_text = tok.chat_prompt(messages) + THINK
    ids: list[int] = []
    mask: list[int] = []
    parts: list[str] = []
    for k, g in enumerate(generated):
        gi = tok.encode(g)
        ids += gi
        mask += [1] * len(gi)
        parts.append(g)
        if k < len(observations):
            obs = "\n" + wrap_observation(observations[k])
            oi = tok.encode(obs)
            ids += oi
            mask += [0] * len(oi)
            parts.append(obs)
    text = "".join(parts)
    rec: dict[str, Any] = {
        "id": f"{qid}-{sample}", "question_id": qid, "question": question,
        "ground_truth": ground_truth, "source": "unit", "sample_index": sample,
        "model": "scripted", "sampling": {"seed": 0}, "dialect": "card",
        "prompt_template_sha256": BUILTIN_TEMPLATE.sha256, "date": DATE,
        "prompt_text": prompt_text, "prompt_token_ids": tok.encode(prompt_text),
        "response_text": text, "response_token_ids": ids, "response_mask": mask,
        "code_blocks": [{"code": "x", "output": o, "error": None, "duration_ms": 1.0,
                         "tool_calls": [{"tool": "web_search", "args": {"query": "q"},
                                         "key": "k"}]} for o in observations],
        "final_answer": final_answer(text) if finish == "answer" else None,
        "finish_reason": finish, "num_code_blocks": len(observations),
        "num_response_tokens": len(ids), "decode_ok": tok.decode(ids) == text,
        "store_keys": ["k"], "error": None,
    }
    rec.update(extra)
    return rec


def cir_text(generated: list[str], observations: list[str], *, think: bool = True) -> str:
    """The assistant text of a text-only trace (what an API teacher returns)."""
    parts = [THINK] if think else []
    for k, g in enumerate(generated):
        parts.append(g)
        if k < len(observations):
            parts.append("\n" + wrap_observation(observations[k]))
    return "".join(parts)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def build_tokenizer(chat_tokenizer: ChatTokenizer) -> BuildTokenizer:
    return BuildTokenizer(chat_tokenizer.name)


@pytest.fixture(scope="session")
def tokenizer_dir(chat_tokenizer: ChatTokenizer) -> Path:
    return Path(chat_tokenizer.name)


@pytest.fixture(scope="session")
def qwen_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BuildTokenizer:
    """The tiny model's tokenizer layout (``cirkit.testing.traces``): Qwen3's control tokens
    ``<|im_start|>``, ``<|im_end|>``, ``<|endoftext|>`` as special tokens, the CIR markers as
    plain added tokens, the end of turn as eos. Trained on a few traces in a second; the
    ``chat_tokenizer`` beside it has no token for the ChatML markers at all."""
    from cirkit.testing.traces import train_tokenizer, write_tokenizer_files

    d = tmp_path_factory.mktemp("qwen-layout")
    texts = [cir_text([CODE, CODE2, ANSWER], [OBS, OBS2]), "What is the capital of France?"]
    write_tokenizer_files(train_tokenizer(texts * 20, 600), d, model_max_length=8192)
    return BuildTokenizer(d)
