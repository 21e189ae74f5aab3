"""The errors cirkit raises for a user's mistake or a broken environment.

Every error is one message naming the cause and a ``hint`` naming the fix, in library terms.
Structured fields say *what* to change (``setting``, ``env_var``, ``path``/``line``/``field``),
so each front end renders the fix in its own words: the CLI names its option (``--tokenizer``),
the pytest plugin its flag (``--cirkit-mode``). A library error never spells a CLI flag.

The tree (see docs/concepts/architecture.md)::

    CirkitError
    ├── InputError          a user's file, row or value (file, line, field)
    ├── SandboxError        the code sandbox could not start or run a block
    ├── ModelServerError    an OpenAI-compatible server (unreachable, unknown model, bad reply)
    ├── HubError            the Hugging Face Hub (token, repo id, HTTP status)
    └── EnvError            the machine: a missing package, tokenizer, model or cache

``recorders`` has its own root, ``recorders.RecordersError`` (the store knows nothing of
cirkit); the CLI and the pytest plugin catch both.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CirkitError",
    "EnvError",
    "HubError",
    "InputError",
    "ModelServerError",
    "SandboxError",
]


class CirkitError(Exception):
    """Base class: ``message`` for the user, ``hint`` for the fix, fields for front ends.

    ``setting`` is the name of the option that fixes it (a plain identifier, e.g.
    ``"tokenizer"``); ``env_var`` an environment variable to set.
    """

    def __init__(self, message: str, *, hint: str | None = None, setting: str | None = None,
                 env_var: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.setting = setting
        self.env_var = env_var

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"


class InputError(CirkitError):
    """A user's input is unusable. ``path``, ``line`` (1-based) and ``field`` say where; the
    message already names them as ``file:line: field ...``."""

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None,
                 line: int | None = None, field: str | None = None,
                 setting: str | None = None, env_var: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message, hint=hint, setting=setting, env_var=env_var)
        self.path = None if path is None else Path(path)
        self.line = line
        self.field = field


class SandboxError(CirkitError):
    """The sandbox could not start, or a block could not be run at all (not the block's own
    failure, which is an observation)."""


class ModelServerError(CirkitError):
    """An OpenAI-compatible completions server failed: unreachable, unknown model, bad reply."""


class HubError(CirkitError):
    """The Hugging Face Hub refused or failed a request."""


class EnvError(CirkitError):
    """Something the machine must provide is missing: a package, a tokenizer, a model, a venv."""
