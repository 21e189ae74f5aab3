"""Packs come from strangers: unpack streams members within their declared sizes, checks what
every entry means (its key is the hash of its arguments, its blob answers them), and a refused
or truncated pack leaves nothing behind; ``verify`` checks the same meaning in a store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from recorders import (
    Entry,
    InMemoryBackend,
    PackError,
    Recorder,
    Store,
    canonical_json,
    pack,
    unpack,
)
from tests.recorders.store_worker import answer

GIB = 2**30


def _record(path: Path, queries: tuple[str, ...] = ("alpha", "beta")) -> Store:
    st = Store(path)
    rec = Recorder(st, search=InMemoryBackend("web_search", answer), clock=lambda: 0.0)
    for q in queries:
        rec.call_sync("web_search", {"query": q, "num_results": 2})
    return st


def _parts(st: Store) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """A store's entries rows and blobs, as a pack holds them."""
    rows = [{"key": k, "entry": e.to_json()} for k, e in st.entries()]
    blobs = {sha: st.blobs.get(sha) for r in rows for sha in (r["entry"]["blob"],
                                                               *r["entry"]["refs"])}
    return rows, blobs


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, never held in memory at once."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def _write_pack(dest: Path, rows: list[dict[str, Any]], blobs: dict[str, bytes], *,
                declared: dict[str, int] | None = None,
                members: dict[str, tuple[int, io.RawIOBase]] | None = None) -> Path:
    """A pack written the way an attacker would: a consistent manifest (its entries hash
    recomputed) over whatever rows and blobs; ``declared`` overrides a blob's declared size,
    ``members`` a blob member's (size, stream)."""
    entries = b"".join(canonical_json(r) + b"\n" for r in rows)
    sizes = {sha: len(b) for sha, b in blobs.items()} | (declared or {})
    manifest = canonical_json({"format": "cirkit-pack", "version": 1, "entries": len(rows),
                               "entries_sha256": hashlib.sha256(entries).hexdigest(),
                               "blobs": [[s, sizes[s]] for s in sorted(sizes)]})
    with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                 compresslevel=1) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("manifest.json", manifest), ("entries.jsonl", entries)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        for sha in sorted(blobs):
            ti = tarfile.TarInfo(f"objects/{sha[:2]}/{sha[2:]}")
            size, stream = (members or {}).get(sha, (len(blobs[sha]), io.BytesIO(blobs[sha])))
            ti.size = size
            tar.addfile(ti, stream)
    return dest


def _nothing_left(st: Store) -> None:
    assert len(st) == 0 and list(st.blobs.names()) == []
    assert [p.name for p in st.path.iterdir() if p.name.startswith(".unpack-")] == []


def test_a_small_pack_with_a_1_gib_member_fails_early_at_small_memory(tmp_path: Path) -> None:
    rows, blobs = _parts(_record(tmp_path / "a"))
    victim = rows[0]["entry"]["blob"]
    src = _write_pack(tmp_path / "bomb.cirpack", rows, blobs,
                      members={victim: (GIB, _Zeros(GIB))})
    assert src.stat().st_size < 8 * 2**20  # a few MB on disk, 1 GiB inside
    dst = Store(tmp_path / "b")
    tracemalloc.start()
    try:
        with pytest.raises(PackError, match="manifest declares"):
            unpack(src, dst)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"peak {peak:,} bytes"
    _nothing_left(dst)


def test_a_declared_blob_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    rows, blobs = _parts(_record(tmp_path / "a"))
    victim = rows[0]["entry"]["blob"]
    src = _write_pack(tmp_path / "big.cirpack", rows, blobs, declared={victim: GIB})
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match="over the limit"):
        unpack(src, dst)
    _nothing_left(dst)


