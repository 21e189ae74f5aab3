"""Errors. Each says what went wrong and, in `hint`, how to fix it."""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BlobCorruptError",
    "MissingCredentialError",
    "PackError",
    "RecordersError",
    "ReplayMissError",
    "StoreError",
]


class RecordersError(Exception):
    """Base class: a message for the user plus an optional fix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message}\nhint: {self.hint}"


class StoreError(RecordersError):
    """The store directory is missing, unreadable or not a store."""


class BlobCorruptError(StoreError):
    """A blob's bytes no longer hash to its name."""


class PackError(StoreError):
    """A pack file is malformed or its content does not match its manifest."""


class ReplayMissError(RecordersError):
    """Strict replay asked for a call that was never recorded."""

    def __init__(
        self, message: str, *, key: str, fields: dict[str, object], nearest: list[str]
    ) -> None:
        super().__init__(
            message,
            hint="record it first (--mode auto or record), or fix the call so it matches",
        )
        self.key = key
        self.fields = fields
        self.nearest = nearest


class MissingCredentialError(RecordersError):
    """A live backend needs an API key that is not set."""

    def __init__(self, backend: str, env_var: str) -> None:
        super().__init__(
            f"the {backend} backend needs an API key, but {env_var} is not set",
            hint=f"export {env_var}=... , or use --backend local (no key, no network)",
        )
        self.env_var = env_var


class BackendError(RecordersError):
    """A live backend failed after its retries (network, timeout, provider error)."""
