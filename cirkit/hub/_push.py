"""Publish a built dataset folder to the Hub as ONE commit (optionally with its replay store).

Why one ``create_commit`` and not ``upload_folder`` or ``RepoCard.push_to_hub``: one commit is
atomic (readers never see shards of two builds), the file list is exactly the sorted folder
(deterministic, and what ``--dry-run`` writes), and README.md goes up as a plain file because
``RepoCard.push_to_hub`` validates YAML at a fixed huggingface.co address even when
``HF_ENDPOINT`` points elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorders import Store, pack

from ._card import STORE_PATH, HubError, check_folder, with_store_section
from ._errors import check_repo_id, hub_errors, require_token

__all__ = ["PushResult", "UploadFile", "push_folder"]


@dataclass(frozen=True, slots=True)
class UploadFile:
    path: str  # in the repo, POSIX
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class PushResult:
    repo_id: str
    revision: str
    files: tuple[UploadFile, ...]
    bytes: int
    repo_url: str
    commit_url: str | None = None  # None on a dry run
    commit_oid: str | None = None
    store_manifest_sha256: str | None = None
    dry_run: str | None = None  # the folder written instead of uploading


def _sha256(src: Path | bytes) -> str:
    if isinstance(src, bytes):
        return hashlib.sha256(src).hexdigest()
    h = hashlib.sha256()
    with src.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _stage(folder: Path, repo_id: str, with_store: Path | None,
           tmp: Path) -> tuple[list[tuple[str, Path | bytes]], str | None]:
    """(path in repo, content) for every file to upload, sorted; and the pack's manifest sha."""
    card, files = check_folder(folder)
    staged: dict[str, Path | bytes] = {f: folder / f for f in files}
    manifest_sha = None
    if with_store is not None:
        with Store(with_store, readonly=True) as st:
            res = pack(st, tmp / "store.cirpack")
        manifest_sha = res.manifest_sha256
        staged[STORE_PATH] = Path(res.path)
        staged["README.md"] = with_store_section(
            card, repo_id=repo_id, manifest_sha256=res.manifest_sha256, entries=res.entries,
            blobs=res.blobs, size=res.bytes).encode("utf-8")
    return sorted(staged.items()), manifest_sha


def _default_message(folder: Path, n: int) -> str:
    try:
        build: Any = json.loads((folder / "build.json").read_text(encoding="utf-8"))
        fp = build.get("fingerprint") if isinstance(build, dict) else None
    except (OSError, ValueError):
        fp = None
    return f"cirkit push: {n} files" + (f" (build {str(fp)[:16]})" if fp else "")


def _write_dry_run(dest: Path, staged: list[tuple[str, Path | bytes]]) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise HubError(f"--dry-run folder {dest} exists and is not empty",
                       hint="pass a new or empty folder, so it holds exactly the upload")
    for path, src in staged:
        out = dest / path
        out.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            out.write_bytes(src)
        else:
            shutil.copyfile(src, out)


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    dry_run: str | Path | None = None,
    with_store: str | Path | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Upload every file of ``folder`` to the dataset repo ``repo_id`` in one commit.

    ``dry_run``: write the exact upload to that folder and make no request. ``with_store``: pack
    that store into ``store/store.cirpack`` and name its manifest sha256 in the card.
    """
    folder = Path(folder)
    rev = revision or "main"
    check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="cirkit-push-") as tmp:
        staged, manifest_sha = _stage(folder, repo_id,
                                      Path(with_store) if with_store is not None else None,
                                      Path(tmp))
        files = tuple(UploadFile(p, len(s) if isinstance(s, bytes) else s.stat().st_size,
                                 _sha256(s)) for p, s in staged)
        total = sum(f.size for f in files)
        if dry_run is not None:
            _write_dry_run(Path(dry_run), staged)
            return PushResult(repo_id, rev, files, total, f"datasets/{repo_id}",
                              store_manifest_sha256=manifest_sha, dry_run=str(dry_run))
        return _upload(folder, repo_id, staged, files, total, private=private, revision=revision,
                       token=token, commit_message=commit_message, manifest_sha=manifest_sha)


def _upload(folder: Path, repo_id: str, staged: list[tuple[str, Path | bytes]],
            files: tuple[UploadFile, ...], total: int, *, private: bool, revision: str | None,
            token: str | None, commit_message: str | None,
            manifest_sha: str | None) -> PushResult:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=require_token(token))
    rev = revision or "main"
    with hub_errors(repo_id, revision):
        url = api.create_repo(repo_id, repo_type="dataset", private=True if private else None,
                              exist_ok=True)
        if private and not api.repo_info(repo_id, repo_type="dataset").private:
            raise HubError(f"{repo_id} already exists and is public; --private does not change "
                           "an existing repo, so nothing was uploaded",
                           hint="make it private on the Hub first (repo settings), or push to "
                                "a new repo id")
        if rev != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=rev, exist_ok=True)
        ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=s if isinstance(s, bytes)
                                  else str(s)) for p, s in staged]
        info = api.create_commit(
            repo_id, ops, repo_type="dataset", revision=revision,
            commit_message=commit_message or _default_message(folder, len(ops)))
    return PushResult(repo_id, rev, files, total, str(url), info.commit_url, info.oid,
                      store_manifest_sha256=manifest_sha)
