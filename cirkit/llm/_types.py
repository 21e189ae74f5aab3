"""What a rollout asks of a model server, and what it gets back (token-in/token-out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cirkit.cir import CARD

__all__ = ["Completion", "CompletionClient", "Sampling"]


@dataclass(slots=True, frozen=True)
class Sampling:
    """Sampling parameters; every one of them is part of a recorded completion's key.

    The card's RL rollout defaults: temperature 1.0, top_p 1.0, top_k -1. ``seed`` is the
    per-request seed (a rollout derives it from base seed, question id and sample index).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None
    max_tokens: int = CARD.max_response_tokens

    def to_json(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "seed": self.seed, "max_tokens": self.max_tokens}


@dataclass(slots=True, frozen=True)
class Completion:
    """One generation. ``token_ids`` are exactly the ids the server generated (never
    re-tokenized); ``text`` is the server's decoding of them, the stop string included when
    generation stopped on it. ``finish_reason`` is the server's: "stop" or "length";
    ``stop_reason`` is the stop string matched (e.g. "<end_code>"), or None for EOS/length."""

    token_ids: list[int]
    text: str
    finish_reason: str
    stop_reason: str | None = None
    from_store: bool = False
    key: str | None = None  # the store key, when a store served or recorded it
    extra: dict[str, Any] = field(default_factory=dict)


class CompletionClient(Protocol):
    """The seam a rollout generates through: one async method."""

    model: str

    async def complete(
        self, prompt_ids: list[int], *, sampling: Sampling, stop: list[str]
    ) -> Completion: ...
