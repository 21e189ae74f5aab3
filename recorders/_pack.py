"""Packs: a whole store as one portable, deterministic file (no live SQLite inside).

A pack is a gzip'd tar with fixed metadata (mtime 0, uid 0, sorted members), so the same store
gives the same bytes. Members, in order::

    manifest.json       {"format": "cirkit-pack", "version", "entries", "entries_sha256", "blobs"}
                        (+ "renderer" for a store rendered under a version other than 1)
    entries.jsonl       one {"key", "entry"} per line, sorted by key
    objects/ab/cdef…    every blob the entries name

Unpacking treats the pack as untrusted: every member is streamed within the size its manifest
declares (and the ``MAX_*`` limits), rehashed, and every entry's meaning checked (its key is the
hash of its arguments, its blob answers them) in a staging directory; only a pack that passes
in full is merged, with dedupe, blobs before entries.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._canonical import canonical_json
from ._errors import PackError, StoreError
from ._payload import payload_problem
from ._readonly import read_only_error
from ._render import RENDERER_VERSIONS
from ._store import Entry, Store

__all__ = ["MAX_BLOB_BYTES", "MAX_ENTRIES_BYTES", "MAX_ENTRY_LINE", "MAX_MANIFEST_BYTES",
           "PACK_VERSION", "PackResult", "UnpackResult", "pack", "pack_renderer",
           "read_manifest", "unpack"]

PACK_VERSION = 1
_OBJECT = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})$")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Hard limits on what an untrusted pack may make us read (declared sizes are limits too).
MAX_MANIFEST_BYTES = 256 * 2**20  # about 2.5 million blobs listed
MAX_ENTRIES_BYTES = 2**30  # entries.jsonl in all
MAX_ENTRY_LINE = 16 * 2**20  # one entry (its arguments hold at most a code block or a prompt)
MAX_BLOB_BYTES = 256 * 2**20  # one blob (a page's raw bytes are capped at 5 MiB by default)


@dataclass(slots=True)
class PackResult:
    path: str
    entries: int
    blobs: int
    bytes: int
    manifest_sha256: str


@dataclass(slots=True)
class UnpackResult:
    entries_added: int = 0
    entries_same: int = 0
    entries_conflicting: int = 0  # same key, other blob: kept ours unless overwrite
    entries_replaced: int = 0
    blobs_added: int = 0
    blobs_present: int = 0


def _member(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


def pack(store: Store, dest: str | Path) -> PackResult:
    """Write ``dest`` atomically (temp file + rename); return what went in."""
    dest = Path(dest)
    rows: list[bytes] = []
    blobs: set[str] = set()
    for key, entry in store.entries():
        rows.append(canonical_json({"key": key, "entry": entry.to_json()}) + b"\n")
        blobs.update((entry.blob, *entry.refs))
    entries_bytes = b"".join(rows)
    names = sorted(blobs)
    meta: dict[str, Any] = {
        "format": "cirkit-pack",
        "version": PACK_VERSION,
        "entries": len(rows),
        "entries_sha256": hashlib.sha256(entries_bytes).hexdigest(),
        "blobs": [[sha, store.blobs.path(sha).stat().st_size] for sha in names],
    }
    if store.renderer != 1:  # a version-1 store packs to the bytes it always did
        meta["renderer"] = store.renderer
    manifest = canonical_json(meta)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-pack-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_member("manifest.json", len(manifest)), io.BytesIO(manifest))
            tar.addfile(_member("entries.jsonl", len(entries_bytes)), io.BytesIO(entries_bytes))
            for sha in names:
                data = store.blobs.get(sha)  # verified: a corrupt store is never shipped
                tar.addfile(_member(f"objects/{sha[:2]}/{sha[2:]}", len(data)), io.BytesIO(data))
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return PackResult(str(dest), len(rows), len(names), dest.stat().st_size,
                      hashlib.sha256(manifest).hexdigest())


# What reading a damaged or foreign file as a gzip'd tar raises (zlib's own error included).
_UNREADABLE = (tarfile.TarError, OSError, EOFError, zlib.error)
_FRESH_COPY = "the pack is damaged or was not written by cirkit; get a fresh copy"


def _open(src: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(src, mode="r:gz")
    except FileNotFoundError:
        raise PackError(f"no pack at {src}", hint="check the path") from None
    except _UNREADABLE as e:
        raise PackError(f"{src} is not a cirkit pack: {e}",
                        hint="pass a file written by pack()") from None


def _read(tar: tarfile.TarFile, ti: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(ti)
    if f is None:
        raise PackError(f"pack member {ti.name} is not a regular file")
    return f.read()


def read_manifest(src: str | Path) -> dict[str, Any]:
    """The pack's manifest, checked: PackError for a file that is not a pack of this version
    or whose manifest is malformed (not JSON, a field missing or of the wrong type)."""
    with _open(Path(src)) as tar:
        try:
            first = tar.next()
            if first is None or first.name != "manifest.json":
                raise PackError(f"{src} does not start with manifest.json: not a cirkit pack",
                                hint="pass a file written by pack()")
            if first.size > MAX_MANIFEST_BYTES:
                raise PackError(f"{src}: manifest.json is {first.size:,} bytes, over the "
                                f"limit of {MAX_MANIFEST_BYTES:,} (MAX_MANIFEST_BYTES)",
                                hint=_FRESH_COPY)
            data = _read(tar, first)
        except _UNREADABLE as e:
            raise PackError(f"{src} is truncated or unreadable: {e}", hint=_FRESH_COPY) from None
    try:
        manifest = json.loads(data)
    except ValueError as e:  # not JSON, or not UTF-8
        raise PackError(f"{src}: manifest.json is not valid JSON ({e})",
                        hint=_FRESH_COPY) from None
    if not isinstance(manifest, dict):
        raise PackError(f"{src}: manifest.json is not a JSON object", hint=_FRESH_COPY)
    if manifest.get("format") != "cirkit-pack" or manifest.get("version") != PACK_VERSION:
        raise PackError(
            f"{src}: pack format {manifest.get('format')!r} version {manifest.get('version')!r}; "
            f"this cirkit reads cirkit-pack version {PACK_VERSION}", hint="upgrade cirkit")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise PackError(f"{src}: manifest.json {problem}", hint=_FRESH_COPY)
    return manifest


def pack_renderer(manifest: dict[str, Any]) -> int:
    """The renderer version the packed store was rendered under (1 if the manifest names
    none); create the store a pack goes into with it (``Store(path, renderer=...)``)."""
    renderer: int = manifest.get("renderer", 1)
    return renderer


def _manifest_problem(m: dict[str, Any]) -> str | None:
    """What is wrong with a manifest's fields, or None."""
    renderer = m.get("renderer", 1)
    if type(renderer) is not int or renderer not in RENDERER_VERSIONS:
        return (f"names renderer version {renderer!r}; this cirkit renders versions "
                + ", ".join(map(str, RENDERER_VERSIONS)))
    for name in ("entries", "entries_sha256", "blobs"):
        if name not in m:
            return f"lacks its {name!r} field"
    entries, digest, blobs = m["entries"], m["entries_sha256"], m["blobs"]
    if type(entries) is not int or entries < 0:
        return f"has 'entries' {entries!r}, not a count"
    if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
        return f"has 'entries_sha256' {digest!r}, not a sha256"
    if not isinstance(blobs, list):
        return "has 'blobs' that is not a list"
    for item in blobs:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and _SHA256.fullmatch(item[0]) is not None and type(item[1]) is int
                and item[1] >= 0):
            return f"lists the blob {item!r}, not a [sha256, size] pair"
    return None


