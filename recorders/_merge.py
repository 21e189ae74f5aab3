"""Merging stores: replicas that each recorded into their own store become one store.

Entries are deduplicated by key and content (the answer's blob, its further blobs and its
status): the same call answered the same way in several stores is one entry. The same key with
different content is a conflict, and conflicts are never resolved here: the merge reports every
one and writes nothing. The result is built in a temporary directory beside the destination and
renamed into place, so the destination is either absent or the whole merge.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._canonical import canonical_json
from ._errors import StoreError
from ._store import Entry, Store

__all__ = ["MergeConflict", "MergeConflictError", "MergeResult", "merge_stores"]

_SHOWN = 20  # conflicts listed in the error message; all are on the exception


@dataclass(slots=True, frozen=True)
class MergeConflict:
    """One key recorded with different content: each source store and what it holds."""

    key: str
    tool: str
    args: dict[str, Any]
    held: tuple[tuple[str, str], ...]  # (store path, blob) for every source holding the key

    def describe(self) -> str:
        where = "; ".join(f"{path}: blob {blob[:12]}" for path, blob in self.held)
        return (f"  {self.key[:12]} {self.tool} "
                f"{json.dumps(self.args, sort_keys=True, ensure_ascii=False)} ({where})")


class MergeConflictError(StoreError):
    """Two stores hold different answers for one key; ``conflicts`` lists every such key."""

    def __init__(self, conflicts: list[MergeConflict], into: Path) -> None:
        lines = [f"{len(conflicts)} key(s) are recorded with different answers in different "
                 f"stores; nothing was written to {into}"]
        lines += [c.describe() for c in conflicts[:_SHOWN]]
        if len(conflicts) > _SHOWN:
            lines.append(f"  ... and {len(conflicts) - _SHOWN} more")
        super().__init__("\n".join(lines), setting="store",
                         hint="decide which answer to keep: merge the stores that agree, then "
                              "unpack a pack of the store whose answers you keep over the "
                              "result with overwrite")
        self.conflicts = conflicts


@dataclass(slots=True)
class MergeResult:
    path: str
    sources: int
    entries: int  # in the merged store
    duplicates: int  # entries also found, with the same content, in another source
    blobs: int


def _content(e: Entry) -> tuple[str, tuple[str, ...], str]:
    return (e.blob, e.refs, e.status)


def _rank(e: Entry) -> tuple[float, float, str, bytes]:
    """Which of equal entries is kept: the earliest recorded, whatever the source order."""
    return (e.recorded_at, e.latency_ms, e.backend, canonical_json(e.to_json()))


def _check_into(into: Path, sources: Sequence[Path]) -> None:
    resolved = into.resolve()
    if any(s.resolve() == resolved for s in sources):
        raise StoreError(f"{into} is one of the stores to merge",
                         hint="merge into a new directory", setting="store")
    if into.exists() and (not into.is_dir() or any(into.iterdir())):
        raise StoreError(f"{into} already exists; a merge writes a new store",
                         hint="name a new directory to merge into, or add the existing store "
                              "to the stores to merge", setting="store")


def merge_stores(sources: Sequence[str | os.PathLike[str]],
                 into: str | os.PathLike[str]) -> MergeResult:
    """Merge the stores ``sources`` into the new store ``into``; MergeConflictError (and
    nothing written) if a key has different answers in two of them."""
    paths = [Path(s) for s in sources]
    dest = Path(into)
    if not paths:
        raise StoreError("no store to merge", hint="name at least one store", setting="store")
    _check_into(dest, paths)
    stores = [Store(p, readonly=True) for p in paths]
    try:
        renderers = sorted({st.renderer for st in stores})
        if len(renderers) > 1:
            raise StoreError(
                "the stores are rendered under different renderer versions ("
                + ", ".join(f"{p}: {st.renderer}" for p, st in zip(paths, stores, strict=True))
                + "); a merged store would show some answers differently",
                hint="merge stores of one renderer version", setting="store")
        chosen: dict[str, tuple[Entry, int]] = {}
        held: dict[str, list[tuple[int, Entry]]] = {}
        duplicates = 0
        for i, st in enumerate(stores):
            for key, entry in st.entries():
                held.setdefault(key, []).append((i, entry))
                old = chosen.get(key)
                if old is None:
                    chosen[key] = (entry, i)
                    continue
                if _content(old[0]) == _content(entry):
                    duplicates += 1
                    if _rank(entry) < _rank(old[0]):
                        chosen[key] = (entry, i)
        conflicts = [
            MergeConflict(key, rows[0][1].tool, rows[0][1].args,
                          tuple((str(paths[i]), e.blob) for i, e in rows))
            for key, rows in sorted(held.items())
            if len({_content(e) for _, e in rows}) > 1
        ]
        if conflicts:
            raise MergeConflictError(conflicts, dest)
        return _write(chosen, stores, dest, duplicates, renderers[0])
    finally:
        for st in stores:
            st.close()


def _write(chosen: dict[str, tuple[Entry, int]], stores: list[Store], dest: Path,
           duplicates: int, renderer: int) -> MergeResult:
    """Build the merged store beside ``dest``, then rename it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.merging-", dir=dest.parent))
    try:
        copied: set[str] = set()
        with Store(tmp / "store", renderer=renderer) as out:
            for key in sorted(chosen):
                entry, i = chosen[key]
                for sha in (entry.blob, *entry.refs):
                    if sha not in copied:
                        out.blobs.put(stores[i].blobs.get(sha))  # get() rehashes the bytes
                        copied.add(sha)
                out.put_entry(key, entry)
        if dest.exists():  # an empty directory (checked above)
            dest.rmdir()
        os.replace(tmp / "store", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MergeResult(str(dest), len(stores), len(chosen), duplicates, len(copied))
