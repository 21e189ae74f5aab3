"""The store's index opened for reading only: not one byte of the store changes.

Why: opening a ``diskcache.Cache`` writes (its settings rows, WAL files), so a strict replay
through diskcache leaves a committed test store "modified" in git after every run. This reads
the same SQLite table diskcache wrote (``Cache``: ``key``, ``raw``, ``mode``, ``filename``,
``value``) through a read-only connection, and decodes values with the store's own disk.
A store without a write-ahead log is opened ``immutable`` (no lock files, no ``-shm``); one
whose WAL is live (a writer has it open) is read ``mode=ro``, so recent entries are seen.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ._errors import StoreError

__all__ = ["ReadOnlyIndex", "read_only_error"]


def read_only_error() -> StoreError:
    """What every write to a store opened read-only raises."""
    return StoreError("this store was opened read-only (strict replay never writes)",
                      hint="open it with readonly=False to record into it",
                      setting="readonly")


_GET = "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
# diskcache's own read tuning (its defaults ``sqlite_cache_size`` and ``sqlite_mmap_size``):
# both are per-connection and write nothing. Without them an index over SQLite's 2 MiB default
# page cache is read with a syscall per page (0.6 us more per get at 10,000 entries).
_TUNING = ("PRAGMA cache_size = 8192", "PRAGMA mmap_size = 67108864")


class ReadOnlyIndex:
    """The subset of ``diskcache.Cache`` the store reads with: get, in, len, iterkeys. SQLite's
    errors pass through, as diskcache's do: the Store turns both into StoreError."""

    def __init__(self, directory: Path, fetch: Callable[[int, str, Any, bool], Any]) -> None:
        """``fetch``: the store's ``Disk.fetch``, which decodes a row's value."""
        db = directory / "cache.db"
        if not db.is_file():
            raise StoreError(f"{directory} has no index ({db.name} is missing)",
                             hint="run `cirkit store verify`, or record into the store first")
        params = "mode=ro" if db.with_name("cache.db-wal").exists() else "immutable=1"
        self._con = sqlite3.connect(f"{db.resolve().as_uri()}?{params}", uri=True,
                                    check_same_thread=False)
        try:
            for pragma in _TUNING:
                self._con.execute(pragma)
            self._con.execute("SELECT key FROM Cache LIMIT 1").fetchall()
        except BaseException:
            self._con.close()
            raise
        self._fetch = fetch
        # SQLite built serialized (``sqlite3.threadsafety == 3``, the usual build) lets threads
        # share a connection, each query on its own cursor; with another build, they take turns.
        self._lock = None if sqlite3.threadsafety == 3 else threading.Lock()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        lock = self._lock  # (a context manager would cost 0.1 us per query)
        if lock is not None:
            lock.acquire()
        try:
            return self._con.execute(sql, args).fetchall()
        finally:
            if lock is not None:
                lock.release()

    def get(self, key: str, default: Any = None) -> Any:
        rows = self._rows(_GET, (key,))
        if not rows:
            return default
        mode, filename, value = rows[0]
        return self._fetch(mode, filename, value, False)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(
            self._rows("SELECT 1 FROM Cache WHERE key = ? AND raw = 1", (key,)))

    def __len__(self) -> int:
        return int(self._rows("SELECT COUNT(*) FROM Cache")[0][0])

    def iterkeys(self) -> Iterator[str]:
        for (key,) in self._rows("SELECT key FROM Cache WHERE raw = 1 ORDER BY rowid"):
            yield str(key)

    def close(self) -> None:
        self._con.close()
