"""``cirkit validate``: check every CIR trace of a file and summarise the problems.

Rows are read by ``cirkit.inputs.read_traces``, as ``cirkit build sft`` reads text-only traces:
what this command calls a malformed line, the build drops as not well formed (same reason
code), and a trace without a question, which it checks all the same, the build cannot use.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import cast

import click
from rich.console import Console
from rich.table import Table

from cirkit.cir import CARD, DIALECTS, PROBLEM_CODES, Problem, is_valid
from cirkit.cir import validate as validate_trace
from cirkit.inputs import TraceField, read_traces

__all__ = ["validate"]


def _where(path: str, n: int, tid: str | None) -> str:
    return f"{path}:{n}" + (f" [{tid}]" if tid is not None else "")


def _echo_problem(where: str, p: Problem) -> None:
    color = "red" if p.severity == "error" else "yellow"
    click.echo(f"{where} {p.line}:{p.col} " + click.style(f"{p.severity} {p.code}", fg=color)
               + f": {p.message}")


def _summary(traces: int, valid: int, malformed: int, unbuildable: Counter[str],
             counts: Counter[str]) -> None:
    console = Console(highlight=False)
    t = Table(title="cirkit validate", show_header=False)
    t.add_row("traces", str(traces))
    t.add_row("valid", f"[green]{valid}[/green]")
    t.add_row("invalid", f"[red]{traces - valid}[/red]" if traces - valid else "0")
    if malformed:
        t.add_row("malformed lines", f"[red]{malformed}[/red]")
    if unbuildable:
        t.add_row("not buildable", "[yellow]" + ", ".join(
            f"{n} {reason}" for reason, n in sorted(unbuildable.items())) + "[/yellow]")
    console.print(t)
    if unbuildable:
        console.print("[yellow]hint[/yellow]: traces whose prompt is missing or broken are "
                      "checked, but cirkit build sft drops them (its well_formed filter)")
    if counts:
        by_code = Table("problem", "severity", "count", title="problems")
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            by_code.add_row(code, PROBLEM_CODES[code][0], str(n))
        console.print(by_code)


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--field", type=click.Choice(["auto", "text", "messages"]), default="auto",
              show_default=True,
              help="Where the trace is: the last assistant message of messages, or a flat "
                   "row's response/completion/response_text/text (auto: messages when the row "
                   "has them, as cirkit build sft reads it).")
@click.option("--max-code-blocks", default=CARD.max_code_blocks, show_default=True,
              type=click.IntRange(min=0),
              help="More code blocks than this is an error.")
@click.option("--unfinished", is_flag=True,
              help="Traces may stop mid-way (no </think>, last block without output).")
@click.option("--dialect", type=click.Choice(sorted(DIALECTS)), default=None,
              help="Warn about tool names of the other dialect.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trace, no table.")
def validate(path: str, field: str, max_code_blocks: int, unfinished: bool,
             dialect: str | None, as_json: bool) -> None:
    """Check the CIR traces in PATH (JSONL, one trace per line, or parquet; '-' reads stdin).

    Rows are the ones cirkit build sft takes: messages, or question/prompt with response,
    completion, response_text or text. Prints every problem with its position and a summary;
    exits 1 if any trace is invalid or any line holds no trace.
    """
    traces = valid = malformed = 0
    counts: Counter[str] = Counter()
    unbuildable: Counter[str] = Counter()
    source = sys.stdin.buffer if path == "-" else path
    for t in read_traces(source, field=cast(TraceField, field), name=path):
        if t.text is None:
            malformed += 1
            if as_json:
                click.echo(json.dumps({"line": t.line, "error": t.detail, "reason": t.reason},
                                      ensure_ascii=False))
            else:
                click.secho(f"{path}:{t.line}: malformed line: {t.detail}", fg="red", err=True)
            continue
        problems = validate_trace(t.text, finished=not unfinished,
                                  max_code_blocks=max_code_blocks, dialect=dialect)
        traces += 1
        ok = is_valid(problems)
        valid += int(ok)
        counts.update(p.code for p in problems)
        if t.reason is not None:
            unbuildable[t.reason] += 1
        if as_json:
            click.echo(json.dumps({"line": t.line, "id": t.id, "valid": ok,
                                   "problems": [p.to_json() for p in problems]},
                                  ensure_ascii=False))
        else:
            for p in problems:
                _echo_problem(_where(path, t.line, t.id), p)
    if not as_json:
        _summary(traces, valid, malformed, unbuildable, counts)
    if valid < traces or malformed:
        sys.exit(1)
