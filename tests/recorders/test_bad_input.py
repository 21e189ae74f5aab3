"""Bad input at the recorders level is a RecordersError with a one-line message naming the cause
and a hint naming the fix, never a raw json, tarfile, zlib, UnicodeError, KeyError or
ValueError, and it changes no data: packs that are not packs or whose manifest is malformed,
and tool calls that cannot be made (an empty URL, a query that is not valid Unicode)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from recorders import (
    InMemoryBackend,
    InvalidCallError,
    PackError,
    Recorder,
    RecordersError,
    Store,
    make_key,
    pack,
    read_manifest,
    unpack,
)

SHA = "ab" * 32


def assert_clean(err: BaseException, kind: type[RecordersError]) -> None:
    assert isinstance(err, kind), f"{type(err).__name__}: {err}"
    assert err.message and "\n" not in err.message, err.message
    assert err.hint, err.message


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _answer(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"results": [{"title": str(args.get("query", args.get("url"))), "url": "u",
                         "snippet": "s"}]}


# -- packs -------------------------------------------------------------------------------------

def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def _pack_of(manifest: Any, entries: bytes = b"", *, raw: bytes | None = None) -> bytes:
    """A gzip'd tar holding a manifest (any JSON value, or ``raw`` bytes) and entries.jsonl."""
    body = raw if raw is not None else json.dumps(manifest).encode()
    return gzip.compress(_tar([("manifest.json", body), ("entries.jsonl", entries)]))


def _manifest(**fields: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"format": "cirkit-pack", "version": 1, "entries": 0,
                         "entries_sha256": hashlib.sha256(b"").hexdigest(), "blobs": []}
    m.update(fields)
    return {k: v for k, v in m.items() if v is not _DROP}


_DROP = object()


def _with_entries(lines: list[bytes]) -> bytes:
    data = b"".join(line + b"\n" for line in lines)
    return _pack_of(_manifest(entries=len(lines), entries_sha256=hashlib.sha256(data).hexdigest()),
                    data)


_ENTRY = {"args": {"num_results": 5, "query": "q"}, "backend": "memory", "blob": SHA,
          "latency_ms": 0.0, "recorded_at": 0.0, "refs": [], "status": "ok",
          "tool": "web_search", "version": 1}

NOT_PACKS = [  # (the file's bytes, what the error says)
    pytest.param(b"hello", "not a cirkit pack", id="text"),
    pytest.param(b"", "not a cirkit pack", id="empty"),
    pytest.param(gzip.compress(b"\x00" * 10 + b"not a tar" * 100), "not a cirkit pack",
                 id="gzip-of-junk"),
    pytest.param(_tar([("manifest.json", b"{}")]), "not a cirkit pack", id="tar-not-gzipped"),
    pytest.param(gzip.compress(_tar([("README", b"hi")])), "does not start with manifest.json",
                 id="no-manifest"),
    pytest.param(gzip.compress(_tar([("manifest.json", b"{}" * 5000)]))[:60],
                 "", id="truncated"),
    pytest.param(gzip.compress(_tar([("manifest.json", b"x" * 5000)]))[:20] + b"\xff" * 200,
                 "", id="damaged-gzip"),
]

