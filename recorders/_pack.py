"""Packs: a whole store as one portable, deterministic file (no live SQLite inside).

A pack is a gzip'd tar with fixed metadata (mtime 0, uid 0, sorted members), so the same store
gives the same bytes. Members, in order::

    manifest.json       {"format": "cirkit-pack", "version", "entries", "entries_sha256", "blobs"}
                        (+ "renderer" for a store rendered under a version other than 1)
    entries.jsonl       one {"key", "entry"} per line, sorted by key
    objects/ab/cdef…    every blob the entries name

Unpacking merges into a store with dedupe, rehashes every blob and refuses one whose bytes do
not match its name; entries land only after all their blobs did.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._canonical import canonical_json
from ._errors import PackError, StoreError
from ._render import RENDERER_VERSIONS
from ._store import Entry, Store

__all__ = ["PACK_VERSION", "PackResult", "UnpackResult", "pack", "pack_renderer", "read_manifest",
           "unpack"]

PACK_VERSION = 1
_OBJECT = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})$")
_SHA256 = re.compile(r"[0-9a-f]{64}")


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


def _entries(src: Path, data: bytes) -> list[tuple[str, Entry]]:
    """entries.jsonl's rows; PackError naming the line for one that is not a row."""
    rows = []
    for n, line in enumerate(data.splitlines(), start=1):
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
                raise ValueError("not a {\"key\", \"entry\"} object")
            rows.append((obj["key"], Entry.from_json(obj.get("entry"), key=obj["key"])))
        except (ValueError, StoreError) as e:
            why = e.message if isinstance(e, StoreError) else str(e)
            raise PackError(f"{src}: entries.jsonl line {n}: {why}", hint=_FRESH_COPY) from None
    return rows


def unpack(src: str | Path, store: Store, *, overwrite: bool = False) -> UnpackResult:
    """Merge a pack into ``store``. Raises PackError, naming the member, on any mismatch.
    An empty store takes the pack's renderer version; a store with entries must have it."""
    src = Path(src)
    manifest = read_manifest(src)
    renderer = pack_renderer(manifest)
    adopt = renderer != store.renderer and manifest["entries"] > 0
    expected = {sha: size for sha, size in manifest["blobs"]}
    result = UnpackResult()
    rows: list[tuple[str, Entry]] = []
    seen: set[str] = set()
    try:
        with _open(src) as tar:
            for ti in tar:
                if ti.name == "manifest.json":
                    continue
                if ti.name == "entries.jsonl":
                    data = _read(tar, ti)
                    if hashlib.sha256(data).hexdigest() != manifest["entries_sha256"]:
                        raise PackError(f"{src}: entries.jsonl does not match its manifest hash")
                    rows = _entries(src, data)
                    if adopt and len(store):  # checked before any blob is written
                        raise PackError(
                            f"{src} holds answers rendered under renderer version {renderer}, "
                            f"but the store {store.path} renders under version {store.renderer}",
                            hint="unpack it into a new or empty store, which takes the pack's "
                                 "renderer version")
                    continue
                m = _OBJECT.match(ti.name)
                if m is None or not ti.isfile():
                    raise PackError(f"{src}: unexpected member {ti.name!r}; refusing the pack")
                sha = m.group(1) + m.group(2)
                data = _read(tar, ti)
                if hashlib.sha256(data).hexdigest() != sha or sha not in expected:
                    raise PackError(
                        f"{src}: blob {sha} does not hash to its name; refusing it",
                        hint="the pack is corrupt or was tampered with; get a fresh copy")
                if store.blobs.exists(sha):
                    result.blobs_present += 1
                else:
                    store.blobs.put(data)
                    result.blobs_added += 1
                seen.add(sha)
    except _UNREADABLE as e:
        raise PackError(f"{src} is truncated or unreadable: {e}", hint=_FRESH_COPY) from None
    missing = sorted(set(expected) - seen)
    if missing or len(rows) != manifest["entries"]:
        raise PackError(f"{src} is incomplete: {len(missing)} blob(s) of its manifest missing")
    if adopt:  # an empty store shows the pack's answers as its source did
        store.set_renderer(renderer)
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
        try:
            store.put_entry(key, entry)
        except StoreError as e:
            raise PackError(f"{src}: entry {key} names a blob the pack lacks") from e
    return result
