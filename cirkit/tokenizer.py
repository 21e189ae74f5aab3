"""The model's tokenizer: one class for rollouts, dataset builders and ``cirkit exec``.

One loading rule, from local files only (a rollout or a build must not depend on a download):

- a directory: the model's tokenizer files and chat template, read by transformers;
- a ``tokenizer.json`` file: the Rust tokenizer alone (encode/decode, no chat template);
- anything else is a model id: its snapshot directory in the local Hugging Face cache, read
  as a directory, or nothing.

Encoding and decoding always go through the Rust backend (``tokenizers``), without special
tokens added or skipped, so a rollout, a build and ``cirkit exec`` count the same tokens. Every
failure is a :class:`TokenizerLoadError`.

Heavy imports (transformers, tokenizers) happen on load, never at import time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from .errors import EnvError

__all__ = ["TOKENIZER_FILES", "ModelTokenizer", "TokenizerLoadError", "load_tokenizer"]

#: The files a tokenizer is made of; each one present is digested for provenance.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt",
                   "tokenizer.model")

_WHERE = ("give a local model directory with its tokenizer files, the model's tokenizer.json, "
          "or the id of a model already in the local Hugging Face cache (nothing is "
          "downloaded)")


class TokenizerLoadError(EnvError):
    """No usable tokenizer at the given place. ``setting`` is ``"tokenizer"``: the option a
    front end names when it shows the hint."""

    def __init__(self, message: str, *, hint: str = _WHERE) -> None:
        super().__init__(message, hint=hint, setting="tokenizer")


def _sha256(path: Path) -> str:
    """A tokenizer file's sha256 (a few MB at most: read whole)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _looks_like_path(name: str) -> bool:
    """A name no model id can be: the user meant a file or directory that is not there."""
    return (name.endswith(".json") or Path(name).is_absolute() or name.startswith(".")
            or "\\" in name or name.count("/") > 1)


def _read_json(path: Path) -> Any:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on bad files
        raise TokenizerLoadError(
            f"cannot load a tokenizer from {path}: not a tokenizer.json the tokenizers library "
            f"can read ({_first_line(e)})",
            hint="give the model's tokenizer.json, or the model directory") from None


