"""`cirkit push` / `cirkit pull` against the Hub emulator, read back by the real `datasets`.

Every test runs with name resolution of non-loopback hosts refused (``hub.offline()``), so a
request meant for huggingface.co fails at once and is recorded; each test asserts none was made.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cirkit.cli import pull, push
from cirkit.hub import STORE_PATH, HubError, parse_card, push_folder, with_store_section
from recorders import InMemoryBackend, Recorder, Store, pack, read_manifest
from tests.recorders.store_worker import answer
from tests.servers.hub import HUB_USER, Hub

ROWS: list[dict[str, Any]] = [
    {"messages": [{"role": "user", "content": f"question {i}"},
                  {"role": "assistant", "content": f"<code>print({i})</code> answer {i}"}],
     "input_ids": [101, 7 + i, 8 + i, 102], "labels": [-100, -100, 8 + i, 102]}
    for i in range(5)
]
CARD = """---
license: apache-2.0
pretty_name: cirkit test set
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---

# cirkit test set

Rows written by hand in the layout `datasets.push_to_hub` uses.
"""
QUERIES = ("alpha", "beta", "gamma")


def _cli() -> click.Group:
    """The real `cirkit` group once push/pull are registered there; else the same error
    handling around just these two commands."""
    from cirkit.cli import Cli, cli

    if "push" in cli.commands and "pull" in cli.commands:
        return cli
    return Cli(name="cirkit", commands=[push, pull])


def run(*args: str | Path) -> tuple[int, str]:
    r = CliRunner().invoke(_cli(), [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture
def local_hub(hub: Hub) -> Iterator[Hub]:
    before = len(hub.blocked)
    with hub.offline():
        yield hub
    assert hub.blocked[before:] == [], "a request tried to leave 127.0.0.1"


@pytest.fixture
def repo_id(request: pytest.FixtureRequest) -> str:
    """One repo per test (and per parameter), a valid Hub id."""
    tag = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    return f"{HUB_USER}/{request.node.originalname[:60]}-{tag}"


def make_folder(path: Path, card: str = CARD) -> Path:
    (path / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(ROWS), path / "data/train-00000-of-00001.parquet")
    (path / "README.md").write_text(card, encoding="utf-8")
    (path / "build.json").write_text(json.dumps({"fingerprint": "f" * 64}), encoding="utf-8")
    (path / "report").mkdir()
    (path / "report/lengths.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    return path


def make_store(path: Path) -> Path:
    rec = Recorder(Store(path), search=InMemoryBackend("web_search", answer), clock=lambda: 0.0)
    for q in QUERIES:
        rec.call_sync("web_search", {"query": q, "num_results": 2})
    assert rec.store is not None
    rec.store.close()
    return path


def load(repo_id: str, **kw: Any) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset(repo_id, split="train", **kw)
    return [dict(r) for r in ds]


def writes(hub: Hub, mark: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in hub.requests_since(mark) if r.method == "POST"]


def test_push_then_load_dataset(local_hub: Hub, repo_id: str, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    mark = len(local_hub.log)
    code, out = run("push", folder, repo_id)
    assert code == 0, out
    oid = local_hub.repo(repo_id).branches["main"]
    assert f"commit {oid}" in out and f"/datasets/{repo_id}/commit/{oid}" in out
    assert "uploaded 4 files" in out and "data/train-00000-of-00001.parquet" in out
    # One commit with every file, bytes unchanged; the repo's own .gitattributes is kept.
    assert writes(local_hub, mark) == [
        "POST /api/repos/create", "POST /api/validate-yaml",
        f"POST /api/datasets/{repo_id}/preupload/main", f"POST /api/datasets/{repo_id}/commit/main"]
    files = local_hub.files(repo_id)
    assert sorted(files) == [".gitattributes", "README.md", "build.json",
                             "data/train-00000-of-00001.parquet", "report/lengths.png"]
    assert all(files[p] == (folder / p).read_bytes() for p in files if p != ".gitattributes")
    message = local_hub.repo(repo_id).commits[oid].message
    assert message == f"cirkit push: 4 files (build {'f' * 16})"
    mark = len(local_hub.log)
    assert load(repo_id) == ROWS
    # datasets read the card, listed data/ and fetched the shard at the commit over HTTP.
    seen = {f"{r.method} {r.path}" for r in local_hub.requests_since(mark)}
    assert {f"GET /datasets/{repo_id}/resolve/main/README.md",
            f"GET /api/datasets/{repo_id}/tree/{oid}/data",
            f"GET /datasets/{repo_id}/resolve/{oid}/data/train-00000-of-00001.parquet"} <= seen
    # The same push again is a no-op commit on the same content: oid unchanged.
    assert run("push", folder, repo_id)[0] == 0
    assert local_hub.repo(repo_id).branches["main"] == oid


def test_private_repo_refuses_anonymous_reads(local_hub: Hub, repo_id: str,
                                              tmp_path: Path) -> None:
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    folder = make_folder(tmp_path / "ds")
    code, out = run("push", folder, repo_id, "--private", "-m", "private build")
    assert code == 0, out
    assert local_hub.repo(repo_id).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi().dataset_info(repo_id, token=False)
    with pytest.raises(DatasetNotFoundError, match=re.escape(repo_id)):
        load(repo_id, token=False)
    assert load(repo_id) == ROWS  # with the token (HF_TOKEN)
    code, out = run("pull", repo_id, tmp_path / "anon")  # token from HF_TOKEN: works
    assert code == 0 and "pulled 5 files" in out


def test_private_flag_refuses_an_existing_public_repo(local_hub: Hub, repo_id: str,
                                                      tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    assert run("push", folder, repo_id)[0] == 0
    oid = local_hub.repo(repo_id).branches["main"]
    (folder / "build.json").write_text("{}", encoding="utf-8")
    code, out = run("push", folder, repo_id, "--private")
    assert code == 1 and "already exists and is public" in out and "hint:" in out
    assert local_hub.repo(repo_id).branches["main"] == oid


def test_revision_lands_on_a_branch(local_hub: Hub, repo_id: str, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    code, out = run("push", folder, repo_id, "--revision", "dev")
    assert code == 0 and f"{repo_id}@dev" in out, out
    repo = local_hub.repo(repo_id)
    assert sorted(repo.branches) == ["dev", "main"]
    assert sorted(local_hub.files(repo_id, "main")) == [".gitattributes"]
    assert "README.md" in local_hub.files(repo_id, "dev")
    assert load(repo_id, revision="dev") == ROWS
    code, out = run("pull", repo_id, tmp_path / "nope", "--revision", "nope")
    assert code == 1 and "no revision 'nope'" in out


def test_dry_run_writes_the_exact_upload_and_sends_nothing(local_hub: Hub, repo_id: str,
                                                           tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    store = make_store(tmp_path / "store")
    mark = len(local_hub.log)
    code, out = run("push", folder, repo_id, "--dry-run", tmp_path / "dry", "--with-store", store)
    assert code == 0 and "dry run: 5 files" in out, out
    assert local_hub.requests_since(mark) == []
    dry = {p.relative_to(tmp_path / "dry").as_posix(): p.read_bytes()
           for p in (tmp_path / "dry").rglob("*") if p.is_file()}
    assert STORE_PATH in dry and dry["build.json"] == (folder / "build.json").read_bytes()
    code, out = run("push", folder, repo_id, "--with-store", store)
    assert code == 0, out
    uploaded = dict(local_hub.files(repo_id))
    assert uploaded.pop(".gitattributes")
    assert uploaded == dry  # the same bytes, the card and the pack included
    code, out = run("push", folder, repo_id, "--dry-run", tmp_path / "dry")
    assert code == 1 and "not empty" in out


def test_with_store_then_pull_restores_a_replayable_store(local_hub: Hub, repo_id: str,
                                                          tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    store = make_store(tmp_path / "store")
    code, out = run("push", folder, repo_id, "--with-store", store)
    assert code == 0, out
    sha = re.search(r"manifest sha256 ([0-9a-f]{64})", out)
    assert sha is not None
    card = parse_card(local_hub.files(repo_id)["README.md"].decode())
    assert card.store() == {"path": STORE_PATH, "format": "cirkit-pack",
                            "manifest_sha256": sha.group(1), "entries": 3, "blobs": 3,
                            "bytes": len(local_hub.files(repo_id)[STORE_PATH])}
    assert f"cirkit pull {repo_id} DEST --store STORE_DIR" in card.text
    assert card.meta["configs"][0]["data_files"][0]["path"] == "data/train-*"
    assert load(repo_id) == ROWS  # the store folder does not disturb load_dataset

    code, out = run("pull", repo_id, tmp_path / "got", "--store", tmp_path / "restored")
    assert code == 0 and "3 entries added" in out and "verified" in out, out
    assert read_manifest(tmp_path / "got" / STORE_PATH)["entries"] == 3
    replay = Recorder(Store(tmp_path / "restored"), mode="replay")
    for q in QUERIES:
        assert replay.call_sync("web_search", {"query": q, "num_results": 2}).from_store


def test_pull_store_from_a_repo_without_one(local_hub: Hub, repo_id: str,
                                            tmp_path: Path) -> None:
    assert run("push", make_folder(tmp_path / "ds"), repo_id)[0] == 0
    code, out = run("pull", repo_id, tmp_path / "got", "--store", tmp_path / "st")
    assert code == 1 and f"has no {STORE_PATH}" in out and "--with-store" in out
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize(("card", "why"), [
    ("# no front matter\n", "no YAML front matter"),
    ("---\nconfigs: [unclosed\n---\n", "not valid YAML"),
    (CARD.replace("data/train-*", "data/test-*"), "'data/test-*' matches no file"),
])
def test_bad_card_is_one_clear_error_and_nothing_is_sent(local_hub: Hub, repo_id: str,
                                                         tmp_path: Path, card: str,
                                                         why: str) -> None:
    folder = make_folder(tmp_path / "ds", card)
    mark = len(local_hub.log)
    code, out = run("push", folder, repo_id)
    assert code == 1 and out.startswith("error: ") and why in out and "hint:" in out, out
    assert "Traceback" not in out
    assert local_hub.requests_since(mark) == []


def test_folder_without_data_files(local_hub: Hub, repo_id: str, tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "ds")
    (folder / "data/train-00000-of-00001.parquet").unlink()
    with pytest.raises(HubError, match="has no data files"):
        push_folder(folder, repo_id)


def test_no_token_is_a_clear_error(local_hub: Hub, repo_id: str, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    folder = make_folder(tmp_path / "ds")
    mark = len(local_hub.log)
    code, out = run("push", folder, repo_id)
    assert code == 1 and "HF_TOKEN" in out and "huggingface-cli login" in out, out
    assert local_hub.requests_since(mark) == []


def test_http_errors_are_one_line_with_a_hint(local_hub: Hub, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_folder(tmp_path / "ds")
    code, out = run("push", folder, "not a/repo id")
    assert code == 1 and "not a valid repo id" in out and "hint:" in out, out
    code, out = run("push", folder, "someone-else/data")
    assert code == 1 and "(403)" in out and "hint:" in out, out
    code, out = run("pull", f"{HUB_USER}/does-not-exist", tmp_path / "x")
    assert code == 1 and "not found" in out and "Traceback" not in out, out
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    code, out = run("push", folder, f"{HUB_USER}/any")
    assert code == 1 and "(401)" in out and "HF_TOKEN" in out, out


def test_store_section_is_idempotent() -> None:
    card = parse_card(CARD)
    once = with_store_section(card, repo_id="u/d", manifest_sha256="a" * 64, entries=1,
                              blobs=1, size=10)
    twice = with_store_section(parse_card(once), repo_id="u/d", manifest_sha256="a" * 64,
                               entries=1, blobs=1, size=10)
    assert once == twice and once.count("cirkit_store:") == 1
    assert parse_card(once).meta["license"] == "apache-2.0"


def test_pull_refuses_a_tampered_store_without_a_card_and_leaves_nothing(
        local_hub: Hub, repo_id: str, tmp_path: Path) -> None:
    """No card names the pack's manifest: the pack is still checked in full (here an entry
    whose key is a path), and nothing is left behind."""
    store = make_store(tmp_path / "store")
    folder = make_folder(tmp_path / "ds")
    with Store(store, readonly=True) as st:
        pack(st, folder / STORE_PATH)
    with tarfile.open(folder / STORE_PATH, "r:gz") as tar:
        members = [(ti, tar.extractfile(ti).read()) for ti in tar]  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for ti, data in members:
            if ti.name == "entries.jsonl":
                data = re.sub(rb'"key":"[0-9a-f]{64}"', b'"key":"../../etc/passwd"', data,
                              count=1)
                ti.size = len(data)
            if ti.name == "manifest.json":
                entries = next(d for t, d in members if t.name == "entries.jsonl")
                tampered = re.sub(rb'"key":"[0-9a-f]{64}"', b'"key":"../../etc/passwd"',
                                  entries, count=1)
                data = data.replace(hashlib.sha256(entries).hexdigest().encode(),
                                    hashlib.sha256(tampered).hexdigest().encode())
            tar.addfile(ti, io.BytesIO(data))
    (folder / STORE_PATH).write_bytes(gzip.compress(out.getvalue()))
    assert "manifest_sha256" not in (folder / "README.md").read_text()
    assert run("push", folder, repo_id)[0] == 0
    code, out_text = run("pull", repo_id, tmp_path / "got", "--store", tmp_path / "st")
    assert code == 1 and "64 lower-case hex" in out_text, out_text
    assert not (tmp_path / "st").exists()
