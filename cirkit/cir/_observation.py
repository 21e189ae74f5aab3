"""Observations: what a code block's run shows the model, cut to a token budget.

The model was trained with observations of at most 3000 tokens of its own tokenizer, so the cut
is made in tokens (tokenize, keep the first ``max_tokens``, decode), never in characters. Any
object with ``encode``/``decode`` will do; ``cirkit.tokenizer`` loads the model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ._card import CARD
from ._format import wrap_observation

__all__ = [
    "DEMO_ERROR_HINT",
    "TRUNCATION_NOTE",
    "Observation",
    "Tokenizer",
    "make_observation",
]

#: Appended after a cut observation. ``{kept}``/``{total}`` are token counts. The note is not
#: counted in ``max_tokens``; pass ``truncation_note=None`` for a bare cut, as the demo does.
TRUNCATION_NOTE = "\n[output truncated: first {kept} of {total} tokens shown]"

#: Replaces the whole observation on any error when ``demo_error_hint=True`` (the demo's
#: behaviour; written for cirkit, not copied).
DEMO_ERROR_HINT = (
    "The code raised an error. Check the function names and arguments, make sure every "
    "variable is defined in this block (nothing carries over between blocks), and print the "
    "values you need."
)


@runtime_checkable
class Tokenizer(Protocol):
    """The two methods observation truncation needs; no special tokens are added."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@dataclass(slots=True, frozen=True)
class Observation:
    """``text`` is what the trace gets (wrapped); ``body`` is ``text`` without the fence.
    ``num_tokens`` counts the raw output before any cut."""

    text: str
    truncated: bool
    num_tokens: int
    body: str
    is_error: bool

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "truncated": self.truncated, "num_tokens": self.num_tokens,
                "is_error": self.is_error}

    def __str__(self) -> str:
        return self.text


def _cut(tokenizer: Tokenizer, ids: list[int], n: int) -> tuple[str, int]:
    """Decode the first ``n`` ids; step back up to three ids rather than end on half a
    character (byte-level tokens can split a UTF-8 sequence)."""
    for keep in range(n, max(n - 4, -1), -1):
        text = tokenizer.decode(ids[:keep])
        if not text.endswith("\ufffd"):
            return text, keep
    return tokenizer.decode(ids[:n]), n


def make_observation(stdout: str, stderr: str, *, error: str | None, tokenizer: Tokenizer,
                     max_tokens: int = CARD.max_observation_tokens,
                     demo_error_hint: bool = False,
                     truncation_note: str | None = TRUNCATION_NOTE) -> Observation:
    """The observation for one code run.

    The text is stdout then stderr. ``error`` is the sandbox's own message (timeout, memory
    limit) and is added on its own line unless stderr already says it. With
    ``demo_error_hint`` any error replaces the whole text by ``DEMO_ERROR_HINT``.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    is_error = bool(stderr) or error is not None
    raw = stdout + stderr
    if error is not None and error not in raw:
        raw += ("" if not raw or raw.endswith("\n") else "\n") + error
    if demo_error_hint and is_error:
        raw = DEMO_ERROR_HINT
    ids = tokenizer.encode(raw)
    body, truncated = raw, len(ids) > max_tokens
    if truncated:
        body, kept = _cut(tokenizer, ids, max_tokens)
        if truncation_note is not None:
            body += truncation_note.format(kept=kept, total=len(ids))
    return Observation(wrap_observation(body), truncated, len(ids), body, is_error)