BAD_MANIFESTS = [  # (the pack's bytes, what the error says)
    pytest.param(_pack_of(None, raw=b"{oops"), "not valid JSON", id="not-json"),
    pytest.param(_pack_of(None, raw=b"\xff\xfe"), "not valid JSON", id="not-utf8"),
    pytest.param(_pack_of([1, 2]), "not a JSON object", id="array"),
    pytest.param(_pack_of("cirkit-pack"), "not a JSON object", id="string"),
    pytest.param(_pack_of(_manifest(format="other")), "pack format 'other'", id="format"),
    pytest.param(_pack_of(_manifest(version=2)), "version 2", id="version"),
    pytest.param(_pack_of(_manifest(entries=_DROP)), "lacks its 'entries' field",
                 id="no-entries"),
    pytest.param(_pack_of(_manifest(blobs=_DROP)), "lacks its 'blobs' field", id="no-blobs"),
    pytest.param(_pack_of(_manifest(entries_sha256=_DROP)), "lacks its 'entries_sha256'",
                 id="no-entries-sha256"),
    pytest.param(_pack_of(_manifest(entries="3")), "not a count", id="entries-string"),
    pytest.param(_pack_of(_manifest(entries=-1)), "not a count", id="entries-negative"),
    pytest.param(_pack_of(_manifest(entries=True)), "not a count", id="entries-bool"),
    pytest.param(_pack_of(_manifest(entries_sha256=123)), "not a sha256", id="sha-number"),
    pytest.param(_pack_of(_manifest(entries_sha256="abc")), "not a sha256", id="sha-short"),
    pytest.param(_pack_of(_manifest(blobs={})), "'blobs' that is not a list", id="blobs-object"),
    pytest.param(_pack_of(_manifest(blobs=[SHA])), "not a [sha256, size] pair",
                 id="blob-not-pair"),
    pytest.param(_pack_of(_manifest(blobs=[["x", 1]])), "not a [sha256, size] pair",
                 id="blob-bad-name"),
    pytest.param(_pack_of(_manifest(blobs=[[SHA, "big"]])), "not a [sha256, size] pair",
                 id="blob-size-string"),
]