def _row(src: Path, n: int, line: bytes) -> tuple[str, Entry]:
    """One entries.jsonl row; PackError naming the line for one that is not a row."""
    try:
        obj = json.loads(line)
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise ValueError("not a {\"key\", \"entry\"} object")
        return obj["key"], Entry.from_json(obj.get("entry"), key=obj["key"][:80])
    except (ValueError, StoreError) as e:
        why = e.message if isinstance(e, StoreError) else str(e)
        raise PackError(f"{src}: entries.jsonl line {n}: {why}", hint=_FRESH_COPY) from None


def _read_entries(src: Path, tar: tarfile.TarFile, ti: tarfile.TarInfo,
                  manifest: dict[str, Any]) -> list[tuple[str, Entry]]:
    """entries.jsonl, streamed line by line within its limits, checked against the manifest."""
    if ti.size > MAX_ENTRIES_BYTES:
        raise _refuse(src, f"entries.jsonl is {ti.size:,} bytes, over the limit of "
                           f"{MAX_ENTRIES_BYTES:,} (MAX_ENTRIES_BYTES)")
    f = tar.extractfile(ti)
    if f is None:
        raise _refuse(src, "entries.jsonl is not a regular file")
    h = hashlib.sha256()
    rows: list[tuple[str, Entry]] = []
    keys: set[str] = set()
    while line := f.readline(MAX_ENTRY_LINE + 1):
        h.update(line)
        if len(line) > MAX_ENTRY_LINE:
            raise _refuse(src, f"entries.jsonl line {len(rows) + 1} is over the limit of "
                               f"{MAX_ENTRY_LINE:,} bytes (MAX_ENTRY_LINE)")
        if len(rows) >= manifest["entries"]:
            raise _refuse(src, f"entries.jsonl holds more than the {manifest['entries']} "
                               "entries its manifest declares")
        key, entry = _row(src, len(rows) + 1, line)
        if key in keys:
            raise _refuse(src, f"entries.jsonl holds the key {key[:80]!r} twice")
        keys.add(key)
        rows.append((key, entry))
    if h.hexdigest() != manifest["entries_sha256"]:
        raise _refuse(src, "entries.jsonl does not match its manifest hash")
    return rows


