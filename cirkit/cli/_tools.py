"""``cirkit tools search|visit``: one call through a store, printed as the model would see it;
``cirkit tools serve``: the store as an HTTP service for RL frameworks (``cirkit.toolserver``)."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import click

from cirkit.cir import CARD
from recorders import SEARCH, VISIT, ToolResult, make_key

from ._errors import Group
from ._options import SECONDS, RecorderOptions, recorder_options

__all__ = ["tools"]


@click.group(cls=Group)
def tools() -> None:
    """Call web_search / web_visit once, or serve them, through a store."""


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


@tools.command("serve")
@recorder_options(default_mode="replay")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface of this machine).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port; the URL is printed).")
@click.option("--on-miss", type=click.Choice(["error", "local"]), default="error",
              show_default=True,
              help="Replay: a call the store lacks is an error response, or is answered by "
                   "the local backend (over --corpus) and flagged as such.")
@click.option("--tokenizer", default=None,
              help="The model's tokenizer (directory or tokenizer.json): enables the cir tool "
                   "of /get_observation, whose observations are cut in its tokens.")
@click.option("--max-observation-tokens", default=CARD.max_observation_tokens,
              show_default=True, type=click.IntRange(min=1))
@click.option("--block-timeout", default=10.0, show_default=True, type=SECONDS,
              help="Seconds a code block may run (as cirkit rollout's).")
@click.option("--demo-error-hint", is_flag=True,
              help="Replace a failed block's output by the demo's fixed hint.")
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Sandbox workers (blocks running at once) [default: CPUs + 1].")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info"]),
              default="warning", show_default=True)
def serve_cmd(recorder: RecorderOptions, host: str, port: int, on_miss: str,
              tokenizer: str | None, max_observation_tokens: int, block_timeout: float,
              demo_error_hint: bool, workers: int | None, log_level: str) -> None:
    """Serve the store over HTTP to RL frameworks until Ctrl-C.

    POST /retrieve (Search-R1: verl's SearchTool, SkyRL, ROLL; JSON or msgpack),
    POST /get_observation (verl-tool, with the cir tool when --tokenizer is given),
    POST /web_search and /web_visit, GET /health, GET /metrics (Prometheus).

    Replay (the default) reads the store only: any number of replicas may serve one store.
    In auto or record mode give each replica its own store, then `cirkit store merge` them.
    """
    from cirkit.tokenizer import ModelTokenizer
    from cirkit.toolserver import ToolService, bind, create_app, run_app, url_of
    from recorders import Mode, Recorder
    from recorders.backends import LocalSearch, LocalVisit

    if on_miss == "local" and recorder.mode is not Mode.REPLAY:
        raise click.UsageError("--on-miss local is for --mode replay; other modes answer a "
                               "call the store lacks from --backend / --visit-backend")
    tok = ModelTokenizer(tokenizer, require_chat_template=False) if tokenizer else None
    fallback = None
    if on_miss == "local":
        search = LocalSearch(corpus=recorder.corpus).prepare()
        fallback = Recorder(None, mode=Mode.OFF, search=search,
                            visit=LocalVisit(corpus=search.corpus), track_keys=False)
    sock = bind(host, port)
    url = url_of(sock)
    with sock, recorder.open(track_keys=False) as rec:
        service = ToolService(rec, fallback=fallback, tokenizer=tok,
                              max_observation_tokens=max_observation_tokens,
                              block_timeout=block_timeout, demo_error_hint=demo_error_hint,
                              workers=workers)

        def ready() -> None:
            click.echo(url)
            where = rec.store.path if rec.store is not None else "no store"
            click.echo(f"serving {where} in mode {rec.mode} (cir tool "
                       f"{'on' if tok else 'off: give --tokenizer'}); Ctrl-C stops it", err=True)

        def terminate(signum: int, frame: object) -> None:  # as Ctrl-C: stores closed
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, terminate)
        try:
            run_app(create_app(service), sock, log_level=log_level, on_ready=ready)
        except KeyboardInterrupt:  # uvicorn re-raises the signal once it has shut down
            click.echo("stopped", err=True)
        finally:
            signal.signal(signal.SIGTERM, previous)
