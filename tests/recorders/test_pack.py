"""Packs: one deterministic file; unpack merges with dedupe and refuses tampered blobs."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from recorders import InMemoryBackend, PackError, Recorder, Store, pack, read_manifest, unpack
from tests.recorders.store_worker import answer


async def _fill(path: Path, queries: list[str]) -> Store:
    st = Store(path)
    r = Recorder(st, search=InMemoryBackend("web_search", answer), clock=lambda: 0.0)
    for q in queries:
        await r.web_search(q, num_results=2)
    return st


async def test_round_trip_into_a_second_directory(tmp_path: Path) -> None:
    src = await _fill(tmp_path / "a", ["one", "two", "three"])
    res = pack(src, tmp_path / "s.cirpack")
    assert (res.entries, res.blobs) == (3, 3)
    dst = Store(tmp_path / "b")
    u = unpack(tmp_path / "s.cirpack", dst)
    assert (u.entries_added, u.blobs_added) == (3, 3)
    assert dst.verify().ok
    replay = Recorder(dst, mode="replay")
    for q in ["one", "two", "three"]:
        assert (await replay.web_search(q, num_results=2)).from_store
    again = unpack(tmp_path / "s.cirpack", dst)  # dedupe: nothing new
    assert (again.entries_same, again.blobs_present, again.entries_added) == (3, 3, 0)


async def test_same_store_same_pack_bytes(tmp_path: Path) -> None:
    a = await _fill(tmp_path / "a", ["x", "y"])
    b = await _fill(tmp_path / "b", ["y", "x"])  # other order, same calls: same keys and blobs
    assert [(k, e.blob) for k, e in a.entries()] == [(k, e.blob) for k, e in b.entries()]
    # Entries also carry measured latency, so compare packs of one store's content.
    pa = pack(a, tmp_path / "a.cirpack")
    assert pack(a, tmp_path / "a2.cirpack").manifest_sha256 == pa.manifest_sha256
    c = Store(tmp_path / "c")
    unpack(tmp_path / "a.cirpack", c)
    pc = pack(c, tmp_path / "c.cirpack")
    assert (tmp_path / "a.cirpack").read_bytes() == (tmp_path / "c.cirpack").read_bytes()
    assert pc.manifest_sha256 == pa.manifest_sha256
    assert read_manifest(tmp_path / "a.cirpack")["entries"] == 2


async def test_merge_keeps_ours_on_conflict_unless_overwrite(tmp_path: Path) -> None:
    a = await _fill(tmp_path / "a", ["q"])
    pack(a, tmp_path / "a.cirpack")
    b = Store(tmp_path / "b")
    await Recorder(b, search=InMemoryBackend(
        "web_search", lambda args: {"results": [], "raw": "other"})).web_search("q", 2)
    u = unpack(tmp_path / "a.cirpack", b)
    assert u.entries_conflicting == 1
    assert "No results" in (await Recorder(b, mode="replay").web_search("q", 2)).text
    u = unpack(tmp_path / "a.cirpack", b, overwrite=True)
    assert u.entries_replaced == 1
    assert "Index: 0" in (await Recorder(b, mode="replay").web_search("q", 2)).text


def _rewrite_pack(src: Path, dest: Path, tamper: bytes | None) -> None:
    """Copy a pack, replacing the bytes of its first blob (name kept); None flips its last
    byte (same size)."""
    out = io.BytesIO()
    with tarfile.open(src, "r:gz") as tin, tarfile.open(fileobj=out, mode="w") as tout:
        done = False
        for ti in tin:
            data = tin.extractfile(ti).read()  # type: ignore[union-attr]
            if ti.name.startswith("objects/") and not done:
                data = tamper if tamper is not None else data[:-1] + bytes([data[-1] ^ 1])
                done = True
                ti.size = len(data)
            tout.addfile(ti, io.BytesIO(data))
    dest.write_bytes(gzip.compress(out.getvalue()))


async def test_tampered_blob_is_refused(tmp_path: Path) -> None:
    a = await _fill(tmp_path / "a", ["q"])
    pack(a, tmp_path / "a.cirpack")
    _rewrite_pack(tmp_path / "a.cirpack", tmp_path / "bad.cirpack", None)
    dst = Store(tmp_path / "b")
    with pytest.raises(PackError, match="does not hash to its name"):
        unpack(tmp_path / "bad.cirpack", dst)
    assert len(dst) == 0
    _rewrite_pack(tmp_path / "a.cirpack", tmp_path / "short.cirpack", b'{"evil":1}')
    with pytest.raises(PackError, match="is 10 bytes, but its manifest declares"):
        unpack(tmp_path / "short.cirpack", dst)
    assert len(dst) == 0 and list(dst.blobs.names()) == []  # nothing left behind
    assert [p.name for p in dst.path.iterdir() if p.name.startswith(".unpack-")] == []


def test_not_a_pack_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x.cirpack").write_bytes(b"hello")
    with pytest.raises(PackError, match="not a cirkit pack"):
        read_manifest(tmp_path / "x.cirpack")
    with pytest.raises(PackError, match="no pack at"):
        read_manifest(tmp_path / "missing.cirpack")