BAD_ENTRIES = [  # entries.jsonl lines that match the manifest's hash but are no entries
    pytest.param([b"{oops"], "line 1", id="not-json"),
    pytest.param([b"[1]"], "line 1", id="array"),
    pytest.param([json.dumps({"key": "k", "entry": _ENTRY}).encode(), b'{"entry": {}}'],
                 "line 2", id="no-key"),
    pytest.param([json.dumps({"key": "k", "entry": [1]}).encode()], "not a JSON object",
                 id="entry-array"),
    pytest.param([json.dumps({"key": "k"}).encode()], "not a JSON object but null",
                 id="no-entry"),
    pytest.param([json.dumps({"key": "k", "entry": {**_ENTRY, "blob": 7}}).encode()],
                 "'blob' field that is a number", id="entry-blob-number"),
    pytest.param([json.dumps({"key": "k", "entry": {**_ENTRY, "version": 3}}).encode()],
                 "version 3", id="entry-version"),
]


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A store with one recorded call, for unpacks to be refused into."""
    with Store(tmp_path / "dest") as st:
        Recorder(st, search=InMemoryBackend("web_search", _answer)).call_sync(
            "web_search", {"query": "kept"})
    return tmp_path / "dest"


def _refused(src: Path, dest: Path, says: str) -> None:
    """read_manifest (what inspecting a pack reads) and unpack both refuse ``src`` cleanly,
    and the store unpacked into is left as it was."""
    with Store(dest) as st:
        before = _tree(dest)
        for op in (lambda: read_manifest(src), lambda: unpack(src, st)):
            with pytest.raises(PackError) as ei:
                op()
            assert_clean(ei.value, PackError)
            assert says in ei.value.message
        assert _tree(dest) == before
        assert len(st) == 1 and st.verify().ok


@pytest.mark.parametrize(("data", "says"), NOT_PACKS)
def test_a_file_that_is_not_a_pack(tmp_path: Path, dest: Path, data: bytes, says: str) -> None:
    (tmp_path / "x.cirpack").write_bytes(data)
    _refused(tmp_path / "x.cirpack", dest, says)


def test_a_directory_or_nothing_is_not_a_pack(tmp_path: Path, dest: Path) -> None:
    (tmp_path / "dir.cirpack").mkdir()
    _refused(tmp_path / "dir.cirpack", dest, "not a cirkit pack")
    _refused(tmp_path / "missing.cirpack", dest, "no pack at")


@pytest.mark.parametrize(("data", "says"), BAD_MANIFESTS)
def test_a_malformed_manifest(tmp_path: Path, dest: Path, data: bytes, says: str) -> None:
    (tmp_path / "x.cirpack").write_bytes(data)
    _refused(tmp_path / "x.cirpack", dest, says)


@pytest.mark.parametrize(("lines", "says"), BAD_ENTRIES)
def test_entries_that_are_not_entries(
    tmp_path: Path, dest: Path, lines: list[bytes], says: str
) -> None:
    (tmp_path / "x.cirpack").write_bytes(_with_entries(lines))
    read_manifest(tmp_path / "x.cirpack")  # the manifest itself is well formed
    with Store(dest) as st:
        before = _tree(dest)
        with pytest.raises(PackError) as ei:
            unpack(tmp_path / "x.cirpack", st)
        assert_clean(ei.value, PackError)
        assert "entries.jsonl" in ei.value.message and says in ei.value.message
        assert _tree(dest) == before


def test_a_real_pack_still_unpacks(tmp_path: Path, dest: Path) -> None:
    """The checks refuse only what is wrong: a pack written by pack() goes in whole."""
    with Store(dest, readonly=True) as st:
        pack(st, tmp_path / "ok.cirpack")
    assert read_manifest(tmp_path / "ok.cirpack")["entries"] == 1
    with Store(tmp_path / "other") as other:
        assert unpack(tmp_path / "ok.cirpack", other).entries_added == 1


# -- tool calls that cannot be made --------------------------------------------------------------

BAD_CALLS = [  # (tool, args, what the error says)
    pytest.param("web_visit", {"url": ""}, "non-empty string 'url'", id="empty-url"),
    pytest.param("web_visit", {"url": "  \n "}, "non-empty string 'url'", id="blank-url"),
    pytest.param("web_visit", {}, "non-empty string 'url'", id="no-url"),
    pytest.param("web_visit", {"url": "https://x.org/\ud800"}, "lone surrogate",
                 id="url-surrogate"),
    pytest.param("web_visit", {"url": "http://[::1/page"}, "not a valid URL", id="bad-ipv6"),
    pytest.param("web_visit", {"url": "http://x.org:99999/"}, "not a valid URL",
                 id="bad-port"),
    pytest.param("web_search", {"query": "\ud800"}, "lone surrogate", id="query-surrogate"),
    pytest.param("web_search", {"query": "night \udfff watch", "num_results": 3},
                 "lone surrogate", id="query-low-surrogate"),
    pytest.param("web_search", {"query": 3}, "string 'query'", id="query-number"),
    pytest.param("web_search", {"query": "q", "num_results": 0}, "positive int",
                 id="num-zero"),
    pytest.param("web_fetch", {"url": "https://x.org/"}, "unknown tool", id="unknown-tool"),
]


@pytest.mark.parametrize(("tool", "args", "says"), BAD_CALLS)
def test_make_key_refuses_a_call_that_cannot_be_made(
    tool: str, args: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidCallError) as ei:
        make_key(tool, args)
    assert_clean(ei.value, InvalidCallError)
    assert says in ei.value.message
    assert isinstance(ei.value, ValueError)  # what callers catching bad arguments expect


@pytest.mark.parametrize("mode", ["auto", "record", "replay"])
@pytest.mark.parametrize(("tool", "args", "says"), BAD_CALLS)
def test_the_recorder_refuses_a_call_that_cannot_be_made(
    tmp_path: Path, mode: str, tool: str, args: dict[str, Any], says: str
) -> None:
    with Store(tmp_path / "s") as st:
        search, visit = InMemoryBackend("web_search", _answer), InMemoryBackend("web_visit",
                                                                                 _answer)
        Recorder(st, search=search, visit=visit).call_sync("web_search", {"query": "kept"})
        before = _tree(tmp_path / "s")
        rec = Recorder(st, search=search, visit=visit, mode=mode)
        with pytest.raises(InvalidCallError) as ei:
            rec.call_sync(tool, args)
        assert_clean(ei.value, InvalidCallError)
        assert says in ei.value.message or "unknown tool" in ei.value.message
        assert search.calls == 1 and visit.calls == 0  # no backend was asked
        assert rec.keys_used == [] and _tree(tmp_path / "s") == before


@pytest.mark.parametrize("args", [{"model": "m", "x": float("nan")}, {"model": "m", "x": {1}},
                                  {"model": "m", "p": "\ud800"}],
                         ids=["nan", "set", "surrogate"])
def test_memo_refuses_arguments_json_cannot_hold(tmp_path: Path, args: dict[str, Any]) -> None:
    async def fetch() -> Any:
        raise AssertionError("never asked")

    with Store(tmp_path / "s") as st, pytest.raises(InvalidCallError) as ei:
        import asyncio

        asyncio.run(Recorder(st).memo("completion", args, fetch, backend="x"))
    assert_clean(ei.value, InvalidCallError)
