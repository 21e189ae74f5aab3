"""The funnel: named filters that own their bookkeeping (datatrove-style).

A filter only answers "keep this row?" with ``True`` or ``(False, "stable_reason")``; the base
class counts what it saw and dropped, per reason, and writes dropped rows to an optional reject
file. A dataset report can then say exactly where every input row went, and the counts add up:
``rows_in - sum(removed) == rows_out``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar, Generic, Protocol, TypeVar

import orjson

from cirkit.answers import normalize_answer

__all__ = [
    "Filter",
    "FilterStats",
    "Funnel",
    "RejectSink",
    "Rejectable",
    "Verdict",
    "normalize_answer",
]

Verdict = bool | tuple[bool, str]


class Rejectable(Protocol):
    def reject_record(self) -> dict[str, Any]:
        """What the reject file keeps of a dropped row."""
        ...


R = TypeVar("R", bound=Rejectable)

@dataclass(slots=True)
class FilterStats:
    """What one filter saw and removed, by reason."""

    name: str
    description: str = ""
    seen: int = 0
    removed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.seen - self.removed

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "seen": self.seen,
                "removed": self.removed, "reasons": dict(sorted(self.reasons.items()))}


class RejectSink:
    """A JSONL file of dropped rows, each with the filter and the reason that dropped it."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._f: IO[bytes] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("wb")

    def write(self, record: dict[str, Any], filter_name: str, reason: str) -> None:
        if self._f is not None:
            row = {"filter": filter_name, "reason": reason, **record}
            self._f.write(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class Filter(ABC, Generic[R]):
    """One named step of a funnel. Subclasses set ``name`` and implement ``check``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self) -> None:
        self.stats = FilterStats(self.name, self.description)

    @abstractmethod
    def check(self, row: R) -> Verdict:
        """True to keep the row, or (False, reason) with a stable reason string."""

    def __call__(self, row: R, sink: RejectSink | None = None) -> bool:
        verdict = self.check(row)
        ok, reason = (verdict, self.name) if isinstance(verdict, bool) else verdict
        self.stats.seen += 1
        if not ok:
            self.stats.removed += 1
            self.stats.reasons[reason] += 1
            if sink is not None:
                sink.write(row.reject_record(), self.name, reason)
        return ok

    def config(self) -> dict[str, Any]:
        """The filter's settings, for the build manifest."""
        return {}


class Funnel(Generic[R]):
    """Runs rows through filters in order; a row stops at the first filter that drops it.

    ``run`` can cover a slice of the filters, so a builder can run the cheap text filters
    before tokenizing and the token filters after, while the counts stay one funnel.
    """

    def __init__(self, filters: Sequence[Filter[R]], sink: RejectSink | None = None) -> None:
        self.filters = list(filters)
        self.sink = sink
        self.rows_in = 0

    def index(self, name: str) -> int:
        return next(i for i, f in enumerate(self.filters) if f.name == name)

    def run(self, rows: Iterable[R], start: int = 0, stop: int | None = None,
            *, count_in: bool | None = None) -> list[R]:
        """Rows that pass filters[start:stop]. Rows entering at filter 0 count as input."""
        steps = self.filters[start:stop]
        kept: list[R] = []
        counted = start == 0 if count_in is None else count_in
        for row in rows:
            if counted:
                self.rows_in += 1
            if all(f(row, self.sink) for f in steps):
                kept.append(row)
        return kept

    @property
    def rows_out(self) -> int:
        return self.rows_in - sum(f.stats.removed for f in self.filters)

    def to_json(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in,
                "filters": [f.stats.to_json() for f in self.filters],
                "rows_out": self.rows_out}

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
