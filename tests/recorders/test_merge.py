"""merge_stores: replicas' stores become one, deduplicated by key and content; a key with two
different answers is a conflict, reported in full, and nothing is written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from recorders import (
    InMemoryBackend,
    MergeConflictError,
    Recorder,
    Store,
    StoreError,
    merge_stores,
    pack,
)


def _answer(tag: str) -> Any:
    def answer(args: Mapping[str, Any]) -> dict[str, Any]:
        return {"results": [{"title": f"{args['query']} ({tag})", "url": "https://e.org/1",
                             "snippet": "s"}]}
    return answer


def _record(path: Path, queries: list[str], *, tag: str = "same", at: float = 0.0) -> Path:
    with Store(path) as st:
        rec = Recorder(st, search=InMemoryBackend("web_search", _answer(tag)), mode="record",
                       clock=lambda: at)
        for q in queries:
            rec.call_sync("web_search", {"query": q, "num_results": 1})
    return path


def _rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    with Store(path, readonly=True) as st:
        return [(k, e.to_json()) for k, e in st.entries()]


def test_merge_dedupes_by_key_and_content(tmp_path: Path) -> None:
    a = _record(tmp_path / "a", ["one", "two"], at=5.0)
    b = _record(tmp_path / "b", ["two", "three"], at=3.0)
    r = merge_stores([a, b], tmp_path / "c")
    assert (r.sources, r.entries, r.duplicates, r.blobs) == (2, 3, 1, 3)
    rows = dict(_rows(tmp_path / "c"))
    assert len(rows) == 3
    by_query = {e["args"]["query"]: e for e in rows.values()}
    assert by_query["two"]["recorded_at"] == 3.0  # of equal answers, the earliest is kept
    assert by_query["one"]["recorded_at"] == 5.0
    with Store(tmp_path / "c", readonly=True) as st:
        assert st.verify().ok
        hit = Recorder(st, mode="replay").call_sync("web_search",
                                                    {"query": "three", "num_results": 1})
    assert "three (same)" in hit.text


def test_merge_is_deterministic_whatever_the_source_order(tmp_path: Path) -> None:
    a = _record(tmp_path / "a", ["one", "two"], at=5.0)
    b = _record(tmp_path / "b", ["two", "three"], at=3.0)
    merge_stores([a, b], tmp_path / "ab")
    merge_stores([b, a], tmp_path / "ba")
    with Store(tmp_path / "ab", readonly=True) as x, Store(tmp_path / "ba", readonly=True) as y:
        px, py = pack(x, tmp_path / "ab.cirpack"), pack(y, tmp_path / "ba.cirpack")
    assert (tmp_path / "ab.cirpack").read_bytes() == (tmp_path / "ba.cirpack").read_bytes()
    assert px.manifest_sha256 == py.manifest_sha256


def test_a_conflict_is_reported_in_full_and_nothing_is_written(tmp_path: Path) -> None:
    a = _record(tmp_path / "a", ["one", "two", "four"], tag="first")
    b = _record(tmp_path / "b", ["two", "three", "four"], tag="second")
    into = tmp_path / "c"
    with pytest.raises(MergeConflictError) as info:
        merge_stores([a, b], into)
    err = info.value
    assert [(c.args["query"], len(c.held)) for c in err.conflicts] in (
        [("two", 2), ("four", 2)], [("four", 2), ("two", 2)])
    assert all({p for p, _ in c.held} == {str(a), str(b)} for c in err.conflicts)
    assert "2 key(s) are recorded with different answers" in err.message
    assert err.hint and not into.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".c.merging")]


@pytest.mark.parametrize("case", ["into a source", "into a non-empty dir", "not a store"])
def test_bad_destinations_and_sources_are_refused(tmp_path: Path, case: str) -> None:
    a = _record(tmp_path / "a", ["one"])
    before = _rows(a)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    sources, into = {
        "into a source": ([a], a),
        "into a non-empty dir": ([a], tmp_path / "full"),
        "not a store": ([a, tmp_path / "full"], tmp_path / "c"),
    }[case]
    with pytest.raises(StoreError) as info:
        merge_stores(sources, into)
    assert info.value.hint
    assert _rows(a) == before and not (tmp_path / "c").exists()


def test_merge_into_an_empty_directory(tmp_path: Path) -> None:
    a = _record(tmp_path / "a", ["one"])
    (tmp_path / "empty").mkdir()
    assert merge_stores([a], tmp_path / "empty").entries == 1
    assert len(_rows(tmp_path / "empty")) == 1
