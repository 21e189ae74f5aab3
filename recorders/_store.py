"""The store: content-addressed blobs plus a diskcache index from request key to entry.

Layout::

    store.json          {"format": "cirkit-store", "version": 1, "renderer": 2}
    objects/ab/cdef…    blobs (sha256 of their bytes)
    index/              diskcache: key -> entry (JSON, eviction off, no expiry)

A record writes its blob(s) first, then the index entry in one SQLite transaction, so a process
killed at any point leaves every finished entry readable and never a half entry (at worst an
unreferenced blob, which ``verify`` counts and ``gc`` could remove).
"""

from __future__ import annotations

import difflib
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import diskcache
from filelock import FileLock

from ._blobs import BlobStore
from ._canonical import canonical_json, json_loads
from ._errors import BlobCorruptError, StoreError
from ._payload import entry_key, payload_problem, read_payload
from ._readonly import ReadOnlyIndex, read_only_error
from ._render import RENDERER_VERSION, RENDERER_VERSIONS

__all__ = ["ENTRY_VERSION", "NEAREST_CHARS", "NEAREST_SCAN", "STORE_VERSION", "Entry", "Near",
           "Store", "StoreInfo", "VerifyReport"]

STORE_VERSION = 1
ENTRY_VERSION = 1
_MARKER = "store.json"
NEAREST_SCAN = 5_000  # entries a replay miss compares its call with, at most
NEAREST_CHARS = 2_000  # characters of each call's arguments compared (difflib is quadratic)
_MISSING: Any = object()  # what the index gives for a key it does not hold


class _JSONDisk(diskcache.Disk):  # type: ignore[misc]
    """Keys are str, values are JSON text: nothing is ever pickled (CVE-2025-69872)."""

    def put(self, key: Any) -> Any:
        if not isinstance(key, str):
            raise TypeError(f"store keys are str, got {type(key).__name__}")
        return super().put(key)

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if read:
            raise TypeError("the store index holds JSON values only")
        return super().store(json.dumps(value, sort_keys=True, ensure_ascii=False), read, key)

    def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
        return json_loads(diskcache.Disk.fetch(self, mode, filename, value, read))


@dataclass(slots=True)
class Entry:
    """What the index says about one recorded call."""

    blob: str
    tool: str
    args: dict[str, Any]
    backend: str
    recorded_at: float
    latency_ms: float
    status: str = "ok"
    refs: tuple[str, ...] = ()  # further blobs the payload names (e.g. a page's raw bytes)
    version: int = ENTRY_VERSION

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["refs"] = list(self.refs)
        return d

    @classmethod
    def from_json(cls, d: Any, key: str | None = None) -> Entry:
        """The entry an index value holds (``key`` names it in errors). Anything else, such as
        a value that is not a JSON object, another version, or a field missing or of the
        wrong type, raises StoreError naming the cause."""
        try:  # the fields unconverted (the JSON decoder made them); on replay's path
            if d["version"] == ENTRY_VERSION:
                blob, tool, args, backend = d["blob"], d["tool"], d["args"], d["backend"]
                at, ms = d["recorded_at"], d["latency_ms"]
                status = d.get("status", "ok")
                refs = d.get("refs", [])
                if (type(blob) is str and type(tool) is str and type(args) is dict
                        and type(backend) is str and type(status) is str
                        and type(at) in _NUMBER and type(ms) in _NUMBER and type(refs) is list
                        and (not refs or all(type(r) is str for r in refs))):
                    return cls(blob, tool, args, backend, at, ms, status,
                               tuple(refs) if refs else (), ENTRY_VERSION)
        except (KeyError, TypeError):  # not an object, or a field missing: said below
            pass
        raise _not_an_entry(d, key)


_NUMBER = (int, float)
_FIELD_TYPES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("blob", (str,)), ("tool", (str,)), ("args", (dict,)), ("backend", (str,)),
    ("recorded_at", _NUMBER), ("latency_ms", _NUMBER), ("status", (str,)), ("refs", (list,)),
)


def _json_type(value: Any) -> str:
    """A JSON value's type in JSON's words."""
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _not_an_entry(d: Any, key: str | None) -> StoreError:
    """What is wrong with an index value that ``Entry.from_json`` refused."""
    if type(d) is not dict:
        return _bad_entry(key, f"is not a JSON object but {_json_type(d)}")
    version = d.get("version")
    if version != ENTRY_VERSION:
        return StoreError(
            f"{_entry_name(key)} has version {version!r}; this cirkit reads version "
            f"{ENTRY_VERSION}", hint="upgrade cirkit, or re-record the store")
    for name, types in _FIELD_TYPES:
        if name not in d:
            if name not in ("status", "refs"):  # those two have defaults
                return _bad_entry(key, f"lacks its {name!r} field")
        elif type(d[name]) not in types:
            return _bad_entry(key, f"has a {name!r} field that is {_json_type(d[name])}")
    return _bad_entry(key, "has a 'refs' entry that is not a string")