def _refuse(src: Path, why: str) -> PackError:
    return PackError(f"{src}: {why}; refusing the pack (nothing was merged)",
                     hint="the pack is damaged or was tampered with; get a fresh copy")


def _stage_blob(src: Path, tar: tarfile.TarFile, ti: tarfile.TarInfo, sha: str, size: int,
                staging: Path) -> Path:
    """Stream one blob member to a staging file: at most its declared size is read, and its
    bytes must hash to its name."""
    if ti.size != size:
        raise _refuse(src, f"blob {sha} is {ti.size:,} bytes, but its manifest declares "
                           f"{size:,}")
    f = tar.extractfile(ti)
    if f is None:
        raise _refuse(src, f"member {ti.name} is not a regular file")
    h = hashlib.sha256()
    dest = staging / sha
    left = size
    with open(dest, "wb") as out:
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise _refuse(src, f"blob {sha} is truncated")
            left -= len(chunk)
            h.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())  # it is renamed into the store as it is
    if h.hexdigest() != sha:
        raise _refuse(src, f"blob {sha} does not hash to its name")
    return dest


def _stage(src: Path, manifest: dict[str, Any], staging: Path
           ) -> tuple[list[tuple[str, Entry]], dict[str, Path]]:
    """Read the whole pack into ``staging``, every limit and hash checked as it streams."""
    expected: dict[str, int] = {}
    for sha, size in manifest["blobs"]:
        if sha in expected:
            raise _refuse(src, f"its manifest lists the blob {sha} twice")
        if size > MAX_BLOB_BYTES:
            raise _refuse(src, f"its manifest declares the blob {sha} of {size:,} bytes, over "
                               f"the limit of {MAX_BLOB_BYTES:,} (MAX_BLOB_BYTES)")
        expected[sha] = size
    rows: list[tuple[str, Entry]] | None = None
    staged: dict[str, Path] = {}
    try:
        with _open(src) as tar:
            for ti in tar:
                if ti.name == "manifest.json":
                    continue
                if ti.name == "entries.jsonl" and rows is None:
                    rows = _read_entries(src, tar, ti, manifest)
                    named = {sha for _, e in rows for sha in (e.blob, *e.refs)}
                    if named != set(expected):
                        raise _refuse(src, "its manifest lists other blobs than its entries "
                                           "name")
                    continue
                m = _OBJECT.match(ti.name)
                if m is None or not ti.isfile() or rows is None:
                    raise _refuse(src, f"unexpected member {ti.name[:200]!r}")
                sha = m.group(1) + m.group(2)
                if sha not in expected or sha in staged:
                    raise _refuse(src, f"blob {sha} is not listed once in its manifest")
                staged[sha] = _stage_blob(src, tar, ti, sha, expected[sha], staging)
    except _UNREADABLE as e:
        raise PackError(f"{src} is truncated or unreadable: {e}; nothing was merged",
                        hint=_FRESH_COPY) from None
    missing = sorted(set(expected) - set(staged))
    if rows is None or missing or len(rows) != manifest["entries"]:
        raise _refuse(src, f"it is incomplete ({len(missing)} blob(s) of its manifest "
                           "missing, or entries missing)")
    for key, entry in rows:  # meaning, not only bytes
        why = payload_problem(key, entry.tool, entry.args, entry.refs,
                              staged[entry.blob].read_bytes())
        if why is not None:
            raise _refuse(src, f"entry {key[:80]!r} {why}")
    return rows, staged


def unpack(src: str | Path, store: Store, *, overwrite: bool = False) -> UnpackResult:
    """Merge a pack into ``store``: staged in a temp directory of the store and checked in
    full (hashes, declared sizes, every entry's meaning) before anything is merged, so a
    refused or truncated pack leaves nothing behind. Raises PackError naming the cause.
    An empty store takes the pack's renderer version; a store with entries must have it."""
    src = Path(src)
    if store.readonly:
        raise read_only_error()
    manifest = read_manifest(src)
    renderer = pack_renderer(manifest)
    adopt = renderer != store.renderer and manifest["entries"] > 0
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=store.path))
    try:
        rows, staged = _stage(src, manifest, staging)
        if adopt and len(store):  # checked before anything is merged
            raise PackError(
                f"{src} holds answers rendered under renderer version {renderer}, but the "
                f"store {store.path} renders under version {store.renderer}",
                hint="unpack it into a new or empty store, which takes the pack's renderer "
                     "version")
        if adopt:  # an empty store shows the pack's answers as its source did
            store.set_renderer(renderer)
        result = UnpackResult()
        for sha in sorted(staged):  # blobs first: an entry lands only after its blobs
            if store.blobs.put_file(sha, staged[sha]):
                result.blobs_added += 1
            else:
                result.blobs_present += 1
        for key, entry in rows:
            old = store.get_entry(key)
            if old is None:
                result.entries_added += 1
            elif old.blob == entry.blob:
                result.entries_same += 1
                continue
            elif overwrite:
                result.entries_replaced += 1
            else:
                result.entries_conflicting += 1
                continue
            store.put_entry(key, entry)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