def test_a_key_that_is_a_path_is_refused(tmp_path: Path) -> None:
    rows, blobs = _parts(_record(tmp_path / "a"))
    rows[0]["key"] = "../../etc/passwd"
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match="not 64 lower-case hex"):
        unpack(_write_pack(tmp_path / "p.cirpack", rows, blobs), dst)
    _nothing_left(dst)


def test_a_real_key_mapped_to_another_answer_is_refused(tmp_path: Path) -> None:
    rows, blobs = _parts(_record(tmp_path / "a"))
    rows[0]["entry"]["blob"], rows[1]["entry"]["blob"] = (rows[1]["entry"]["blob"],
                                                          rows[0]["entry"]["blob"])
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match="answers another question"):
        unpack(_write_pack(tmp_path / "swap.cirpack", rows, blobs), dst)
    _nothing_left(dst)  # no orphan blobs either


def test_an_entry_whose_tool_or_key_lies_is_refused(tmp_path: Path) -> None:
    rows, blobs = _parts(_record(tmp_path / "a"))
    wrong_tool = json.loads(json.dumps(rows[:1]))
    args = {"url": "https://example.org/"}
    wrong_tool[0]["entry"].update(tool="web_visit", args=args)
    wrong_tool[0]["key"] = hashlib.sha256(
        canonical_json({"tool": "web_visit", "args": args})).hexdigest()
    only = {wrong_tool[0]["entry"]["blob"]: blobs[wrong_tool[0]["entry"]["blob"]]}
    with pytest.raises(PackError, match="web_visit entry whose blob answers web_search"):
        unpack(_write_pack(tmp_path / "tool.cirpack", wrong_tool, only), Store(tmp_path / "b"))
    wrong_key = json.loads(json.dumps(rows))
    wrong_key[0]["key"] = wrong_key[1]["key"][::-1]
    with pytest.raises(PackError, match="not the hash of its tool and arguments"):
        unpack(_write_pack(tmp_path / "key.cirpack", wrong_key, blobs), Store(tmp_path / "c"))


def test_a_blob_that_is_not_a_payload_is_refused(tmp_path: Path) -> None:
    rows, _ = _parts(_record(tmp_path / "a", ("alpha",)))
    fake = b'{"evil": true}'
    sha = hashlib.sha256(fake).hexdigest()
    rows[0]["entry"]["blob"] = sha
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match="payload version"):
        unpack(_write_pack(tmp_path / "p.cirpack", rows, {sha: fake}), dst)
    _nothing_left(dst)


def test_a_truncated_pack_leaves_nothing_behind(tmp_path: Path) -> None:
    a = _record(tmp_path / "a", tuple(f"q{i}" for i in range(60)))
    pack(a, tmp_path / "good.cirpack")
    data = (tmp_path / "good.cirpack").read_bytes()
    (tmp_path / "cut.cirpack").write_bytes(data[: len(data) * 9 // 10])
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match=r"truncated|incomplete"):
        unpack(tmp_path / "cut.cirpack", dst)
    _nothing_left(dst)


def test_verify_checks_what_each_entry_means(tmp_path: Path) -> None:
    st = _record(tmp_path / "a")
    (k1, e1), (_, e2) = st.entries()
    assert st.verify().ok
    st.put_entry(k1, Entry(blob=e2.blob, tool=e1.tool, args=e1.args, backend=e1.backend,
                           recorded_at=0.0, latency_ms=0.0))
    st.put_entry("../../etc/passwd", e2)
    r = st.verify()
    assert not r.ok
    assert dict(r.bad_entries).keys() == {k1, "../../etc/passwd"}
    assert "answers another question" in dict(r.bad_entries)[k1]
    assert "not 64 lower-case hex" in dict(r.bad_entries)["../../etc/passwd"]


def test_verify_counts_the_staging_left_by_a_killed_unpack(tmp_path: Path) -> None:
    st = _record(tmp_path / "a")
    (st.path / ".unpack-killed").mkdir()
    r = st.verify()
    assert r.ok and r.temp_files == 1
