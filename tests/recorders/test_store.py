"""The store: write-once blobs verified on read, a JSON index, clear errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from recorders import (
    ENTRY_VERSION,
    BlobCorruptError,
    Entry,
    InMemoryBackend,
    Recorder,
    Store,
    StoreError,
)


def _entry(store: Store, payload: bytes = b'{"x":1}', **kw: object) -> Entry:
    sha = store.blobs.put(payload)
    fields: dict[str, object] = dict(blob=sha, tool="web_search",
                                     args={"query": "q", "num_results": 5}, backend="memory",
                                     recorded_at=0.0, latency_ms=1.0)
    fields.update(kw)
    return Entry(**fields)  # type: ignore[arg-type]


def test_layout_blob_named_by_sha256(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as st:
        sha = st.blobs.put(b"hello")
        assert sha == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        assert (tmp_path / "s" / "objects" / sha[:2] / sha[2:]).read_bytes() == b"hello"
        assert st.blobs.put(b"hello") == sha  # write-once: same bytes, same name
        assert json.loads((tmp_path / "s" / "store.json").read_text())["version"] == 1


def test_corrupt_blob_is_an_error_naming_it(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        st.put_entry("k", _entry(st))
        path = st.blobs.path(st.get_entry("k").blob)  # type: ignore[union-attr]
        path.chmod(0o644)
        path.write_bytes(b'{"x":2}')
        with pytest.raises(BlobCorruptError, match=path.parent.name + path.name):
            st.load("k")
        report = st.verify()
        assert not report.ok and report.corrupt_blobs == [path.parent.name + path.name]


def test_entry_needs_its_blob(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        e = _entry(st)
        bad = Entry(**{**e.to_json(), "blob": "0" * 64, "refs": ()})
        with pytest.raises(StoreError, match="is not stored"):
            st.put_entry("k", bad)
        assert "k" not in st


def test_index_holds_json_never_pickle(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        st.put_entry("k", _entry(st))
    con = sqlite3.connect(tmp_path / "index" / "cache.db")
    rows = con.execute("SELECT key, value, mode FROM Cache").fetchall()
    con.close()
    assert len(rows) == 1
    key, value, mode = rows[0]
    assert key == "k"
    assert json.loads(value)["version"] == ENTRY_VERSION  # stored as JSON text
    assert mode in (1, 3)  # diskcache MODE_RAW/MODE_TEXT; never MODE_PICKLE (4)


def test_not_a_store_and_future_versions_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a cirkit store"):
        Store(tmp_path / "nope", create=False)
    Store(tmp_path / "s").close()
    (tmp_path / "s" / "store.json").write_text('{"format": "cirkit-store", "version": 99}')
    with pytest.raises(StoreError, match="version 99"):
        Store(tmp_path / "s")


def test_entry_version_mismatch_is_reported(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        st._index.set("k", {**_entry(st).to_json(), "version": 99})
        with pytest.raises(StoreError, match="version 99"):
            st.get_entry("k")
        with pytest.raises(StoreError, match="version 99; this cirkit reads version 1"):
            st.load("k")  # replay's path checks it too
        assert st.verify().bad_entries[0][0] == "k"


def test_load_reads_the_same_writable_and_read_only(tmp_path: Path) -> None:
    """Replay's one path: the entry as recorded and its verified blob bytes, whichever index
    reads them."""
    with Store(tmp_path / "s") as st:
        e = _entry(st, b'{"data":{}}', status="error")
        st.put_entry("k", e)
    for readonly in (False, True):
        with Store(tmp_path / "s", readonly=readonly) as st:
            assert st.load("k") == (e, b'{"data":{}}')
            assert st.load("missing") is None


def test_info_and_sorted_keys(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        for k in ("b", "a", "c"):
            st.put_entry(k, _entry(st, payload=k.encode()))
        st.put_entry("v", _entry(st, tool="web_visit", args={"url": "https://x/"},
                                 backend="fetch"))
        assert st.keys() == ["a", "b", "c", "v"]
        info = st.info()
        assert info.entries == 4
        assert info.by_tool == {"web_search": 3, "web_visit": 1}
        assert info.by_backend == {"fetch": 1, "memory": 3}
        assert st.resolve("v") == "v"


def test_verify_counts_leftover_temp_files_and_orphans(tmp_path: Path) -> None:
    with Store(tmp_path) as st:
        Recorder(st, search=InMemoryBackend("web_search", lambda a: {"r": 1})).call_sync(
            "web_search", {"query": "q"})
        st.blobs.put(b"orphan")
        (st.blobs.root / "ab").mkdir(exist_ok=True)
        (st.blobs.root / "ab" / ".tmp-xyz").write_bytes(b"half")
        r = st.verify()
        assert r.ok and r.unreferenced_blobs == 1 and r.temp_files == 1


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 3 * 2**20 + 7])
def test_blobs_of_every_size_read_back_whole(tmp_path: Path, size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    with Store(tmp_path) as st:
        assert st.blobs.get(st.blobs.put(data)) == data


def test_a_blob_name_is_never_a_path(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"not a blob")
    with Store(tmp_path / "s") as st:
        (tmp_path / "s" / ("0" * 62)).write_bytes(b"planted beside objects/")
        for name in ("../../secret", "ab/../../../secret", "A" * 64, "0" * 63, "",
                     ".." + "0" * 62, "\0" * 32, "\x00" * 64):
            with pytest.raises(StoreError, match="not a blob name"):
                st.blobs.get(name)


def test_blobs_read_the_same_with_and_without_the_directory_handle(tmp_path: Path) -> None:
    """Reads open blobs relative to the objects directory; a store checked out of git with no
    blob has no objects/ (git keeps no empty directory), and a closed store reads by path."""
    Store(tmp_path / "s").close()
    (tmp_path / "s" / "objects").rmdir()
    with Store(tmp_path / "s", readonly=True) as ro, pytest.raises(BlobCorruptError,
                                                                   match="missing"):
        ro.blobs.get("0" * 64)
    st = Store(tmp_path / "s")
    sha = st.blobs.put(b"kept")  # creates objects/ again
    st.close()
    assert st.blobs.get(sha) == b"kept"  # after close: by absolute path, same bytes
    with Store(tmp_path / "s", readonly=True) as ro:
        assert ro.blobs.get(sha) == b"kept"
