"""Record modes, after vcrpy's: a str Enum with a validator that lists the valid values."""

from __future__ import annotations

from enum import Enum

__all__ = ["Mode"]


class Mode(str, Enum):
    """How a Recorder treats the store.

    - ``record``: always call the backend, overwrite what is stored.
    - ``replay``: strict; only the store answers, a miss is an error.
    - ``auto``: the store answers if it can, else the backend is called and recorded.
    - ``rewrite``: the first call of each key in a session is re-recorded, later ones replay it.
    - ``off``: the backend answers; nothing is read or written.
    """

    RECORD = "record"
    REPLAY = "replay"
    AUTO = "auto"
    REWRITE = "rewrite"
    OFF = "off"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: str | Mode) -> Mode:
        if isinstance(value, Mode):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown record mode {value!r}; valid modes: {valid}") from None
