"""``cirkit tools search|visit``: one call through a store, printed as the model would see it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from recorders import SEARCH, VISIT, Mode, ToolResult

from ._errors import Group
from ._options import (
    backend_option,
    build_recorder,
    corpus_option,
    mode_option,
    store_option,
)

__all__ = ["tools"]


@click.group(cls=Group)
def tools() -> None:
    """Call web_search / web_visit once, through a store."""


def _run(tool: str, args: dict[str, Any], *, as_json: bool, **opts: Any) -> None:
    rec = build_recorder(tools=(tool,), **opts)
    try:
        result: ToolResult = asyncio.run(rec.call(tool, args))
    finally:
        if rec.store is not None:
            rec.store.close()
    if as_json:
        click.echo(json.dumps({
            "tool": result.tool, "args": result.args, "key": result.key,
            "status": result.status, "backend": result.backend,
            "from_store": result.from_store, "text": result.text,
        }, ensure_ascii=False, indent=2))
    else:
        click.echo(result.text)
        src = "store" if result.from_store else f"live ({result.backend})"
        click.secho(f"[{result.key[:12]} from {src}, status {result.status}]", dim=True, err=True)


@tools.command("search")
@click.argument("query")
@click.option("-n", "--num-results", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_option
@mode_option("auto")
@backend_option(SEARCH)
@corpus_option
def search_cmd(query: str, num_results: int, as_json: bool, store: Path | None, mode: Mode,
               search_backend: str, corpus: Path | None) -> None:
    """Search QUERY and print the hits as the model sees them."""
    _run(SEARCH, {"query": query, "num_results": num_results}, as_json=as_json, store=store,
         mode=mode, search_backend=search_backend, visit_backend=None, corpus=corpus)


@tools.command("visit")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_option
@mode_option("auto")
@backend_option(VISIT)
@corpus_option
def visit_cmd(url: str, as_json: bool, store: Path | None, mode: Mode, visit_backend: str,
              corpus: Path | None) -> None:
    """Visit URL and print its text as the model sees it."""
    _run(VISIT, {"url": url}, as_json=as_json, store=store, mode=mode, search_backend=None,
         visit_backend=visit_backend, corpus=corpus)
