"""A store opened read-only: it reads what diskcache wrote and leaves every byte as it was."""

from __future__ import annotations

import hashlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from recorders import (
    Entry,
    InMemoryBackend,
    Recorder,
    RecordersError,
    Store,
    StoreError,
    canonical_json,
)


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (names included) and its sha256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _recorded(path: Path, n: int = 3) -> list[str]:
    with Store(path) as st:
        rec = Recorder(st, search=InMemoryBackend("web_search", lambda a: {"q": a["query"]}),
                       mode="record", clock=lambda: 0.0)
        for i in range(n):
            rec.call_sync("web_search", {"query": f"q{i}"})
        sha = st.blobs.put(b'{"version":1,"tool":"web_search","data":{}}')
        st.put_entry(BIG, Entry(blob=sha, tool="web_search", args=_BIG_ARGS, backend="memory",
                                recorded_at=0.0, latency_ms=0.0))
        return st.keys()


# An entry past diskcache's 32 KiB (its value lives in a file), under its real key.
_BIG_ARGS = {"query": "x" * 70_000, "num_results": 5}
BIG = hashlib.sha256(canonical_json({"tool": "web_search", "args": _BIG_ARGS})).hexdigest()


def test_reads_everything_and_changes_not_one_byte(tmp_path: Path) -> None:
    keys = _recorded(tmp_path / "s")
    before = _tree(tmp_path / "s")
    with Store(tmp_path / "s", readonly=True) as ro:
        assert ro.keys() == keys and len(ro) == len(keys) and BIG in ro
        assert ro.get_entry(BIG).args["query"] == "x" * 70_000  # type: ignore[union-attr]
        rec = Recorder(ro, mode="replay")
        assert rec.call_sync("web_search", {"query": "q1"}).data == {"q": "q1"}
        assert ro.verify().ok and ro.info().entries == len(keys)
        assert ro.get_entry("never") is None and "never" not in ro
    assert _tree(tmp_path / "s") == before


@pytest.mark.parametrize("serialized", [True, False], ids=["shared", "taking-turns"])
def test_threads_share_one_read_only_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serialized: bool
) -> None:
    """Threads read one connection at once when SQLite is built serialized (the usual build),
    and take turns on a lock otherwise; either way every thread gets its own answers."""
    if not serialized:
        monkeypatch.setattr(sqlite3, "threadsafety", 1)
    keys = _recorded(tmp_path / "s", n=40)
    with Store(tmp_path / "s", readonly=True) as ro:
        want = {k: ro.load(k) for k in keys}

        def read_all(offset: int) -> bool:
            order = keys[offset:] + keys[:offset]
            return all(ro.load(k) == want[k] for _ in range(20) for k in order)

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(read_all, range(8)))


def test_sees_entries_a_writer_has_not_checkpointed_yet(tmp_path: Path) -> None:
    _recorded(tmp_path / "s", n=1)
    with Store(tmp_path / "s") as writer:  # open: its write-ahead log is live
        Recorder(writer, search=InMemoryBackend("web_search", lambda a: {"q": a["query"]}),
                 mode="record").call_sync("web_search", {"query": "late"})
        with Store(tmp_path / "s", readonly=True) as ro:
            assert Recorder(ro, mode="replay").call_sync(
                "web_search", {"query": "late"}).data == {"q": "late"}


def test_every_write_is_refused_with_the_reason(tmp_path: Path) -> None:
    _recorded(tmp_path / "s", n=1)
    with Store(tmp_path / "s", readonly=True) as ro:
        with pytest.raises(StoreError, match="read-only"):
            ro.blobs.put(b"new")
        with pytest.raises(StoreError, match="read-only"):
            ro.put_entry("k", ro.get_entry(ro.keys()[0]))  # type: ignore[arg-type]
        for mode in ("record", "auto", "rewrite"):
            with pytest.raises(RecordersError, match="opened read-only"):
                Recorder(ro, mode=mode)


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a cirkit store"):
        Store(tmp_path / "nothing", readonly=True)
    assert not (tmp_path / "nothing").exists()
