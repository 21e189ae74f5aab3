"""Fetch a published dataset folder, and its replay store into a local store, verified.

The download is pinned to the commit the revision names when the pull starts, so a push that
lands meanwhile cannot mix files of two builds. The store pack is checked against the manifest
sha256 that the card declares, if it declares one, and always in full by ``unpack`` (member
sizes, hashes, and what every entry means) before anything is merged into the local store; the
store is verified after.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from recorders import (
    PackError,
    Store,
    UnpackResult,
    canonical_json,
    pack_renderer,
    read_manifest,
    unpack,
)

from ._card import STORE_PATH, HubError, folder_files, parse_card
from ._errors import check_repo_id, hub_errors

__all__ = ["PullResult", "pull"]


@dataclass(frozen=True, slots=True)
class PullResult:
    repo_id: str
    revision: str
    commit_oid: str
    dest: str
    files: tuple[str, ...]
    bytes: int
    store: UnpackResult | None = None
    store_manifest_sha256: str | None = None


def pull(
    repo_id: str,
    dest: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    with_store: str | Path | None = None,
) -> PullResult:
    """Download the dataset repo into ``dest``; with ``with_store``, unpack its store pack there.

    ``token``: None uses HF_TOKEN or the login if there is one (public repos need none);
    False sends no token at all.
    """
    from huggingface_hub import HfApi, snapshot_download

    check_repo_id(repo_id)
    dest = Path(dest)
    api = HfApi()
    with hub_errors(repo_id, revision):
        sha = api.dataset_info(repo_id, revision=revision, token=token).sha
        if sha is None:
            raise HubError(f"the Hub gave no commit for {repo_id}@{revision or 'main'}")
        snapshot_download(repo_id, repo_type="dataset", revision=sha, local_dir=dest,
                          token=token)
    files = tuple(folder_files(dest))
    size = sum((dest / f).stat().st_size for f in files)
    result = PullResult(repo_id, revision or "main", sha, str(dest), files, size)
    if with_store is None:
        return result
    return _restore_store(result, dest, Path(with_store))


def _restore_store(result: PullResult, dest: Path, store_dir: Path) -> PullResult:
    src = dest / STORE_PATH
    if not src.is_file():
        raise HubError(f"{result.repo_id}@{result.revision} has no {STORE_PATH}",
                       hint="it was pushed without --with-store; ask its author for the store")
    actual = hashlib.sha256(canonical_json(read_manifest(src))).hexdigest()
    card = dest / "README.md"
    declared = parse_card(card.read_text("utf-8")).store() if card.is_file() else None
    want = declared.get("manifest_sha256") if declared else None
    if want is not None and want != actual:
        raise HubError(f"{STORE_PATH} has manifest sha256 {actual}, but the card declares {want}",
                       hint="the pack and the card come from different pushes; push again "
                            "with --with-store")
    created = not store_dir.exists()
    try:  # unpack checks the pack in full (hashes, sizes, meaning) before it merges anything
        with Store(store_dir, renderer=pack_renderer(read_manifest(src))) as st:
            res = unpack(src, st)
            report = st.verify()
    except PackError:
        if created:  # a refused pack leaves nothing behind
            shutil.rmtree(store_dir, ignore_errors=True)
        raise
    if not report.ok:
        raise HubError(f"the store at {store_dir} does not verify after the unpack",
                       hint=f"run `cirkit store verify {store_dir}` for the details")
    return PullResult(result.repo_id, result.revision, result.commit_oid, result.dest,
                      result.files, result.bytes, res, actual)
