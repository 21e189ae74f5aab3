"""Rebuilding a lost index from what the blobs hold (``cirkit store reindex``).

Why possible: since payload version 2 an answer's blob names its question (tool, arguments,
backend, status, refs), so its key can be recomputed. What cannot come back is said exactly:
answers of payload version 1 (their blob holds no question), and each entry's ``recorded_at``
and ``latency_ms`` (rebuilt entries carry 0 for both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ._errors import BlobCorruptError
from ._payload import entry_key, read_payload
from ._store import Entry, Store

__all__ = ["ReindexReport", "reindex"]


@dataclass(slots=True)
class ReindexReport:
    entries_kept: int = 0  # already in the index
    entries_added: int = 0  # rebuilt from their blob
    answers_shadowed: int = 0  # a second answer to a key already indexed (the first kept)
    corrupt_blobs: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # answer blobs that cannot be re-indexed

    @property
    def complete(self) -> bool:
        """Whether every answer the blobs hold is indexed now."""
        return not (self.lost or self.corrupt_blobs)


def reindex(path: str | Path) -> ReindexReport:
    """Add to the store's index (created if it is missing) an entry for every answer blob no
    entry names; entries already indexed are kept as they are. Blobs are read in name order,
    so the same store gives the same index."""
    report = ReindexReport()
    with Store(path, create=False, repair=True) as st:
        keys = set(st.keys())
        named: set[str] = set()
        for _, entry in st.entries():
            named.update((entry.blob, *entry.refs))
        report.entries_kept = len(keys)
        for sha in st.blobs.names():
            try:
                data = st.blobs.get(sha)
            except BlobCorruptError:
                report.corrupt_blobs.append(sha)
                continue
            try:
                p = read_payload(data)
            except ValueError:
                continue  # not an answer: a page's raw bytes, named by an answer
            if p["version"] < 2:
                if sha not in named:
                    report.lost.append(sha)
                continue
            key = entry_key(p["tool"], p["args"])
            if key in keys:
                if sha not in named:
                    report.answers_shadowed += 1
                continue
            if not all(st.blobs.exists(r) for r in p["refs"]):
                report.lost.append(sha)
                continue
            st.put_entry(key, Entry(blob=sha, tool=p["tool"], args=p["args"],
                                    backend=p["backend"], recorded_at=0.0, latency_ms=0.0,
                                    status=p["status"], refs=tuple(p["refs"])))
            keys.add(key)
            named.update((sha, *p["refs"]))
            report.entries_added += 1
    return report
