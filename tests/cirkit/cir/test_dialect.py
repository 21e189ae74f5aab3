"""One tool table: every spelling the table accepts, the validator accepts and the sandbox's
tool functions bind to the same canonical call; everything else is refused by both."""

from __future__ import annotations

from typing import Any

import pytest

from cirkit.cir import (
    DIALECTS,
    TOOLS,
    continuation,
    detect_dialect,
    get_tool,
    tool_functions,
    validate,
)

END = "</think>\nAnswer."


def _trace(code: str) -> str:
    return continuation("<think>\n<start_code>\n```python\n" + code + "\n```", "ok") + "\n" + END


def _calls() -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    seen: list[tuple[str, dict[str, Any]]] = []

    def call(tool: str, args: dict[str, Any]) -> str:
        seen.append((tool, args))
        return "ok"

    return seen, tool_functions(call)


# (code, the canonical call it makes)
ACCEPTED = [
    ("web_search('q')", ("web_search", {"query": "q", "num_results": 5})),
    ("web_search('q', 3)", ("web_search", {"query": "q", "num_results": 3})),
    ("web_search('q', num_results=3)", ("web_search", {"query": "q", "num_results": 3})),
    ("web_search('q', num_result=3)", ("web_search", {"query": "q", "num_results": 3})),
    ("web_search('q', max_result=3)", ("web_search", {"query": "q", "num_results": 3})),
    ("web_search('q', max_results=3)", ("web_search", {"query": "q", "num_results": 3})),
    ("web_search(query='q', num_result=2.0)", ("web_search", {"query": "q", "num_results": 2})),
    ("web_visit('u')", ("web_visit", {"url": "u"})),
    ("web_visit(url='u')", ("web_visit", {"url": "u"})),
    ("visit_webpage('u')", ("web_visit", {"url": "u"})),
]


@pytest.mark.parametrize(("code", "expected"), ACCEPTED)
def test_validator_and_sandbox_accept_the_same_calls(code: str, expected: Any) -> None:
    assert validate(_trace(f"print({code})")) == []
    seen, ns = _calls()
    eval(code, dict(ns))  # the functions a block sees
    assert seen == [expected]


REFUSED = [
    ("web_search('q', limit=3)", TypeError, "unexpected keyword argument 'limit'"),
    ("web_visit('u', num_result=3)", TypeError, "unexpected keyword argument 'num_result'"),
    ("visit_webpage(link='u')", TypeError, "unexpected keyword argument 'link'"),
]


@pytest.mark.parametrize(("code", "error", "match"), REFUSED)
def test_validator_and_sandbox_refuse_the_same_keywords(code: str, error: type[Exception],
                                                        match: str) -> None:
    assert [p.code for p in validate(_trace(f"print({code})"))] == ["unknown_tool_argument"]
    seen, ns = _calls()
    with pytest.raises(error, match=match):
        eval(code, dict(ns))
    assert seen == []


@pytest.mark.parametrize(("code", "match"), [
    ("web_search()", "missing 1 required positional argument: 'query'"),
    ("web_search(3)", "query must be str"),
    ("web_search('q', num_result=1, max_result=2)", "more than one result count"),
    ("web_search('q', 0)", "positive int"),
    ("web_search('q', True)", "positive int"),
    ("web_search('q', float('nan'))", "positive int"),
    ("web_search('q', float('inf'))", "positive int"),
    ("web_visit('u', 'v')", "at most 1 positional"),
    ("web_visit(url='u', url2='v')", "unexpected keyword"),
])
def test_bad_calls_raise_as_python_would(code: str, match: str) -> None:
    _, ns = _calls()
    with pytest.raises((TypeError, ValueError), match=match):
        eval(code, dict(ns))


def test_every_spelling_and_dialect_marker_comes_from_the_table() -> None:
    spellings = {s for t in TOOLS.values() for s in t.spellings}
    _, ns = _calls()
    assert set(ns) == spellings == {"web_search", "web_visit", "visit_webpage"}
    for d in DIALECTS.values():
        assert get_tool(d.search).name == "web_search" and get_tool(d.visit).name == "web_visit"
        assert d.count_param in TOOLS["web_search"].keywords
    assert DIALECTS["card"].markers == {"web_visit", "num_result"}
    assert DIALECTS["demo"].markers == {"visit_webpage", "max_result"}
    assert detect_dialect(_trace("print(web_search('q', num_results=2))")) is None
    with pytest.raises(ValueError, match="unknown tool 'google'"):
        get_tool("google")


@pytest.mark.parametrize(("code", "expected"), ACCEPTED)
def test_the_pytest_fixture_accepts_the_same_calls(code: str, expected: Any) -> None:
    from cirkit.pytest_plugin import CirkitTools
    from recorders import InMemoryBackend, Recorder

    seen: list[tuple[str, dict[str, Any]]] = []

    def answer(tool: str) -> Any:
        def handle(args: Any) -> dict[str, Any]:
            seen.append((tool, dict(args)))
            if tool == "web_search":
                return {"hits": []}
            return {"url": args["url"], "title": "", "text": "ok"}
        return handle

    rec = Recorder(None, search=InMemoryBackend("web_search", answer("web_search")),
                   visit=InMemoryBackend("web_visit", answer("web_visit")), mode="off")
    tools = CirkitTools(rec)
    eval(code, {name: getattr(tools, name)
                for name in ("web_search", "web_visit", "visit_webpage")})
    assert seen == [expected]
