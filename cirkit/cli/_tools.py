"""``cirkit tools search|visit``: one call through a store, printed as the model would see it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import click

from recorders import SEARCH, VISIT, ToolResult, make_key

from ._errors import Group
from ._options import RecorderOptions, recorder_options

__all__ = ["tools"]


@click.group(cls=Group)
def tools() -> None:
    """Call web_search / web_visit once, through a store."""


def _run(tool: str, args: dict[str, Any], *, as_json: bool, recorder: RecorderOptions) -> None:
    make_key(tool, args)  # a call that cannot be made fails before any store is created
    with recorder.open(tools=(tool,)) as rec:
        result: ToolResult = asyncio.run(rec.call(tool, args))
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
@recorder_options(tools=(SEARCH,))
def search_cmd(query: str, num_results: int, as_json: bool, recorder: RecorderOptions) -> None:
    """Search QUERY and print the hits as the model sees them."""
    _run(SEARCH, {"query": query, "num_results": num_results}, as_json=as_json,
         recorder=recorder)


@tools.command("visit")
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@recorder_options(tools=(VISIT,))
def visit_cmd(url: str, as_json: bool, recorder: RecorderOptions) -> None:
    """Visit URL and print its text as the model sees it."""
    _run(VISIT, {"url": url}, as_json=as_json, recorder=recorder)