def _cached_snapshot(name: str) -> Path:
    """The local snapshot directory of a model id in the Hugging Face cache (no network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, HFValidationError...: not here
        raise TokenizerLoadError(
            f"cannot load a tokenizer from {name!r}: not a local file or directory, and no "
            "model of that id is in the local Hugging Face cache") from None


def _from_directory(path: Path) -> Any:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no "PyTorch not found" noise
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # OSError, ValueError...: all mean "not usable here"
        raise TokenizerLoadError(
            f"cannot load a tokenizer from the directory {path}: {_first_line(e)}",
            hint="give a model directory holding tokenizer.json and tokenizer_config.json"
        ) from None


class ModelTokenizer:
    """The model's tokenizer and chat template, with the provenance a dataset card names.

    ``name`` is what was given; ``display_name`` holds no path of this machine (a
    directory's own name). With ``require_chat_template`` (the default) a tokenizer without
    a chat template is refused when loaded, not at the first prompt.
    """

    __slots__ = ("_backend", "_digests", "_encode_batch", "_hf", "_path", "name")

    def __init__(self, name_or_path: str | Path, *, require_chat_template: bool = True) -> None:
        self.name = str(name_or_path)
        path = Path(name_or_path)
        self._path: Path | None = path if path.exists() else None
        self._hf: Any = None
        self._digests: tuple[str, dict[str, str]] | None = None
        if path.is_file():
            self._backend: Any = _read_json(path)
        elif path.is_dir() or not _looks_like_path(self.name):
            self._hf = _from_directory(path if path.is_dir() else _cached_snapshot(self.name))
            backend = getattr(self._hf, "backend_tokenizer", None)
            if backend is None:
                raise TokenizerLoadError(
                    f"the tokenizer at {self.name} has no fast (Rust) backend",
                    hint="give a model directory with a tokenizer.json")
            self._backend = backend
        elif self.name.endswith(".json"):
            raise TokenizerLoadError(f"cannot load a tokenizer from {path}: no such tokenizer "
                                     "file")
        else:
            raise TokenizerLoadError(f"cannot load a tokenizer from {path}: no such file or "
                                     "directory")
        self._encode_batch: Any = getattr(self._backend, "encode_batch_fast",
                                          self._backend.encode_batch)
        if require_chat_template and not self.chat_template:
            raise TokenizerLoadError(
                f"the tokenizer at {self.name} has no chat template",
                hint="give a chat model's tokenizer (a directory whose tokenizer_config.json "
                     "or chat_template.jinja holds the template)")

    # -- text <-> ids ---------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """``text``'s ids, no special tokens added."""
        return list(self._backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        """The text of ``ids``, special tokens kept, no clean-up of spaces."""
        return str(self._backend.decode(list(ids), skip_special_tokens=False))

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Many texts in one call into the Rust backend (all cores)."""
        if not texts:
            return []
        return [e.ids for e in self._encode_batch(texts, add_special_tokens=False)]

    def decode_batch(self, ids: list[list[int]]) -> list[str]:
        if not ids:
            return []
        return list(self._backend.decode_batch(ids, skip_special_tokens=False))

    # -- the chat template ----------------------------------------------------------------

    @property
    def chat_template(self) -> str | None:
        template = getattr(self._hf, "chat_template", None) if self._hf is not None else None
        return str(template) if template else None

    def chat_prompt(self, messages: list[dict[str, str]], *,
                    add_generation_prompt: bool = True) -> str:
        """The messages through the model's own chat template, as text."""
        if self._hf is None or not self.chat_template:
            raise TokenizerLoadError(
                f"the tokenizer at {self.name} has no chat template",
                hint="give the model directory (with tokenizer_config.json), not its "
                     "tokenizer.json alone")
        return str(self._hf.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt))

    @property
    def eos_token(self) -> str | None:
        token = getattr(self._hf, "eos_token", None) if self._hf is not None else None
        return str(token) if token else None

    @property
    def backend(self) -> Any:
        """The ``tokenizers.Tokenizer`` every encode and decode goes through."""
        return self._backend

    # -- provenance -----------------------------------------------------------------------

    @property
    def display_name(self) -> str:
        return self._path.name if self._path is not None else self.name

    def _digest(self) -> tuple[str, dict[str, str]]:
        """sha256 of tokenizer.json (what ``sha256sum`` shows) and of each tokenizer file;
        computed once, when first asked (a rollout never needs it)."""
        if self._digests is None:
            p = self._path
            if p is not None and p.is_file():
                files = {p.name: _sha256(p)}
                self._digests = files[p.name], files
            else:
                files = {n: _sha256(p / n) for n in TOKENIZER_FILES
                         if p is not None and (p / n).is_file()}
                main = files.get("tokenizer.json") or hashlib.sha256(
                    str(self._backend.to_str()).encode()).hexdigest()
                self._digests = main, files
        return self._digests

    @property
    def sha256(self) -> str:
        return self._digest()[0]

    @property
    def files(self) -> dict[str, str]:
        return dict(self._digest()[1])

    @property
    def chat_template_sha256(self) -> str:
        return hashlib.sha256((self.chat_template or "").encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """What a dataset card or a manifest names: no path, only names and digests."""
        return {"name": self.display_name, "sha256": self.sha256, "files": self.files,
                "chat_template_sha256": self.chat_template_sha256}

    def __repr__(self) -> str:
        return f"ModelTokenizer({self.name!r})"


def load_tokenizer(name_or_path: str | Path) -> ModelTokenizer:
    """A tokenizer for counting and cutting tokens (no chat template needed), by the one
    loading rule of this module."""
    return ModelTokenizer(name_or_path, require_chat_template=False)
