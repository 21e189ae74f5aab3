"""How verl reads an RL parquet, without torch: a test helper.

Mirrors ``RLHFDataset`` in verl's ``verl/utils/dataset/rl_dataset.py``:
``_read_files_and_tokenize`` (``datasets.load_dataset("parquet", data_files=f)["train"]`` per
file, concatenated; prompts longer than ``max_prompt_length`` after the chat template dropped)
and ``__getitem__`` (the messages popped from ``prompt_key``, the chat template applied with
``add_generation_prompt=True``, the text tokenized without special tokens, ``index`` taken
from ``extra_info``). One deviation: verl counts with ``apply_chat_template(...)`` returning
ids, which transformers 5 returns as a dict; here the text is encoded instead (the same ids).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["verl_rows"]


def _prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer.encode(text, add_special_tokens=False))


def verl_rows(data_files: list[Path], tokenizer: Any, *, cache_dir: Path,
              prompt_key: str = "prompt", max_prompt_length: int = 1024) -> list[dict[str, Any]]:
    """The rows verl's dataset would hand to the trainer (tensors as lists)."""
    import datasets

    frames = [datasets.load_dataset("parquet", data_files=str(f), cache_dir=str(cache_dir))[
        "train"] for f in data_files]
    df = datasets.concatenate_datasets(frames)
    df = df.filter(lambda doc: len(_prompt_ids(tokenizer, doc[prompt_key])) <= max_prompt_length)
    out = []
    for item in range(len(df)):
        row: dict[str, Any] = dict(df[item])
        messages = row.pop(prompt_key)
        raw_prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                   tokenize=False)
        row["input_ids"] = tokenizer(raw_prompt, add_special_tokens=False)["input_ids"]
        row["raw_prompt_ids"] = tokenizer.encode(raw_prompt, add_special_tokens=False)
        row["raw_prompt"] = messages
        extra = row.get("extra_info", {})
        row["index"] = extra.get("index", 0)
        row["tools_kwargs"] = extra.get("tools_kwargs", {})
        out.append(row)
    return out
