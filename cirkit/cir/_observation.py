"""Observations: what a code block's run shows the model, cut to a token budget.

The model was trained with observations of at most 3000 tokens of its own tokenizer, so the cut
is made in tokens (tokenize, keep the first ``max_tokens``, decode), never in characters. The
tokenizer is loaded from local files only: rollouts must not depend on a download.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import EnvError
from ._format import wrap_observation

__all__ = [
    "DEMO_ERROR_HINT",
    "TRUNCATION_NOTE",
    "Observation",
    "Tokenizer",
    "TokenizerLoadError",
    "load_tokenizer",
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


class TokenizerLoadError(EnvError):
    """No usable tokenizer at the given place."""


class _FastTokenizer:
    """A ``tokenizers.Tokenizer`` seen through the Tokenizer protocol."""

    def __init__(self, tok: Any, source: str) -> None:
        self._tok = tok
        self.source = source

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False))


class _HFTokenizer:
    """A transformers tokenizer seen through the Tokenizer protocol."""

    def __init__(self, tok: Any, source: str) -> None:
        self._tok = tok
        self.source = source

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False,
                                    clean_up_tokenization_spaces=False))


def _from_json(path: Path) -> _FastTokenizer:
    try:
        from tokenizers import Tokenizer as _Tok
    except ImportError:  # pragma: no cover - a declared dependency
        raise TokenizerLoadError(
            "the 'tokenizers' package is not installed",
            hint="pip install 'tokenizers>=0.20'") from None
    try:
        return _FastTokenizer(_Tok.from_file(str(path)), str(path))
    except Exception as e:  # tokenizers raises a bare Exception on bad files
        raise TokenizerLoadError(
            f"{path} is not a tokenizer.json the tokenizers library can read: {e}",
            hint="pass the tokenizer.json of the model (or its directory)") from None


def _from_transformers(name: str) -> _HFTokenizer:
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as e:  # OSError, ValueError, ...: all mean "not usable here"
        raise TokenizerLoadError(
            f"transformers could not load a tokenizer from {name!r} without network: {e}",
            hint="download the model first, or pass the path of its tokenizer.json") from None
    return _HFTokenizer(tok, name)


def _from_hub_cache(name: str) -> _FastTokenizer | None:
    """A tokenizer.json already in the Hugging Face cache, without network."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(name, "tokenizer.json")
    except Exception:  # an invalid repo id: not a hub name at all
        return None
    return _from_json(Path(found)) if isinstance(found, str) else None


def _has_transformers() -> bool:
    return importlib.util.find_spec("transformers") is not None


def load_tokenizer(name_or_path: str | Path) -> Tokenizer:
    """A tokenizer from a ``tokenizer.json`` file, a directory holding one, or (with
    transformers installed, or from the local Hugging Face cache) a model directory or name.
    Never downloads."""
    p = Path(name_or_path)
    has_transformers = _has_transformers()
    if p.is_file():
        return _from_json(p)
    if p.is_dir():
        if (p / "tokenizer.json").is_file():
            return _from_json(p / "tokenizer.json")
        if has_transformers:
            return _from_transformers(str(p))
        raise TokenizerLoadError(
            f"{p} has no tokenizer.json and transformers is not installed",
            hint="pass a directory with tokenizer.json, or pip install transformers")
    name = str(name_or_path)
    if p.suffix == ".json" or p.is_absolute() or name.startswith("."):
        raise TokenizerLoadError(f"no such tokenizer file: {p}",
                                 hint="check the path to tokenizer.json")
    cached = _from_hub_cache(name)
    if cached is not None:
        return cached
    if has_transformers:
        return _from_transformers(name)
    raise TokenizerLoadError(
        f"{name!r} is neither a local path nor a model in the Hugging Face cache",
        hint="pass the path of the model's tokenizer.json (or its directory)")


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
                     max_tokens: int = 3000, demo_error_hint: bool = False,
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
