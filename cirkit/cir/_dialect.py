"""The tools a CIR block may call, and the two dialects that spell them: one table.

The model card calls ``web_search(query, num_result)`` and ``web_visit(url)``; the II-Researcher
demo calls ``web_search(query, max_result=5)`` and ``visit_webpage(url)``. A trace of either
dialect must run, so every spelling maps to one canonical tool and canonical arguments
(``{"query", "num_results"}`` or ``{"url"}``), the form the store keys. The validator, the
sandbox's tool functions, the pytest fixture and ``cirkit record``'s call reader are all
generated from ``TOOLS``: what one accepts, all accept.

This module imports nothing heavy: sandbox workers import it and pay for it at every fork.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DIALECTS",
    "TOOLS",
    "Dialect",
    "Param",
    "Tool",
    "get_dialect",
    "get_tool",
    "tool_functions",
]

DialectName = Literal["card", "demo"]


@dataclass(slots=True, frozen=True)
class Param:
    """One argument: its canonical name, the keyword spellings a block may use, and whether it
    is a string or a result count. ``default`` None means required."""

    name: str
    kind: Literal["str", "count"]
    aliases: tuple[str, ...] = ()
    default: int | None = None

    @property
    def keywords(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(slots=True, frozen=True)
class Tool:
    """A canonical tool (``web_search``/``web_visit``), the function names that reach it and
    its parameters in positional order."""

    name: str
    spellings: tuple[str, ...]
    params: tuple[Param, ...]

    @property
    def keywords(self) -> frozenset[str]:
        """Every keyword any spelling of this tool accepts."""
        return frozenset(k for p in self.params for k in p.keywords)

    def bind(self, spelling: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
             ) -> dict[str, Any]:
        """The canonical arguments of a call ``spelling(*args, **kwargs)``; raises the
        TypeError/ValueError a Python function would, with the name the block used."""
        if len(args) > len(self.params):
            raise TypeError(f"{spelling}() takes at most {len(self.params)} positional "
                            f"arguments but {len(args)} were given")
        given: dict[str, list[Any]] = {p.name: [] for p in self.params}
        for p, value in zip(self.params, args, strict=False):
            given[p.name].append(value)
        for kw, value in kwargs.items():
            param = next((p for p in self.params if kw in p.keywords), None)
            if param is None:
                raise TypeError(f"{spelling}() got an unexpected keyword argument {kw!r}")
            given[param.name].append(value)
        out: dict[str, Any] = {}
        for p in self.params:
            values = [v for v in given[p.name] if not (p.kind == "count" and v is None)]
            if len(values) > 1:
                raise TypeError(f"{spelling}() got more than one result count"
                                if p.kind == "count" else
                                f"{spelling}() got multiple values for argument {p.name!r}")
            if not values:
                if p.default is None:
                    raise TypeError(f"{spelling}() missing 1 required positional argument: "
                                    f"{p.name!r}")
                out[p.name] = p.default
                continue
            out[p.name] = _check(spelling, p, values[0])
        return out


def _check(spelling: str, p: Param, value: Any) -> Any:
    if p.kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"{spelling}() {p.name} must be str, not {type(value).__name__}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
            or value in (float("inf"), float("-inf")) or value != int(value) or value < 1:
        raise ValueError(f"{spelling}() result count must be a positive int, not {value!r}")
    return int(value)


#: Every tool a block may call, by canonical name.
TOOLS: dict[str, Tool] = {
    "web_search": Tool("web_search", ("web_search",), (
        Param("query", "str"),
        Param("num_results", "count", ("num_result", "max_result", "max_results"), default=5),
    )),
    "web_visit": Tool("web_visit", ("web_visit", "visit_webpage"), (Param("url", "str"),)),
}
#: Function name (any dialect's spelling) -> the tool it calls.
_BY_SPELLING: dict[str, Tool] = {s: t for t in TOOLS.values() for s in t.spellings}


def get_tool(name: str) -> Tool:
    """The tool a function name (``web_visit``, ``visit_webpage``...) or canonical name calls."""
    try:
        return _BY_SPELLING[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}: expected one of "
                         f"{', '.join(sorted(_BY_SPELLING))}") from None


@dataclass(slots=True, frozen=True)
class Dialect:
    """How a family of traces spells the tools: the function names, the result-count keyword,
    and the signatures its prompt shows."""

    name: DialectName
    search: str
    visit: str
    count_param: str
    search_signature: str
    visit_signature: str

    @property
    def markers(self) -> frozenset[str]:
        """Names and keywords that only this dialect uses (evidence in a trace)."""
        other = next(d for d in DIALECTS.values() if d.name != self.name)
        mine = {self.search, self.visit, self.count_param}
        return frozenset(mine - {other.search, other.visit, other.count_param})


#: The model card's names and the II-Researcher demo's names (see docs on dialects).
DIALECTS: dict[str, Dialect] = {
    "card": Dialect("card", "web_search", "web_visit", "num_result",
                    "web_search(query: str, num_result: int)", "web_visit(url: str)"),
    "demo": Dialect("demo", "web_search", "visit_webpage", "max_result",
                    "web_search(query: str, max_result: int = 5)", "visit_webpage(url: str)"),
}


def get_dialect(dialect: str | Dialect) -> Dialect:
    """The Dialect for a name ("card" or "demo"); a clear error for anything else."""
    if isinstance(dialect, Dialect):
        return dialect
    try:
        return DIALECTS[dialect]
    except KeyError:
        raise ValueError(
            f"unknown dialect {dialect!r}: expected one of {', '.join(DIALECTS)}") from None


def tool_functions(call: Callable[[str, dict[str, Any]], str]) -> dict[str, Callable[..., str]]:
    """One Python function per spelling, each binding its arguments through the table and
    calling ``call(tool, canonical_args)``: the namespace a code block sees."""

    def make(spelling: str, tool: Tool) -> Callable[..., str]:
        def fn(*args: Any, **kwargs: Any) -> str:
            return call(tool.name, tool.bind(spelling, args, kwargs))

        fn.__name__ = fn.__qualname__ = spelling
        params = ", ".join(p.name if p.default is None else f"{p.name}={p.default}"
                           for p in tool.params)
        fn.__doc__ = f"{spelling}({params}) -> str: the {tool.name} tool."
        return fn

    return {s: make(s, t) for s, t in _BY_SPELLING.items()}
