"""A damaged store is a StoreError naming the cause and the fix, never a raw sqlite3, json,
UnicodeError, KeyError or ValueError, and reading it changes none of its data.

Real files throughout: the index's SQLite file is overwritten in the middle, and bad values
are written into the index's table with sqlite3, as a disk or a careless tool would."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from recorders import Entry, Recorder, RecordersError, Store, StoreError

N = 200  # entries: an index of some 30 SQLite pages, so "the middle" is a table page


def _query(i: int) -> str:
    return f"recorded query number {i}"


def _answer(i: int) -> bytes:
    return (b'{"data":{"results":[{"snippet":"' + b"s" * 300 + b'","title":"t%d","url":"u"}]},'
            b'"tool":"web_search","version":1}' % i)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of N recorded web_search calls, made once; each test damages a copy."""
    from recorders import make_key

    path = tmp_path_factory.mktemp("pristine") / "store"
    with Store(path) as st:
        for i in range(N):
            key, args = make_key("web_search", {"query": _query(i)})
            st.put_entry(key, Entry(blob=st.blobs.put(_answer(i)), tool="web_search",
                                    args=args, backend="memory", recorded_at=0.0,
                                    latency_ms=0.0))
    return path


@pytest.fixture
def store_dir(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "store")
    return tmp_path / "store"


def _key(i: int) -> str:
    from recorders import make_key

    return make_key("web_search", {"query": _query(i)})[0]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(store_dir: Path) -> object:
    """The index table as SQLite itself reads it (or the error it gives): what 'the data'
    means for a writable open, which always rewrites diskcache's settings rows."""
    uri = (store_dir / "index" / "cache.db").resolve().as_uri() + "?immutable=1"
    con = sqlite3.connect(uri, uri=True)
    try:
        return con.execute("SELECT key, mode, filename, value FROM Cache ORDER BY key").fetchall()
    except sqlite3.Error as e:
        return f"{type(e).__name__}: {e}"
    finally:
        con.close()


def _blobs(store_dir: Path) -> dict[str, str]:
    return _tree(store_dir / "objects")


def assert_clean(err: BaseException, kind: type[RecordersError] = StoreError) -> None:
    """A RecordersError of the right kind, one line naming the cause, a hint naming the fix."""
    assert isinstance(err, kind), f"{type(err).__name__}: {err}"
    assert err.message and "\n" not in err.message, err.message
    assert err.hint, err.message


# -- the index's SQLite file, damaged ------------------------------------------------------------

def _damage(db: Path, where: float, pattern: bytes) -> None:
    data = bytearray(db.read_bytes())
    at = 0 if where == 0 else int(len(data) * where) // 4096 * 4096 + 8  # a page's header
    data[at:at + len(pattern)] = pattern
    db.write_bytes(bytes(data))


Op = Callable[[Store], object]
OPS: dict[str, Op] = {
    "len": len,
    "keys": Store.keys,
    "entries": lambda st: list(st.entries()),
    "load every key": lambda st: [st.load(_key(i)) for i in range(N)],
    "info": Store.info,
    "verify": Store.verify,
    "contains": lambda st: _key(1) in st,
    "replay": lambda st: [Recorder(st, mode="replay").call_sync("web_search",
                                                                {"query": _query(i)})
                          for i in range(0, N, 7)],
}

DAMAGE = [  # (where, as a fraction of the file; the bytes written there)
    pytest.param(0.0, b"not a database, not at all", id="header"),
    pytest.param(0.3, b"\xff" * 64, id="page-at-30%-ff"),
    pytest.param(0.5, b"\xff" * 64, id="page-at-50%-ff"),
    pytest.param(0.5, b"\x00" * 64, id="page-at-50%-zeros"),
    pytest.param(0.7, bytes(range(64)), id="page-at-70%-bytes"),
    pytest.param(0.9, b"\xff" * 64, id="page-at-90%-ff"),
]


@pytest.mark.parametrize("readonly", [True, False], ids=["read-only", "read-write"])
@pytest.mark.parametrize(("where", "pattern"), DAMAGE)
def test_a_damaged_index_page_is_a_store_error(
    store_dir: Path, where: float, pattern: bytes, readonly: bool
) -> None:
    _damage(store_dir / "index" / "cache.db", where, pattern)
    tree, rows, blobs = _tree(store_dir), _rows(store_dir), _blobs(store_dir)
    errors: list[str] = []
    try:
        st = Store(store_dir, readonly=readonly)
    except Exception as e:  # any exception at all is checked
        assert_clean(e)
        assert "index" in e.message and e.setting == "store"
        errors.append("open")
    else:
        with st:
            for name, op in OPS.items():
                try:
                    op(st)
                except Exception as e:
                    assert_clean(e)
                    errors.append(name)
    assert errors, "the damage went unnoticed"
    if readonly:
        assert _tree(store_dir) == tree  # not one byte changed
    else:
        assert _rows(store_dir) == rows and _blobs(store_dir) == blobs


# -- an entry that is not one ------------------------------------------------------------------

GOOD = ('{"args":{"num_results":5,"query":"q"},"backend":"memory","blob":"%s",'
        '"latency_ms":0.0,"recorded_at":0.0,"refs":[],"status":"ok","tool":"web_search",'
        '"version":1}')

