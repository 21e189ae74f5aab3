"""``cirkit exec BLOCK``: run one code block as a rollout would and print the observation.

The block's ``web_search``/``web_visit`` go through a Recorder over the store, so
``--mode replay`` runs a recorded block with no network and no key.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click

from cirkit.cir import CARD, START_CODE, parse, wrap_observation
from cirkit.sandbox import ExecResult, Limits, MiB, Sandbox
from recorders import Mode, Recorder

from ._options import SECONDS, RecorderOptions, recorder_options

__all__ = ["exec_cmd"]


def _code_of(text: str) -> str:
    """The Python of BLOCK: a bare script, or the first code block of a CIR text."""
    if START_CODE in text:
        for seg in parse(text):
            if seg.kind == "code":
                return seg.body
    return text


def _observation(r: ExecResult, tokenizer: str | None, max_tokens: int) -> str:
    if tokenizer is None:  # no token budget without the model's tokenizer
        return wrap_observation(r.stdout + r.stderr)
    from cirkit.cir import make_observation
    from cirkit.tokenizer import load_tokenizer

    tok = load_tokenizer(tokenizer)
    return make_observation(r.stdout, r.stderr, error=r.notice, tokenizer=tok,
                            max_tokens=max_tokens).text


async def _run(code: str, rec: Recorder, limits: Limits,
               isolation: str) -> tuple[ExecResult, dict[str, Any]]:
    async def handler(tool: str, args: dict[str, Any]) -> Any:
        return await rec.call(tool, args)

    async with Sandbox(workers=1, limits=limits, tool_handler=handler,
                       isolation=isolation) as sb:
        info = {"isolation": sb.isolation, "features": sorted(sb.features),
                "warnings": list(sb.warnings)}
        return await sb.run(code), info


@click.command("exec")
@click.argument("block", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@recorder_options()
@click.option("--timeout", type=SECONDS, default=10.0,
              show_default=True, help="Wall time in seconds (tool calls excluded).")
@click.option("--memory-mb", type=click.IntRange(min=32), default=4096, show_default=True,
              help="Address-space limit (RLIMIT_AS).")
@click.option("--isolation", type=click.Choice(["auto", "netns", "audit-hook"]),
              default="auto", show_default=True,
              help="auto/netns: kernel namespaces (network, PID, IPC, filesystem view); "
                   "audit-hook: a Python-level hook only, weaker (warned about; auto never "
                   "falls back to it unless CIRKIT_SANDBOX_ALLOW_AUDIT_HOOK=1).")
@click.option("--tokenizer", default=None,
              help="The model's tokenizer (a model directory, its tokenizer.json, or a model id "
                   "in the local Hugging Face cache) to cut the observation to "
                   "--max-tokens; without it nothing is cut.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=CARD.max_observation_tokens,
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("-v", "--verbose", is_flag=True,
              help="Also print the isolation in force, the error reason and the tool calls.")
def exec_cmd(block: Path, recorder: RecorderOptions, timeout: float, memory_mb: int,
             isolation: str, tokenizer: str | None, max_tokens: int, as_json: bool,
             verbose: bool) -> None:
    """Run the Python code block BLOCK (a file, or - for stdin) in the sandbox and print
    the observation the model would get."""
    ctx = click.get_current_context()
    mode = recorder.mode
    if recorder.store is None and \
            ctx.get_parameter_source("mode") is click.core.ParameterSource.DEFAULT:
        mode = Mode.OFF  # no store given: answer tool calls live from the local backends
    text = sys.stdin.read() if str(block) == "-" else _read(block)
    limits = Limits(wall_time_s=timeout, memory_bytes=memory_mb * MiB)
    with recorder.open(mode=mode) as rec:
        result, info = asyncio.run(_run(_code_of(text), rec, limits, isolation))
    if info["isolation"] == "audit-hook":  # weaker: never silent (the CLI's own line)
        click.echo("warning: the sandbox ran in audit-hook mode (no kernel isolation: native "
                   "code reaches loopback, host files are readable); trusted code only",
                   err=True)
    observation = _observation(result, tokenizer, max_tokens)
    if as_json:
        click.echo(json.dumps({
            "observation": observation, "stdout": result.stdout, "stderr": result.stderr,
            "error": result.error, "notice": result.notice, "exit_code": result.exit_code,
            "duration_ms": result.duration_ms, "output_truncated": result.output_truncated,
            "tool_calls": [c.to_json() for c in result.tool_calls], **info,
        }, ensure_ascii=False, indent=2))
        return
    click.echo(observation)
    if verbose:
        feats = ", ".join(info["features"]) or "none"
        click.secho(f"[isolation: {info['isolation']} ({feats}); error: {result.error}; "
                    f"{result.duration_ms:.1f} ms; {len(result.tool_calls)} tool calls]",
                    dim=True, err=True)
        for w in info["warnings"]:
            click.secho(f"[warning: {w}]", fg="yellow", err=True)
        for c in result.tool_calls:
            key = (c.key or "-")[:12]
            tail = f" error: {c.error.splitlines()[0]}" if c.error else ""
            click.secho(f"[{c.tool} {json.dumps(c.args, ensure_ascii=False)} {key}{tail}]",
                        dim=True, err=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror}", param_hint="BLOCK") \
            from None
