"""Calls files (``cirkit record``, the demo's tools stage): one tool call per row.

A row is ``{"query": ..., "num_results"?}`` or ``{"url": ...}``, optionally with ``"tool"``.
The tool names and argument spellings come from ``cirkit.cir.TOOLS``, the table the sandbox
and the validator use: a calls file may spell a call as any trace may (``visit_webpage``,
``num_result``, ``max_result``...), plus the short names ``search`` and ``visit``.
"""

from __future__ import annotations

import os
from typing import Any

from cirkit.cir import TOOLS, Tool, get_tool
from cirkit.errors import InputError

from ._read import RowError, file_format, iter_rows

__all__ = ["CALL_TOOL_NAMES", "call_from_row", "read_calls"]


def _short(tool: Tool) -> str:
    return tool.name.removeprefix("web_")


#: Every name a row's ``"tool"`` may give -> the canonical tool.
CALL_TOOL_NAMES: dict[str, str] = dict(sorted(
    [(s, t.name) for t in TOOLS.values() for s in t.spellings]
    + [(_short(t), t.name) for t in TOOLS.values()]))


def _required(tool: Tool) -> list[str]:
    return [p.name for p in tool.params if p.default is None]


def _needs(*tools: Tool) -> str:
    return "needs a string " + " or ".join(
        f"{' and '.join(repr(n) for n in _required(t))} ({_short(t)})"
        for t in tools or TOOLS.values())


def _infer(row: dict[str, Any]) -> Tool:
    """The tool whose required string arguments the row holds."""
    fits = [t for t in TOOLS.values()
            if all(isinstance(row.get(n), str) for n in _required(t))]
    if len(fits) != 1:
        raise ValueError(_needs() if not fits else
                         "holds arguments of " + " and ".join(_short(t) for t in fits)
                         + ': say which with "tool"')
    return fits[0]


def call_from_row(row: dict[str, Any], *, num_results: int) -> tuple[str, dict[str, Any]]:
    """The canonical ``(tool, args)`` of one row; ValueError saying what is wrong."""
    name = row.get("tool")
    if name is None:
        tool = _infer(row)
    else:
        if not isinstance(name, str) or name not in CALL_TOOL_NAMES:
            raise ValueError(f"unknown tool {name!r}: expected one of "
                             + ", ".join(CALL_TOOL_NAMES))
        tool = get_tool(CALL_TOOL_NAMES[name])
        if not all(isinstance(row.get(n), str) for n in _required(tool)):
            raise ValueError(_needs(tool))
    kwargs = {k: v for k, v in row.items() if k in tool.keywords}
    counts = [p for p in tool.params if p.kind == "count"]
    if counts and not any(row.get(k) is not None for p in counts for k in p.keywords):
        kwargs[counts[0].name] = num_results
    try:
        return tool.name, tool.bind(tool.name, (), kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(str(e).replace(f"{tool.name}() ", "", 1)) from None


def read_calls(path: str | os.PathLike[str], *, num_results: int
               ) -> list[tuple[str, dict[str, Any]]]:
    """Every call of a calls file (JSONL whatever its suffix, unless it names CSV/TSV/parquet),
    as canonical ``(tool, args)``; ``num_results`` for searches that give no count.

    Every bad row is reported in one ``InputError`` and nothing is returned: a recording
    never runs half a file.
    """
    problems: list[tuple[int, str]] = []

    def bad(e: InputError) -> None:
        problems.append((e.line or 0, e.reason if isinstance(e, RowError) else e.message))

    calls: list[tuple[str, dict[str, Any]]] = []
    for line, row in iter_rows(path, fmt=file_format(path, fallback="jsonl"), on_bad_row=bad):
        try:
            calls.append(call_from_row(row, num_results=num_results))
        except ValueError as e:
            problems.append((line, str(e)))
    if problems:
        listed = [f"line {n}: {what}" for n, what in sorted(problems)]
        shown = "\n  ".join(listed[:10]) + ("\n  ..." if len(listed) > 10 else "")
        raise InputError(f"{len(problems)} bad line(s), nothing recorded:\n  {shown}",
                         path=os.fspath(path), hint="fix the lines above; one JSON object per line")
    return calls