def _entry_name(key: str | None) -> str:
    return "index entry" if key is None else f"index entry {key}"


def _bad_entry(key: str | None, what: str) -> StoreError:
    return StoreError(f"{_entry_name(key)} {what}",
                      hint="re-record the call (mode record), or restore the store from a copy "
                           "or a pack", setting="mode")


def _lost_index(path: Path, what: str) -> StoreError:
    """A store whose index does not match what store.json and its blobs say it holds."""
    return StoreError(f"the store {path} has lost its index: {what}; refusing to use it, so "
                      "that nothing is written beside the recorded answers",
                      hint=f"rebuild the index from the blobs with `cirkit store reindex {path}`"
                           " (recorders.reindex), or restore the store from a copy or a pack",
                      setting="store")


def _unreadable_index(path: Path, e: Exception) -> StoreError:
    """What a SQLite error reading (or opening) the index becomes."""
    return StoreError(f"cannot read the index of the store {path} (index/cache.db): {e}",
                      hint="if the file is damaged, restore the store from a copy or a pack, "
                           "or move index/ aside and rebuild it from the blobs with `cirkit "
                           "store reindex`", setting="store")


@dataclass(slots=True, frozen=True)
class Near:
    """A recorded call close to a missed one, and which fields differ."""

    key: str
    args: dict[str, Any]
    score: float
    differs: tuple[str, ...]


@dataclass(slots=True)
class StoreInfo:
    path: str
    version: int
    entries: int
    by_tool: dict[str, int]
    by_backend: dict[str, int]
    blobs: int
    blob_bytes: int
    renderer: int = 1  # the renderer version its answers are shown under


@dataclass(slots=True)
class VerifyReport:
    blobs_checked: int = 0
    entries_checked: int = 0
    corrupt_blobs: list[str] = field(default_factory=list)
    missing_blobs: list[tuple[str, str]] = field(default_factory=list)  # (key, blob)
    bad_entries: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    unreferenced_blobs: int = 0
    unindexed_answers: list[str] = field(default_factory=list)  # reindex restores them
    temp_files: int = 0

    @property
    def index_lost(self) -> bool:
        """An empty index beside recorded answers: the index was lost, not the answers (a
        record killed mid-way leaves at most a few unindexed answers beside its entries)."""
        return self.entries_checked == 0 and bool(self.unindexed_answers)

    @property
    def ok(self) -> bool:
        return not (self.corrupt_blobs or self.missing_blobs or self.bad_entries
                    or self.index_lost)


def _open_index(directory: Path) -> diskcache.Cache:
    return diskcache.Cache(str(directory), disk=_JSONDisk, eviction_policy="none",
                           size_limit=2**62, cull_limit=0, statistics=False, tag_index=False)


