"""``cirkit store info|ls|show|verify|reindex|pack|unpack|merge``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from recorders import (
    PackError,
    RenderOptions,
    Store,
    merge_stores,
    pack,
    pack_renderer,
    read_manifest,
    reindex,
    render,
    unpack,
)

from ._errors import Group

__all__ = ["store"]

_existing = click.Path(exists=True, file_okay=False, path_type=Path)


def _console() -> Console:
    return Console(highlight=False)


@click.group(cls=Group)
def store() -> None:
    """Inspect, check and ship a store."""


@store.command()
@click.argument("path", type=_existing)
def info(path: Path) -> None:
    """Counts by tool and backend, blobs and their size."""
    with Store(path, readonly=True) as st:
        i = st.info()
    t = Table(show_header=False, box=None)
    t.add_row("store", i.path)
    t.add_row("version", str(i.version))
    t.add_row("renderer", str(i.renderer))
    t.add_row("entries", str(i.entries))
    for k, v in i.by_tool.items():
        t.add_row(f"  {k}", str(v))
    for k, v in i.by_backend.items():
        t.add_row(f"  backend {k}", str(v))
    t.add_row("blobs", f"{i.blobs} ({i.blob_bytes:,} bytes)")
    _console().print(t)


@store.command("ls")
@click.argument("path", type=_existing)
@click.option("--tool", type=click.Choice(["web_search", "web_visit"]), default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def ls_cmd(path: Path, tool: str | None, as_json: bool) -> None:
    """One line per recorded call, sorted by key."""
    with Store(path, readonly=True) as st:
        rows = [(k, e) for k, e in st.entries() if tool is None or e.tool == tool]
    if as_json:
        for k, e in rows:
            click.echo(json.dumps({"key": k, **e.to_json()}, sort_keys=True, ensure_ascii=False))
        return
    t = Table("key", "tool", "backend", "status", "args")
    for k, e in rows:
        t.add_row(k[:12], e.tool, e.backend, e.status, json.dumps(e.args, ensure_ascii=False))
    _console().print(t)


@store.command()
@click.argument("path", type=_existing)
@click.argument("key")
@click.option("--data", is_flag=True, help="Print the stored provider data instead of the text.")
def show(path: Path, key: str, data: bool) -> None:
    """The entry for KEY (a unique prefix is enough) and what the model sees."""
    with Store(path, readonly=True) as st:
        full = st.resolve(key)
        loaded = st.load(full)
        assert loaded is not None
        entry, blob = loaded
        renderer = st.renderer
    envelope = json.loads(blob)
    click.echo(json.dumps({"key": full, **entry.to_json()}, indent=2, ensure_ascii=False))
    click.echo("-" * 40)
    if data:
        click.echo(json.dumps(envelope["data"], indent=2, ensure_ascii=False))
    else:
        click.echo(render(entry.tool, envelope["data"], entry.args, RenderOptions(renderer)))


@store.command()
@click.argument("path", type=_existing)
def verify(path: Path) -> None:
    """Rehash every blob and check every entry; exit 1 on any problem."""
    with Store(path, readonly=True) as st:
        r = st.verify()
    con = _console()
    con.print(f"{r.blobs_checked} blobs rehashed, {r.entries_checked} entries checked, "
              f"{r.unreferenced_blobs} unreferenced blobs, {r.temp_files} leftover temp files")
    for sha in r.corrupt_blobs:
        con.print(f"corrupt blob {sha}", style="red")
    for key, sha in r.missing_blobs:
        con.print(f"entry {key}: blob {sha} missing", style="red")
    for key, why in r.bad_entries:
        con.print(f"entry {key[:80]}: {why}", style="red", markup=False)
    if r.unindexed_answers:
        con.print(f"{len(r.unindexed_answers)} recorded answers that no entry names",
                  style="red" if r.index_lost else "yellow")
    if r.index_lost:
        con.print("the index is empty beside recorded answers: it was lost", style="red")
        click.echo(f"hint: rebuild it with `cirkit store reindex {path}`", err=True)
        raise SystemExit(1)
    if not r.ok:
        click.echo("hint: re-record the affected calls, or unpack a good copy over this store",
                   err=True)
        raise SystemExit(1)
    if r.unindexed_answers:
        click.echo(f"hint: `cirkit store reindex {path}` indexes them again", err=True)
    con.print("ok", style="green")


@store.command("reindex")
@click.argument("path", type=_existing)
def reindex_cmd(path: Path) -> None:
    """Rebuild a lost or damaged index from what the blobs hold; say what cannot come back."""
    r = reindex(path)
    click.echo(f"{r.entries_added} entries rebuilt from their blobs, {r.entries_kept} already "
               f"indexed, {r.answers_shadowed} older answers to an indexed call left as is")
    if r.entries_added:
        click.echo("rebuilt entries carry recorded_at 0 and latency_ms 0 (blobs do not hold "
                   "them)")
    for sha in r.corrupt_blobs:
        click.echo(f"lost: blob {sha} is corrupt", err=True)
    for sha in r.lost:
        click.echo(f"lost: blob {sha} holds an answer that names no question (payload "
                   "version 1) or lacks a blob it names", err=True)
    if not r.complete:
        click.echo("hint: re-record the lost calls, or unpack a good copy over this store",
                   err=True)
        raise SystemExit(1)


@store.command("pack")
@click.argument("path", type=_existing)
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
def pack_cmd(path: Path, dest: Path) -> None:
    """Write the store as one portable file DEST (deterministic bytes)."""
    with Store(path, readonly=True) as st:
        r = pack(st, dest)
    click.echo(f"packed {r.entries} entries, {r.blobs} blobs into {r.path} ({r.bytes:,} bytes)")
    click.echo(f"manifest sha256 {r.manifest_sha256}")


@store.command("unpack")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("path", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="On a key recorded in both, take the pack's.")
def unpack_cmd(src: Path, path: Path, overwrite: bool) -> None:
    """Merge the pack SRC into the store PATH (created if needed), with dedupe."""
    manifest = read_manifest(src)  # fail on a bad pack before creating anything
    created = not path.exists()
    try:
        with Store(path, renderer=pack_renderer(manifest)) as st:
            r = unpack(src, st, overwrite=overwrite)
    except PackError:
        if created:  # a refused pack leaves nothing behind, not even an empty store
            shutil.rmtree(path, ignore_errors=True)
        raise
    click.echo(
        f"{r.entries_added} entries added, {r.entries_same} already present, "
        f"{r.entries_conflicting} kept ours (differing), {r.entries_replaced} replaced; "
        f"{r.blobs_added} blobs added, {r.blobs_present} already present")
    if r.entries_conflicting:
        click.echo("hint: --overwrite takes the pack's version of differing entries", err=True)


@store.command("merge")
@click.argument("stores", nargs=-1, required=True, type=_existing)
@click.option("--into", "into", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The merged store: a new directory (created whole, or not at all).")
def merge_cmd(stores: tuple[Path, ...], into: Path) -> None:
    """Merge STORES (e.g. one per recording replica) into a new store --into.

    The same call recorded with the same answer in several stores is kept once. A call
    recorded with different answers is a conflict: every conflict is listed, nothing is
    written, and the exit status is 1."""
    r = merge_stores(stores, into)
    click.echo(f"merged {r.sources} stores into {r.path}: {r.entries} entries "
               f"({r.duplicates} duplicates dropped), {r.blobs} blobs")
