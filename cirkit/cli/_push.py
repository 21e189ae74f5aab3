"""``cirkit push FOLDER REPO_ID`` and ``cirkit pull REPO_ID DEST``: datasets to and from the Hub."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

__all__ = ["pull", "push"]


@click.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo_id")
@click.option("--private", is_flag=True, help="Create the repo private (an existing repo keeps "
              "its visibility; a public one is refused).")
@click.option("--revision", metavar="REV", default=None,
              help="Branch to commit to (created from main if missing). Default: main.")
@click.option("--dry-run", "dry_run", metavar="DIR", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Write the exact files that would be uploaded to DIR; send nothing.")
@click.option("--with-store", "with_store", metavar="STORE_DIR", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Pack this store into store/store.cirpack and name it in the card.")
@click.option("--message", "-m", default=None, help="Commit message.")
def push(folder: Path, repo_id: str, private: bool, revision: str | None, dry_run: Path | None,
         with_store: Path | None, message: str | None) -> None:
    """Upload the dataset FOLDER (as `cirkit build` wrote it) to REPO_ID in one commit.

    The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT selects a mirror.
    """
    from cirkit.hub import push_folder

    r = push_folder(folder, repo_id, private=private, revision=revision, dry_run=dry_run,
                    with_store=with_store, commit_message=message)
    t = Table("file", "bytes", "sha256", box=None)
    for f in r.files:
        t.add_row(f.path, f"{f.size:,}", f.sha256[:12])
    con = Console(highlight=False)
    con.print(t)
    if r.dry_run is not None:
        con.print(f"dry run: {len(r.files)} files, {r.bytes:,} bytes written to {r.dry_run}; "
                  f"nothing sent to {r.repo_id}@{r.revision}", soft_wrap=True)
    else:
        con.print(f"uploaded {len(r.files)} files, {r.bytes:,} bytes to {r.repo_id}@{r.revision}",
                  soft_wrap=True)
        con.print(f"commit {r.commit_oid}  {r.commit_url}", soft_wrap=True)
    if r.store_manifest_sha256:
        con.print(f"store pack manifest sha256 {r.store_manifest_sha256}", soft_wrap=True)


@click.command()
@click.argument("repo_id")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--revision", metavar="REV", default=None, help="Branch, tag or commit.")
@click.option("--store", "store_dir", metavar="STORE_DIR", default=None,
              type=click.Path(file_okay=False, path_type=Path),
              help="Unpack the repo's store/store.cirpack into this store (created if needed).")
def pull(repo_id: str, dest: Path, revision: str | None, store_dir: Path | None) -> None:
    """Download the dataset REPO_ID into DEST (and its replay store, with --store)."""
    from cirkit.hub import pull as pull_repo

    r = pull_repo(repo_id, dest, revision=revision, with_store=store_dir)
    con = Console(highlight=False)
    con.print(f"pulled {len(r.files)} files, {r.bytes:,} bytes of {r.repo_id}@{r.revision} "
              f"(commit {r.commit_oid}) into {r.dest}", soft_wrap=True)
    if r.store is not None:
        s = r.store
        con.print(f"store {store_dir}: {s.entries_added} entries added, {s.entries_same} already "
                  f"present, {s.entries_conflicting} kept ours (differing); {s.blobs_added} blobs "
                  f"added; verified (manifest sha256 {r.store_manifest_sha256})", soft_wrap=True)
