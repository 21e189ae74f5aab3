"""Repair and loss: the remedies the errors suggest do repair a store (re-recording or
unpacking a good pack replaces a corrupt blob), and a lost index is refused, caught by verify,
and rebuilt by ``reindex`` from what the blobs hold (or what is lost is named)."""

from __future__ import annotations

import shutil
from pathlib import Path

import diskcache
import pytest

from recorders import (
    InMemoryBackend,
    Recorder,
    Store,
    StoreError,
    canonical_json,
    pack,
    reindex,
    unpack,
)
from tests.recorders.store_worker import answer

QUERIES = tuple(f"query {i}" for i in range(20))


def _record(path: Path, mode: str = "auto") -> Store:
    st = Store(path)
    rec = Recorder(st, search=InMemoryBackend("web_search", answer), mode=mode,
                   clock=lambda: 0.0)
    for q in QUERIES:
        rec.call_sync("web_search", {"query": q, "num_results": 2})
    return st


def _corrupt_first_blob(st: Store) -> str:
    _, entry = next(st.entries())
    path = st.blobs.path(entry.blob)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    assert st.verify().corrupt_blobs == [entry.blob]
    return entry.blob


def test_record_mode_replaces_a_corrupt_blob(tmp_path: Path) -> None:
    st = _record(tmp_path / "s")
    _corrupt_first_blob(st)
    _record(tmp_path / "s", mode="record").close()
    assert st.verify().ok


def test_unpacking_a_good_pack_replaces_a_corrupt_blob(tmp_path: Path) -> None:
    good = _record(tmp_path / "good")
    pack(good, tmp_path / "good.cirpack")
    shutil.copytree(tmp_path / "good", tmp_path / "bad")
    bad = Store(tmp_path / "bad")
    _corrupt_first_blob(bad)
    unpack(tmp_path / "good.cirpack", bad)
    assert bad.verify().ok


def test_a_deleted_index_is_refused_not_recreated_empty(tmp_path: Path) -> None:
    _record(tmp_path / "s").close()
    shutil.rmtree(tmp_path / "s" / "index")
    rec_store = None
    with pytest.raises(StoreError, match="lost its index") as e:
        rec_store = Store(tmp_path / "s")  # what one `--mode auto` call opens
    assert rec_store is None and "cirkit store reindex" in (e.value.hint or "")
    assert not (tmp_path / "s" / "index").exists()  # nothing was written beside the blobs
    with pytest.raises(StoreError, match="lost its index"):
        Store(tmp_path / "s", readonly=True)  # so `store verify` says it too

    r = reindex(tmp_path / "s")
    assert (r.entries_added, r.entries_kept, r.lost, r.complete) == (20, 0, [], True)
    with Store(tmp_path / "s", readonly=True) as st:
        assert st.verify().ok and len(st) == 20
        replay = Recorder(st, mode="replay")
        for q in QUERIES:
            res = replay.call_sync("web_search", {"query": q, "num_results": 2})
            assert res.from_store and q in res.text
        rebuilt = {k: (e.blob, e.args, e.backend, e.status) for k, e in st.entries()}
    original = _record(tmp_path / "again")
    assert {k: (e.blob, e.args, e.backend, e.status) for k, e in original.entries()} == rebuilt


def test_verify_catches_an_empty_index_beside_answers(tmp_path: Path) -> None:
    """An index that was lost and recreated empty (as an older cirkit did on one auto call)."""
    _record(tmp_path / "s").close()
    shutil.rmtree(tmp_path / "s" / "index")
    diskcache.Cache(str(tmp_path / "s" / "index")).close()
    with Store(tmp_path / "s", readonly=True) as st:
        r = st.verify()
    assert not r.ok and r.index_lost and len(r.unindexed_answers) == 20
    assert reindex(tmp_path / "s").entries_added == 20
    with Store(tmp_path / "s", readonly=True) as st:
        assert st.verify().ok


def test_reindex_names_what_it_cannot_bring_back(tmp_path: Path) -> None:
    st = _record(tmp_path / "s")
    old = st.blobs.put(canonical_json({"version": 1, "tool": "web_search", "data": {}}))
    shutil.rmtree(tmp_path / "s" / "index")
    st.close()
    r = reindex(tmp_path / "s")
    assert r.entries_added == 20 and r.lost == [old] and not r.complete


def test_reindex_keeps_what_the_index_holds(tmp_path: Path) -> None:
    st = _record(tmp_path / "s")
    before = [(k, e.to_json()) for k, e in st.entries()]
    st.close()
    r = reindex(tmp_path / "s")
    assert (r.entries_kept, r.entries_added, r.complete) == (20, 0, True)
    with Store(tmp_path / "s") as st:
        assert [(k, e.to_json()) for k, e in st.entries()] == before