class Store:
    """A directory holding recorded tool responses. Safe to share between processes.

    Every way of reading it raises StoreError, naming the cause, for a store it cannot read:
    an index SQLite cannot read, an entry that is not one, a corrupt or missing blob."""

    def __init__(self, path: str | Path, *, create: bool = True, readonly: bool = False,
                 repair: bool = False, renderer: int = RENDERER_VERSION) -> None:
        """``readonly``: read an existing store without changing one byte of it (what strict
        replay, ``store info`` and packing need); any write raises StoreError. ``repair``:
        open a store whose index is lost or does not match its blobs, to rebuild it
        (``reindex``); every other use refuses such a store rather than write beside it.
        ``renderer``: the renderer version a store created here is rendered under (an existing
        store keeps its own, ``self.renderer``)."""
        self.path = Path(path)
        self.readonly = readonly
        marker = self.path / _MARKER
        if not marker.exists():
            if not create or readonly:
                raise StoreError(
                    f"{self.path} is not a cirkit store (no {_MARKER})",
                    hint="check the path, or record into it first (it is created on demand)",
                    setting="store",
                )
            self._init(renderer)
        #: The renderer version its answers are shown under (1 for a store that names none:
        #: it was recorded before the renderer had a second version).
        self.renderer = self._check_marker(marker)
        if not repair and not (self.path / "index" / "cache.db").is_file():
            raise _lost_index(self.path, "its index (index/cache.db) is missing")
        self.blobs = BlobStore(self.path / "objects", readonly=readonly)
        try:
            if readonly:
                disk = _JSONDisk(str(self.path / "index"))
                self._index: Any = ReadOnlyIndex(self.path / "index", disk.fetch)
            else:
                self._index = _open_index(self.path / "index")
        except sqlite3.Error as e:
            self.blobs.close()
            raise _unreadable_index(self.path, e) from None

    def _init(self, renderer: int) -> None:
        # diskcache #266: first-time initialisation races between processes; serialise it.
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the store at {self.path}: {e.strerror}",
                             hint="choose a store directory you can create and write to",
                             setting="store") from e
        with FileLock(str(self.path / ".init.lock")):
            marker = self.path / _MARKER
            if marker.exists():
                return
            (self.path / "objects").mkdir(exist_ok=True)
            try:
                _open_index(self.path / "index").close()
            except sqlite3.Error as e:
                raise _unreadable_index(self.path, e) from None
            tmp = marker.with_suffix(".tmp")
            meta = {"format": "cirkit-store", "version": STORE_VERSION, "renderer": renderer}
            tmp.write_bytes(canonical_json(meta))
            tmp.replace(marker)

    def _check_marker(self, marker: Path) -> int:
        try:
            meta = json.loads(marker.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise StoreError(f"{marker} is unreadable: {e}") from e
        if not isinstance(meta, dict):
            raise StoreError(f"{marker} is not a JSON object but {_json_type(meta)}",
                             hint="check the path: a store's store.json is written by cirkit")
        if meta.get("format") != "cirkit-store" or meta.get("version") != STORE_VERSION:
            raise StoreError(
                f"{self.path} holds a store of format {meta.get('format')!r} version "
                f"{meta.get('version')!r}; this cirkit reads cirkit-store version {STORE_VERSION}",
                hint="upgrade cirkit",
            )
        renderer = meta.get("renderer", 1)
        if type(renderer) is not int or renderer not in RENDERER_VERSIONS:
            raise StoreError(
                f"{self.path} is rendered under renderer version {renderer!r}; this cirkit "
                f"renders versions {', '.join(map(str, RENDERER_VERSIONS))}", hint="upgrade cirkit")
        return renderer

    def set_renderer(self, renderer: int) -> None:
        """Render an empty store's answers under another renderer version (what unpacking a
        pack into a new store does); a store with entries keeps its version."""
        if self.readonly:
            raise read_only_error()
        if renderer not in RENDERER_VERSIONS:
            raise StoreError(f"unknown renderer version {renderer}",
                             hint="valid versions: " + ", ".join(map(str, RENDERER_VERSIONS)))
        if renderer == self.renderer:
            return
        if len(self):
            raise StoreError(f"{self.path} holds entries rendered under renderer version "
                             f"{self.renderer}", hint="use a new store for another version")
        marker = self.path / _MARKER
        tmp = marker.with_suffix(".tmp")
        tmp.write_bytes(canonical_json(
            {"format": "cirkit-store", "version": STORE_VERSION, "renderer": renderer}))
        tmp.replace(marker)
        self.renderer = renderer

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        self._index.close()
        self.blobs.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entries ---------------------------------------------------------------------------
    def put_entry(self, key: str, entry: Entry) -> None:
        if self.readonly:
            raise read_only_error()
        for sha in (entry.blob, *entry.refs):
            if not self.blobs.exists(sha):
                raise StoreError(f"refusing an entry for {key}: its blob {sha} is not stored")
        try:
            self._index.set(key, entry.to_json())
        except sqlite3.Error as e:
            raise _unreadable_index(self.path, e) from None

    def get_entry(self, key: str) -> Entry | None:
        """The entry recorded under ``key``, or None. StoreError if the index cannot be read
        or holds something else than an entry there."""
        try:
            raw = self._index.get(key, _MISSING)
        except sqlite3.Error as e:
            raise _unreadable_index(self.path, e) from None
        except ValueError as e:  # the decoder's: not JSON, or not UTF-8
            raise _bad_entry(key, f"is not valid JSON ({e})") from None
        except OSError as e:  # a large entry's file (read-only index; diskcache says None)
            raise _bad_entry(key, f"is unreadable ({e})") from None
        return None if raw is _MISSING else Entry.from_json(raw, key)

    def load(self, key: str) -> tuple[Entry, bytes] | None:
        """The entry and its verified blob bytes, or None if the key was never recorded."""
        entry = self.get_entry(key)
        return None if entry is None else (entry, self.blobs.get(entry.blob))

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._index
        except sqlite3.Error as e:
            raise _unreadable_index(self.path, e) from None

    def __len__(self) -> int:
        try:
            return len(self._index)
        except sqlite3.Error as e:
            raise _unreadable_index(self.path, e) from None

    def keys(self) -> list[str]:
        """Every key, sorted (diskcache's own order depends on insertion)."""
        try:
            return sorted(self._index.iterkeys())
        except sqlite3.Error as e:
            raise _unreadable_index(self.path, e) from None

    def entries(self) -> Iterator[tuple[str, Entry]]:
        for key in self.keys():
            entry = self.get_entry(key)
            if entry is not None:
                yield key, entry

    def resolve(self, prefix: str) -> str:
        """A full key from a unique prefix (like git's short hashes)."""
        if prefix in self:
            return prefix
        hits = [k for k in self.keys() if k.startswith(prefix)]
        if len(hits) == 1:
            return hits[0]
        if not hits:
            raise StoreError(f"no recorded key starts with {prefix!r}",
                             hint="list keys with `cirkit store ls`")
        raise StoreError(f"{len(hits)} keys start with {prefix!r}", hint="give more digits")

    # -- diagnosis -------------------------------------------------------------------------
    def nearest(self, tool: str, args: Mapping[str, Any], *, n: int = 3) -> list[Near]:
        """The n recorded calls of the same tool closest to ``args`` (for replay misses).

        Bounded, so that a miss costs little whatever the store holds: at most
        ``NEAREST_SCAN`` entries are compared (the first by key), each on the first
        ``NEAREST_CHARS`` characters of its canonical arguments."""
        want = canonical_json(dict(args)).decode()[:NEAREST_CHARS]
        scored: list[Near] = []
        for i, (key, entry) in enumerate(self.entries()):
            if i >= NEAREST_SCAN:
                break
            if entry.tool != tool:
                continue
            got = canonical_json(entry.args).decode()[:NEAREST_CHARS]
            score = difflib.SequenceMatcher(None, want, got, autojunk=False).ratio()
            differs = tuple(sorted(
                k for k in set(args) | set(entry.args) if args.get(k) != entry.args.get(k)
            ))
            scored.append(Near(key=key, args=entry.args, score=score, differs=differs))
        scored.sort(key=lambda x: (-x.score, x.key))
        return scored[:n]

    def info(self) -> StoreInfo:
        by_tool: dict[str, int] = {}
        by_backend: dict[str, int] = {}
        n = 0
        for _, entry in self.entries():
            n += 1
            by_tool[entry.tool] = by_tool.get(entry.tool, 0) + 1
            by_backend[entry.backend] = by_backend.get(entry.backend, 0) + 1
        names = list(self.blobs.names())
        size = sum(self.blobs.path(s).stat().st_size for s in names)
        return StoreInfo(str(self.path), STORE_VERSION, n, dict(sorted(by_tool.items())),
                         dict(sorted(by_backend.items())), len(names), size, self.renderer)

    def verify(self) -> VerifyReport:
        """Rehash every blob and check every entry: its references, and its meaning (its key
        is the hash of its own tool and arguments, its blob a payload answering them)."""
        report = VerifyReport()
        good: set[str] = set()
        for sha in self.blobs.names():
            report.blobs_checked += 1
            try:
                self.blobs.get(sha)
                good.add(sha)
            except BlobCorruptError:
                report.corrupt_blobs.append(sha)
        used: set[str] = set()
        keys = set()
        for key in self.keys():
            keys.add(key)
            report.entries_checked += 1
            try:
                entry = self.get_entry(key)
            except StoreError as e:
                report.bad_entries.append((key, e.message))
                continue
            if entry is None:  # listed, but its value file is gone (diskcache reads it None)
                report.bad_entries.append((key, f"index entry {key} is unreadable"))
                continue
            for sha in (entry.blob, *entry.refs):
                used.add(sha)
                if sha not in good and sha not in report.corrupt_blobs:
                    report.missing_blobs.append((key, sha))
            if entry.blob in good:
                why = payload_problem(key, entry.tool, entry.args, entry.refs,
                                      self.blobs.get(entry.blob))
                if why is not None:
                    report.bad_entries.append((key, f"index entry {key[:80]} {why}"))
        for sha in sorted(good - used):  # an answer no entry names: is its key indexed?
            try:
                p = read_payload(self.blobs.get(sha))
            except ValueError:
                continue  # not an answer (a page's raw bytes, say)
            if p["version"] < 2 or entry_key(p["tool"], p["args"]) not in keys:
                report.unindexed_answers.append(sha)  # (version 1 names no key: any orphan)
        report.unreferenced_blobs = len(good - used)
        # leftovers of writes, and of unpacks, killed before they finished (harmless)
        report.temp_files = len(self.blobs.temp_files()) + len(list(self.path.glob(".unpack-*")))
        return report
