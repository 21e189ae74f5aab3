"""Packs: a whole store as one portable, deterministic file (no live SQLite inside).

A pack is a gzip'd tar with fixed metadata (mtime 0, uid 0, sorted members), so the same store
gives the same bytes. Members, in order::

    manifest.json       {"format": "cirkit-pack", "version", "entries", "entries_sha256", "blobs"}
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._canonical import canonical_json
from ._errors import PackError, StoreError
from ._store import Entry, Store

__all__ = ["PACK_VERSION", "PackResult", "UnpackResult", "pack", "read_manifest", "unpack"]

PACK_VERSION = 1
_OBJECT = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})$")


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
    manifest = canonical_json({
        "format": "cirkit-pack",
        "version": PACK_VERSION,
        "entries": len(rows),
        "entries_sha256": hashlib.sha256(entries_bytes).hexdigest(),
        "blobs": [[sha, store.blobs.path(sha).stat().st_size] for sha in names],
    })
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


def _open(src: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(src, mode="r:gz")
    except FileNotFoundError:
        raise PackError(f"no pack at {src}") from None
    except (tarfile.TarError, OSError, EOFError) as e:
        raise PackError(f"{src} is not a cirkit pack: {e}") from e


def _read(tar: tarfile.TarFile, ti: tarfile.TarInfo) -> bytes:
    f = tar.extractfile(ti)
    if f is None:
        raise PackError(f"pack member {ti.name} is not a regular file")
    return f.read()


def read_manifest(src: str | Path) -> dict[str, Any]:
    with _open(Path(src)) as tar:
        first = tar.next()
        if first is None or first.name != "manifest.json":
            raise PackError(f"{src} does not start with manifest.json: not a cirkit pack")
        manifest: dict[str, Any] = json.loads(_read(tar, first))
    if manifest.get("format") != "cirkit-pack" or manifest.get("version") != PACK_VERSION:
        raise PackError(
            f"{src}: pack format {manifest.get('format')!r} version {manifest.get('version')!r}; "
            f"this cirkit reads cirkit-pack version {PACK_VERSION}", hint="upgrade cirkit")
    return manifest


def unpack(src: str | Path, store: Store, *, overwrite: bool = False) -> UnpackResult:
    """Merge a pack into ``store``. Raises PackError, naming the member, on any mismatch."""
    src = Path(src)
    manifest = read_manifest(src)
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
                    for line in data.splitlines():
                        obj = json.loads(line)
                        rows.append((obj["key"], Entry.from_json(obj["entry"])))
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
    except (tarfile.TarError, EOFError, OSError) as e:
        raise PackError(f"{src} is truncated or unreadable: {e}") from e
    missing = sorted(set(expected) - seen)
    if missing or len(rows) != manifest["entries"]:
        raise PackError(f"{src} is incomplete: {len(missing)} blob(s) of its manifest missing")
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
