"""Errors. Each says what went wrong and, in `hint`, how to fix it.

A hint is written in the library's terms (settings and arguments, never a command line's flags).
``setting`` names the setting that fixes the error and ``env_var`` the environment variable, as
plain fields, so that a command line or a test plugin can name its own option for them.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BlobCorruptError",
    "InvalidCallError",
    "MissingCredentialError",
    "PackError",
    "RecordersError",
    "ReplayMissError",
    "StoreError",
]


class RecordersError(Exception):
    """Base class: a message for the user plus an optional fix.

    - ``hint``: how to fix it, in library terms;
    - ``setting``: the name of the setting that fixes it, a plain identifier (``"mode"``,
      ``"backend"``, ``"store"``, ...);
    - ``env_var``: the environment variable that fixes it.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        setting: str | None = None,
        env_var: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.setting = setting
        self.env_var = env_var

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"


class StoreError(RecordersError):
    """The store directory is missing, unreadable, damaged or not a store."""


class BlobCorruptError(StoreError):
    """A blob's bytes no longer hash to its name."""


class PackError(StoreError):
    """A pack file is malformed or its content does not match its manifest."""


class InvalidCallError(RecordersError, ValueError):
    """A tool call that cannot be made: an unknown tool, a missing or ill-typed argument, an
    empty URL, text that is not valid Unicode. A ValueError too, as bad arguments are."""


class ReplayMissError(RecordersError):
    """Strict replay asked for a call that was never recorded."""

    def __init__(
        self, message: str, *, key: str, fields: dict[str, object], nearest: list[str],
        hint: str = "record it first (mode auto or record), or fix the call so it matches",
    ) -> None:
        super().__init__(message, hint=hint, setting="mode")
        self.key = key
        self.fields = fields
        self.nearest = nearest


class MissingCredentialError(RecordersError):
    """A live backend needs an API key (or another setting from the environment, such as its
    base URL) that is not set."""

    env_var: str

    def __init__(
        self,
        backend: str,
        env_var: str,
        *,
        what: str = "an API key",
        hint: str | None = None,
        setting: str = "backend",
    ) -> None:
        super().__init__(
            f"the {backend} backend needs {what}, but {env_var} is not set",
            hint=hint or f"export {env_var}=... , or use the local backend (no key, no network)",
            setting=setting,
            env_var=env_var,
        )


class BackendError(RecordersError):
    """A live backend failed after its retries (network, timeout, provider error)."""
