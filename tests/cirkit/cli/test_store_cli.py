"""`cirkit store ...` and `cirkit tools ...` as a user types them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cirkit.cli import cli
from recorders import InMemoryBackend, Recorder, Store
from tests.recorders.store_worker import answer


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    rec = Recorder(Store(path), search=InMemoryBackend("web_search", answer), clock=lambda: 0.0)
    for q in ("alpha", "beta", "gamma"):
        rec.call_sync("web_search", {"query": q, "num_results": 2})
    assert rec.store is not None
    rec.store.close()
    return path


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.output


def test_info_ls_show(store: Path) -> None:
    code, out = run("store", "info", str(store))
    assert code == 0 and "entries" in out and "web_search" in out and "memory" in out
    assert ["renderer", "2"] in [ln.split() for ln in out.splitlines()]
    code, out = run("store", "ls", str(store), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["args"]["query"] for r in rows] == sorted(
        ["alpha", "beta", "gamma"], key=lambda q: next(r["key"] for r in rows
                                                      if r["args"]["query"] == q))
    key = rows[0]["key"]
    code, out = run("store", "show", str(store), key[:10])
    assert code == 0 and key in out and "\nIndex: 0\n" in out  # the store's renderer: 2
    code, out = run("store", "show", str(store), key[:10], "--data")
    assert code == 0 and '"results"' in out


def test_show_renders_under_the_stores_renderer_version(store: Path) -> None:
    """A store recorded before renderer version 2 (store.json names none) shows hits from 1."""
    (store / "store.json").write_bytes(b'{"format":"cirkit-store","version":1}')
    code, out = run("store", "info", str(store))
    assert code == 0 and ["renderer", "1"] in [ln.split() for ln in out.splitlines()]
    key = json.loads(run("store", "ls", str(store), "--json")[1].splitlines()[0])["key"]
    code, out = run("store", "show", str(store), key)
    assert code == 0 and "\nIndex: 1\n" in out and "\nIndex: 0\n" not in out


def test_verify_fails_on_a_corrupt_blob(store: Path) -> None:
    assert run("store", "verify", str(store))[0] == 0
    blob = next(p for p in (store / "objects").rglob("*") if p.is_file())
    blob.chmod(0o644)
    blob.write_bytes(b"garbage")
    code, out = run("store", "verify", str(store))
    assert code == 1 and "corrupt blob" in out


def test_pack_unpack_round_trip(store: Path, tmp_path: Path) -> None:
    code, out = run("store", "pack", str(store), str(tmp_path / "s.cirpack"))
    assert code == 0 and "manifest sha256" in out
    code, out = run("store", "unpack", str(tmp_path / "s.cirpack"), str(tmp_path / "two"))
    assert code == 0 and "3 entries added" in out
    code, out = run("tools", "search", "beta", "-n", "2", "--store", str(tmp_path / "two"),
                    "--mode", "replay")
    assert code == 0 and "Title: beta — result 1" in out


def test_strict_miss_is_one_clear_message_without_traceback(store: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "cirkit.cli", "tools", "search", "alpha!", "-n", "2",
         "--store", str(store), "--mode", "replay"], capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("error: strict replay: web_search was never recorded")
    assert '"query": "alpha"' in p.stderr and "hint:" in p.stderr


def test_bad_mode_lists_the_valid_ones(store: Path) -> None:
    code, out = run("tools", "search", "x", "--store", str(store), "--mode", "once")
    assert code == 2 and "record, replay, auto, rewrite, off" in out


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    code, out = run("store", "info", str(tmp_path))
    assert code == 1 and "not a cirkit store" in out


def test_missing_api_key_names_the_variable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    code, out = run("tools", "search", "x", "--backend", "serper", "--store", str(tmp_path))
    assert code == 1 and "SERPER_API_KEY" in out


def _other(args: object) -> dict[str, object]:
    return {"results": [{"title": "another answer", "url": "https://e.org/x", "snippet": "x"}]}


def test_store_merge_combines_and_refuses_conflicts(store: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    with Store(b) as st:
        rec = Recorder(st, search=InMemoryBackend("web_search", answer), clock=lambda: 1.0)
        for q in ("beta", "delta"):
            rec.call_sync("web_search", {"query": q, "num_results": 2})
    code, out = run("store", "merge", str(store), str(b), "--into", str(tmp_path / "c"))
    assert code == 0, out
    assert "merged 2 stores" in out and "4 entries (1 duplicates dropped)" in out
    code, out = run("store", "ls", str(tmp_path / "c"), "--json")
    assert sorted(json.loads(line)["args"]["query"] for line in out.splitlines()) == [
        "alpha", "beta", "delta", "gamma"]
    conflicting = tmp_path / "conflicting"
    with Store(conflicting) as st:
        Recorder(st, search=InMemoryBackend("web_search", _other)).call_sync(
            "web_search", {"query": "alpha", "num_results": 2})
    code, out = run("store", "merge", str(store), str(conflicting), "--into",
                    str(tmp_path / "d"))
    assert code == 1 and not (tmp_path / "d").exists()
    lines = out.splitlines()
    assert lines[0].startswith("error: 1 key(s) are recorded with different answers")
    assert '"query": "alpha"' in lines[1] and str(conflicting) in lines[1]
    assert lines[-1].startswith("hint: ")
def test_a_lost_index_is_refused_then_rebuilt_by_reindex(store: Path) -> None:
    import shutil

    shutil.rmtree(store / "index")
    code, out = run("store", "verify", str(store))
    assert code == 1 and "lost its index" in out and "cirkit store reindex" in out
    code, out = run("tools", "search", "alpha", "-n", "2", "--store", str(store),
                    "--mode", "auto")
    assert code == 1 and "lost its index" in out and not (store / "index").exists()
    code, out = run("store", "reindex", str(store))
    assert code == 0 and "3 entries rebuilt from their blobs" in out, out
    code, out = run("store", "verify", str(store))
    assert code == 0 and "ok" in out


def test_reindex_says_what_is_lost(store: Path) -> None:
    with Store(store) as st:
        old = st.blobs.put(b'{"data":{},"tool":"web_search","version":1}')
    code, out = run("store", "reindex", str(store))
    assert code == 1 and f"lost: blob {old}" in out and "hint:" in out
