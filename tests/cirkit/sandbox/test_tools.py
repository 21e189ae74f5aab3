"""web_search/web_visit inside a block, served by the parent through a real Recorder."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cirkit.sandbox import Sandbox, ToolCall
from recorders import InMemoryBackend, Recorder, Store, ToolResult

from .conftest import TEST_LIMITS


def search_answer(args: Mapping[str, Any]) -> dict[str, Any]:
    q = args["query"]
    return {"results": [{"title": f"{q} {i}", "url": f"https://e.org/{i}", "snippet": f"S{i}"}
                        for i in range(args["num_results"])]}


def page_answer(args: Mapping[str, Any]) -> dict[str, Any]:
    return {"url": args["url"], "final_url": args["url"], "status_code": 200,
            "content_type": "text/html", "title": "Page", "text": f"Text of {args['url']}"}


def handler_for(rec: Recorder) -> Any:
    async def handler(tool: str, args: dict[str, Any]) -> ToolResult:
        return await rec.call(tool, args)
    return handler


#: Both dialects: the model card's names and keywords, and the demo's.
BLOCK = """\
a = web_search("night watch", num_result=2)      # card
b = web_search("night watch", max_result=2)      # demo
c = web_search("night watch", num_results=2)
d = web_search("night watch", 2)
assert a == b == c == d, (a, b)
print(a)
p = web_visit("https://e.org/1")                 # card
q = visit_webpage(url="https://e.org/1")         # demo
assert p == q
print(p)
"""


async def test_tools_record_then_replay_in_both_dialects(tmp_path: Path) -> None:
    search = InMemoryBackend("web_search", search_answer)
    visit = InMemoryBackend("web_visit", page_answer)
    rec = Recorder(Store(tmp_path / "store"), search=search, visit=visit, mode="auto")
    async with Sandbox(workers=1, limits=TEST_LIMITS, tool_handler=handler_for(rec)) as sb:
        recorded = await sb.run(BLOCK)
    assert recorded.error is None, recorded.stderr
    assert search.calls == 1 and visit.calls == 1  # the rest came from the store
    assert recorded.stdout.startswith("\nIndex: 0\nURL: https://e.org/0\nTitle: night watch 0")
    assert "Text of https://e.org/1" in recorded.stdout
    search_key = rec.keys_used[0]
    assert recorded.tool_calls[0] == ToolCall(
        "web_search", {"query": "night watch", "num_results": 2}, search_key, None,
        recorded.tool_calls[0].duration_ms)
    assert [c.tool for c in recorded.tool_calls] == ["web_search"] * 4 + ["web_visit"] * 2
    assert all(c.key and c.error is None for c in recorded.tool_calls)

    replay = Recorder(Store(tmp_path / "store"), mode="replay")  # no backend at all
    async with Sandbox(workers=1, limits=TEST_LIMITS, tool_handler=handler_for(replay)) as sb:
        replayed = await sb.run(BLOCK)
    assert (replayed.stdout, replayed.error) == (recorded.stdout, None)
    assert [c.key for c in replayed.tool_calls] == [c.key for c in recorded.tool_calls]


async def test_strict_replay_miss_is_an_error_inside_the_block(tmp_path: Path) -> None:
    replay = Recorder(Store(tmp_path / "store"), mode="replay")
    code = ("try:\n    web_search('never recorded', 3)\nexcept Exception as e:\n"
            "    print('caught:', type(e).__name__)\nweb_visit('https://never.example/')\n")
    async with Sandbox(workers=1, limits=TEST_LIMITS, tool_handler=handler_for(replay)) as sb:
        r = await sb.run(code)
        assert (await sb.run("print('next')")).stdout == "next\n"
    assert r.stdout == "caught: ToolError\n"
    assert r.error == "exception"
    assert r.stderr.startswith('Traceback (most recent call last):\n  File "<string>", line 5,'
                               ' in <module>\nToolError: web_visit failed: strict replay: '
                               "web_visit was never recorded")
    assert "_child" not in r.stderr  # the sandbox's own frames are trimmed
    assert [c.error is not None and "never recorded" in c.error for c in r.tool_calls] == \
        [True, True]
    assert r.tool_calls[0].args == {"query": "never recorded", "num_results": 3}


async def test_handler_may_return_plain_text_and_tool_time_is_not_wall_time() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def slow(tool: str, args: dict[str, Any]) -> str:
        seen.append((tool, args))
        await asyncio.sleep(0.8)  # a slow live backend: must not count against the block
        return f"<{args}>"

    async with Sandbox(workers=1, limits=TEST_LIMITS.replace(wall_time_s=1.0),
                       tool_handler=slow) as sb:
        r = await sb.run("print(web_search('q', max_result=1))\nprint(web_visit('u'))")
    assert r.error is None, r.stderr
    assert r.stdout == "<{'query': 'q', 'num_results': 1}>\n<{'url': 'u'}>\n"
    assert seen == [("web_search", {"query": "q", "num_results": 1}),
                    ("web_visit", {"url": "u"})]
    assert [c.key for c in r.tool_calls] == [None, None]


async def test_bad_arguments_no_handler_and_call_limit() -> None:
    async def echo(tool: str, args: dict[str, Any]) -> str:
        return "ok"

    async with Sandbox(workers=1, limits=TEST_LIMITS.replace(tool_calls=3),
                       tool_handler=echo) as sb:
        r = await sb.run("web_search(42)")
        assert "TypeError: web_search() query must be str, not int" in r.stderr
        r = await sb.run("web_search('q', num_result=1, max_result=2)")
        assert "TypeError" in r.stderr and r.tool_calls == []
        r = await sb.run("for i in range(5):\n    print(web_search(f'q{i}'))")
        assert r.stdout == "ok\nok\nok\n"
        assert "too many tool calls" in r.stderr and len(r.tool_calls) == 4
    async with Sandbox(workers=1, limits=TEST_LIMITS) as sb:
        r = await sb.run("web_search('q')")
        assert "ToolError: web_search failed: web_search is not available" in r.stderr
