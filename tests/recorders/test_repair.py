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


def test_a_store_of_payload_version_1_still_replays_verifies_and_packs(tmp_path: Path) -> None:
    """Stores recorded before payload version 2: same keys, read as they were."""
    from recorders import Entry, make_key

    data = answer({"query": "old", "num_results": 2})
    key, norm = make_key("web_search", {"query": "old", "num_results": 2})
    with Store(tmp_path / "s") as st:
        sha = st.blobs.put(canonical_json({"version": 1, "tool": "web_search", "data": data}))
        st.put_entry(key, Entry(blob=sha, tool="web_search", args=norm, backend="memory",
                                recorded_at=0.0, latency_ms=0.0))
        assert st.verify().ok
        res = Recorder(st, mode="replay").call_sync("web_search",
                                                    {"query": "old", "num_results": 2})
        assert res.from_store and res.data == data
        pack(st, tmp_path / "old.cirpack")
    with Store(tmp_path / "b") as dst:
        assert unpack(tmp_path / "old.cirpack", dst).entries_added == 1
        assert dst.verify().ok


@pytest.mark.parametrize(("tool", "args", "key"), [
    ("web_search", {"query": "who painted the night watch", "num_results": 5},
     "726983f7d8fd8ec45b3a1896af7d748d8b9014529c80fd109a8238cb54f9190c"),
    ("web_visit", {"url": "https://u:p@Example.org:443/a?token=x&utm_source=y&b=2#f"},
     "f56e9e1f1d87ccf2a6fca8ec04688f0a00c9c77cf3f007483c106c7c2ca0b696"),
    ("code_exec", {"code": "print(1)"},
     "ed5fba3e3d871425b42ba83f21e35c707059c95178d7d4afe9500c1d05be776d"),
])
def test_keys_are_those_of_stores_recorded_before(tool: str, args: dict[str, object],
                                                  key: str) -> None:
    """Payload version 2 and stored-data redaction change blobs, never keys."""
    from recorders import make_key

    assert make_key(tool, args)[0] == key


def test_a_damaged_index_moved_aside_is_rebuilt(tmp_path: Path) -> None:
    _record(tmp_path / "s").close()
    db = tmp_path / "s" / "index" / "cache.db"
    data = bytearray(db.read_bytes())
    for page in range(4096, len(data), 4096):
        data[page:page + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="cannot read the index") as e:
        Store(tmp_path / "s", readonly=True).verify()
    assert "cirkit store reindex" in (e.value.hint or "")
    (tmp_path / "s" / "index").rename(tmp_path / "s" / "index.damaged")
    assert reindex(tmp_path / "s").entries_added == 20
    with Store(tmp_path / "s", readonly=True) as st:
        assert st.verify().ok
