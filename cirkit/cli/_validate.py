"""``cirkit validate``: check every CIR trace of a JSONL file and summarise the problems."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.console import Console
from rich.table import Table

from ..cir import PROBLEM_CODES, Problem, is_valid
from ..cir import validate as validate_trace

__all__ = ["validate"]

_TEXT_FIELDS = ("text", "response_text")


class _Malformed(Exception):
    """A line that holds no trace; the message names what is wrong."""


def _content(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI-style content parts
        parts = [p.get("text") for p in value if isinstance(p, dict)]
        if parts and all(isinstance(t, str) for t in parts):
            return "".join(str(t) for t in parts)
    raise _Malformed("the assistant message content is not text")


def _from_messages(row: dict[str, Any]) -> str:
    msgs = row.get("messages")
    if not isinstance(msgs, list):
        raise _Malformed("no 'messages' list")
    assistant = [m for m in msgs if isinstance(m, dict) and m.get("role") == "assistant"]
    if not assistant:
        raise _Malformed("'messages' has no assistant message")
    return _content(assistant[-1].get("content"))


def _from_text(row: dict[str, Any]) -> str:
    for name in _TEXT_FIELDS:
        if name in row:
            if not isinstance(row[name], str):
                raise _Malformed(f"field {name!r} is not a string")
            return str(row[name])
    raise _Malformed(f"none of the fields {', '.join(_TEXT_FIELDS)}")


def _trace(line: str, field: str) -> tuple[str | None, str]:
    """(trace id, CIR text) of one JSONL line."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise _Malformed(f"not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise _Malformed(f"expected a JSON object, got {type(row).__name__}")
    rid = row.get("id", row.get("trajectory_id"))
    tid = None if rid is None else str(rid)
    if field == "text":
        return tid, _from_text(row)
    if field == "messages":
        return tid, _from_messages(row)
    if any(n in row for n in _TEXT_FIELDS):
        return tid, _from_text(row)
    if "messages" in row:
        return tid, _from_messages(row)
    raise _Malformed(f"no trace: expected one of {', '.join(_TEXT_FIELDS)} or messages")


def _lines(stream: IO[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            yield n, line


def _where(path: str, n: int, tid: str | None) -> str:
    return f"{path}:{n}" + (f" [{tid}]" if tid is not None else "")


def _echo_problem(where: str, p: Problem) -> None:
    color = "red" if p.severity == "error" else "yellow"
    click.echo(f"{where} {p.line}:{p.col} " + click.style(f"{p.severity} {p.code}", fg=color)
               + f": {p.message}")


def _summary(traces: int, valid: int, malformed: int, counts: Counter[str]) -> None:
    console = Console(highlight=False)
    t = Table(title="cirkit validate", show_header=False)
    t.add_row("traces", str(traces))
    t.add_row("valid", f"[green]{valid}[/green]")
    t.add_row("invalid", f"[red]{traces - valid}[/red]" if traces - valid else "0")
    if malformed:
        t.add_row("malformed lines", f"[red]{malformed}[/red]")
    console.print(t)
    if counts:
        by_code = Table("problem", "severity", "count", title="problems")
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            by_code.add_row(code, PROBLEM_CODES[code][0], str(n))
        console.print(by_code)


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--field", type=click.Choice(["auto", "text", "messages"]), default="auto",
              show_default=True,
              help="Where the trace is: text/response_text, or the last assistant message "
                   "of messages (auto: whichever the line has).")
@click.option("--max-code-blocks", default=32, show_default=True, type=click.IntRange(min=0),
              help="More code blocks than this is an error.")
@click.option("--unfinished", is_flag=True,
              help="Traces may stop mid-way (no </think>, last block without output).")
@click.option("--dialect", type=click.Choice(["card", "demo"]), default=None,
              help="Warn about tool names of the other dialect.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per trace, no table.")
def validate(path: str, field: str, max_code_blocks: int, unfinished: bool,
             dialect: str | None, as_json: bool) -> None:
    """Check the CIR traces in PATH (JSONL, one trace per line; '-' reads stdin).

    Prints every problem with its position and a summary; exits 1 if any trace is invalid
    or any line holds no trace.
    """
    traces = valid = malformed = 0
    counts: Counter[str] = Counter()
    with click.open_file(path, encoding="utf-8", errors="replace") as stream:
        for n, line in _lines(stream):
            try:
                tid, text = _trace(line, field)
            except _Malformed as e:
                malformed += 1
                if as_json:
                    click.echo(json.dumps({"line": n, "error": str(e)}))
                else:
                    click.secho(f"{path}:{n}: malformed line: {e}", fg="red", err=True)
                continue
            problems = validate_trace(text, finished=not unfinished,
                                      max_code_blocks=max_code_blocks, dialect=dialect)
            traces += 1
            ok = is_valid(problems)
            valid += int(ok)
            counts.update(p.code for p in problems)
            if as_json:
                click.echo(json.dumps({"line": n, "id": tid, "valid": ok,
                                       "problems": [p.to_json() for p in problems]},
                                      ensure_ascii=False))
            else:
                for p in problems:
                    _echo_problem(_where(path, n, tid), p)
    if not as_json:
        _summary(traces, valid, malformed, counts)
    if malformed == 0 and traces == 0 and not as_json:
        click.echo("hint: the file has no traces", err=True)
    if valid < traces or malformed:
        sys.exit(1)
