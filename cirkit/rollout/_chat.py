"""The model's tokenizer and chat template, loaded from local files only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recorders import RecordersError

__all__ = ["ChatTokenizer"]


class ChatTokenizer:
    """``apply_chat_template`` + encode/decode from a local model directory (or a model id
    already in the local Hugging Face cache): a rollout never downloads anything."""

    def __init__(self, name_or_path: str | Path) -> None:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch not found" noise
        try:
            from transformers import AutoTokenizer
        except ImportError as e:  # pragma: no cover - transformers is a dependency
            raise RecordersError("the rollout needs transformers",
                                 hint="pip install 'cirkit'") from e
        try:
            self._tok: Any = AutoTokenizer.from_pretrained(str(name_or_path),
                                                           local_files_only=True)
        except (OSError, ValueError) as e:
            raise RecordersError(
                f"cannot load a tokenizer from {name_or_path}: {str(e).splitlines()[0]}",
                hint="pass --tokenizer DIR (a model directory with tokenizer files)") from e
        if not getattr(self._tok, "chat_template", None):
            raise RecordersError(f"the tokenizer at {name_or_path} has no chat template",
                                 hint="use a chat model's tokenizer")
        self.name = str(name_or_path)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        text = self._tok.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=True)
        return str(text)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=False,
                                    clean_up_tokenization_spaces=False))
