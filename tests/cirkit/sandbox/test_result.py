"""ExecResult and ToolCall as JSON: what ``to_json`` writes, ``from_json`` gives back equal."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from cirkit.sandbox import ExecResult, Sandbox, ToolCall

from .conftest import TEST_LIMITS

CALL = ToolCall("web_search", {"query": "night watch", "num_results": 3}, "k" * 64, None, 12.5)
FAILED = ToolCall("web_visit", {"url": "https://e.org/ü"}, None, "no answer within 1 seconds",
                  1000.25)
RESULT = ExecResult(stdout="a ü\n", stderr="Traceback ...\nKilled (signal SIGKILL)\n",
                    error="killed", duration_ms=3.141, tool_calls=[CALL, FAILED],
                    output_truncated=True, exit_code=-9, output="a ü\nTraceback ...\n",
                    notice="Killed (signal SIGKILL)")


def through_json(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data, ensure_ascii=False))


@pytest.mark.parametrize("result", [
    RESULT,
    ExecResult(stdout="", stderr="", error=None, duration_ms=0.0),
    replace(RESULT, exit_code=None, notice=None, error="timeout"),
])
def test_exec_result_round_trips_exactly(result: ExecResult) -> None:
    data = through_json(result.to_json())
    assert ExecResult.from_json(data) == result
    assert list(data) == ["stdout", "stderr", "error", "duration_ms", "tool_calls",
                          "output_truncated", "exit_code", "output", "notice"]


def test_tool_call_json_keeps_the_recorded_format() -> None:
    """Rollouts and ``cirkit exec`` record calls without their duration; that stays."""
    assert CALL.to_json() == {"tool": "web_search", "args": {"query": "night watch",
                                                             "num_results": 3},
                              "key": "k" * 64, "error": None}
    assert ToolCall.from_json(CALL.to_json()) == replace(CALL, duration_ms=0.0)
    assert ToolCall.from_json(through_json(CALL.to_json(with_duration=True))) == CALL


def test_from_json_ignores_other_keys_and_names_missing_ones() -> None:
    assert ExecResult.from_json({**RESULT.to_json(), "key": "a store key"}) == RESULT
    with pytest.raises(ValueError, match="no stdout, notice"):
        ExecResult.from_json({k: v for k, v in RESULT.to_json().items()
                              if k not in ("stdout", "notice")})
    with pytest.raises(ValueError, match="no key"):
        ToolCall.from_json({"tool": "web_visit", "args": {}, "error": None})


class _Answer:
    text = "an answer"
    key = "e" * 64


async def test_a_real_block_result_round_trips() -> None:
    async def handler(tool: str, args: dict[str, Any]) -> _Answer:
        return _Answer()

    async with Sandbox(workers=1, limits=TEST_LIMITS, tool_handler=handler) as sb:
        r = await sb.run("print(web_search('q', 2))\nimport sys\n"
                         "print('to stderr', file=sys.stderr)\n1/0")
    assert r.error == "exception" and r.tool_calls[0].key == "e" * 64
    assert r.tool_calls[0].duration_ms > 0
    assert ExecResult.from_json(through_json(r.to_json())) == r


def test_the_stored_record_form_is_pinned() -> None:
    """What a rollout stores as a ``code_exec`` answer: recorded stores hold these keys and
    values, so they replay only while this form stays the same."""
    record = RESULT.to_json(record=True)
    assert list(record) == ["stdout", "stderr", "error", "notice", "duration_ms",
                            "output_truncated", "tool_calls"]
    assert record["duration_ms"] == round(RESULT.duration_ms, 3)
    assert all(set(c) == {"tool", "args", "key", "error"} for c in record["tool_calls"])
    back = ExecResult.from_json(json.loads(json.dumps(record)))
    assert back.to_json(record=True) == record
    assert (back.exit_code, back.output) == (None, "")  # not part of the record