BAD_VALUES = [  # (the value written into the index row, what the error says)
    pytest.param("{not json", "not valid JSON", id="corrupt-json"),
    pytest.param(b"\xff\xfe{}", "not valid JSON", id="not-utf8"),
    pytest.param('{"version": 1, "blob": "ab"', "not valid JSON", id="truncated"),
    pytest.param("[1, 2]", "not a JSON object but an array", id="array"),
    pytest.param('"an entry"', "not a JSON object but a string", id="string"),
    pytest.param("42", "not a JSON object but a number", id="number"),
    pytest.param("null", "not a JSON object but null", id="null"),
    pytest.param('{"version": 1}', "lacks its 'blob' field", id="empty-object"),
    pytest.param(GOOD.replace('"tool":"web_search",', ""), "lacks its 'tool' field",
                 id="no-tool"),
    pytest.param(GOOD.replace('"blob":"%s"', '"blob":5'), "'blob' field that is a number",
                 id="blob-number"),
    pytest.param(GOOD.replace('"args":{"num_results":5,"query":"q"}', '"args":[]'),
                 "'args' field that is an array", id="args-array"),
    pytest.param(GOOD.replace('"refs":[]', '"refs":"abc"'), "'refs' field that is a string",
                 id="refs-string"),
    pytest.param(GOOD.replace('"refs":[]', '"refs":[1]'), "'refs' entry that is not a string",
                 id="refs-number"),
    pytest.param(GOOD.replace('"latency_ms":0.0', '"latency_ms":"fast"'),
                 "'latency_ms' field that is a string", id="latency-string"),
    pytest.param(GOOD.replace('"version":1', '"version":99'), "version 99", id="version"),
]


def _write_value(store_dir: Path, key: str, value: str | bytes) -> None:
    con = sqlite3.connect(store_dir / "index" / "cache.db")
    with con:
        n = con.execute("UPDATE Cache SET value = ?, mode = 1 WHERE key = ? AND raw = 1",
                        (value, key)).rowcount
    con.close()
    assert n == 1


@pytest.mark.parametrize("readonly", [True, False], ids=["read-only", "read-write"])
@pytest.mark.parametrize(("value", "says"), BAD_VALUES)
def test_an_entry_that_is_not_one_is_a_store_error(
    store_dir: Path, value: str | bytes, says: str, readonly: bool
) -> None:
    bad, good = _key(3), _key(4)
    if isinstance(value, str) and "%s" in value:
        value = value % hashlib.sha256(_answer(3)).hexdigest()
    _write_value(store_dir, bad, value)
    tree, rows, blobs = _tree(store_dir), _rows(store_dir), _blobs(store_dir)
    with Store(store_dir, readonly=readonly) as st:
        want = st.load(good)
        for op in (st.get_entry, st.load,
                   lambda k: Recorder(st, mode="replay").call_sync(
                       "web_search", {"query": _query(3)})):
            with pytest.raises(StoreError) as ei:
                op(bad)
            assert_clean(ei.value)
            assert bad in ei.value.message and says in ei.value.message
        report = st.verify()  # verify reports it and goes on
        assert [k for k, _ in report.bad_entries] == [bad]
        assert says in report.bad_entries[0][1] and report.entries_checked == N
        assert st.load(good) == want  # the rest of the store reads as before
        with pytest.raises(StoreError):
            st.info()
    if readonly:
        assert _tree(store_dir) == tree
    else:
        assert _rows(store_dir) == rows and _blobs(store_dir) == blobs


@pytest.mark.parametrize("readonly", [True, False], ids=["read-only", "read-write"])
@pytest.mark.parametrize("blob", [b"<html>a page's raw bytes</html>", b'{"tool":"web_search"}',
                                  b'{"data":[1,2],"tool":"web_search","version":1}', b"[]"],
                         ids=["not-json", "no-data", "data-not-object", "array"])
def test_an_entry_naming_a_blob_that_holds_no_answer(
    store_dir: Path, blob: bytes, readonly: bool
) -> None:
    """The blob is intact (it hashes to its name), but it is no recorded answer: replaying
    the entry is a StoreError naming both."""
    with Store(store_dir) as st:
        sha = st.blobs.put(blob)
        entry = st.get_entry(_key(5))
        assert entry is not None
        entry.blob = sha
        st.put_entry(_key(5), entry)
    tree = _tree(store_dir)
    with Store(store_dir, readonly=readonly) as st:
        with pytest.raises(StoreError) as ei:
            Recorder(st, mode="replay").call_sync("web_search", {"query": _query(5)})
        assert_clean(ei.value)
        assert _key(5) in ei.value.message and sha in ei.value.message
    if readonly:
        assert _tree(store_dir) == tree


@pytest.mark.parametrize("marker", [b"[]", b'"cirkit-store"', b"{oops", b"\xff\xfe"],
                         ids=["array", "string", "not-json", "not-utf8"])
def test_a_store_json_that_is_not_one(store_dir: Path, marker: bytes) -> None:
    (store_dir / "store.json").write_bytes(marker)
    for readonly in (True, False):
        with pytest.raises(StoreError) as ei:
            Store(store_dir, readonly=readonly)
        assert "store.json" in ei.value.message
    assert (store_dir / "store.json").read_bytes() == marker


def test_errors_name_their_setting() -> None:
    """The fields a command line or a plugin renders its own option names from."""
    e: Any = RecordersError("m", hint="h", setting="mode", env_var="X_KEY")
    assert (e.message, e.hint, e.setting, e.env_var) == ("m", "h", "mode", "X_KEY")
    assert str(e) == "m\nhint: h"
    plain = RecordersError("m")
    assert plain.hint is None and plain.setting is None and plain.env_var is None
