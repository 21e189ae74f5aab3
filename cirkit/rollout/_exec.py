"""Code blocks run through the store: a replay gets the very same output and timing, even for
code that prints the time.

The sandbox's :class:`~cirkit.sandbox.ExecResult` is stored as its JSON (tool ``code_exec``)
and read back from it, so a live run and a replay hand the rollout the same values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from recorders import EXECUTION, Recorder, Response

from ..sandbox import ExecResult, ToolCall

__all__ = ["NO_CODE", "CodeRun", "Runner", "exec_runner", "no_code_run"]

# Names no marker literally: an observation must never hold a token the model only generates.
NO_CODE = ("Error: no well-formed code block was found. Open the block with the start-code "
           "marker and a python fence, and close it with a fence and the end-code marker.")


@dataclass(slots=True, frozen=True)
class CodeRun:
    """A block's run as a rollout uses it: the sandbox's result, and the store key of the run
    (None when nothing was stored)."""

    result: ExecResult
    key: str | None = None


#: Runs one block's code: what a rollout calls for every ``<end_code>``.
Runner = Callable[[str], Awaitable[CodeRun]]


def no_code_run() -> CodeRun:
    """What a turn ending in ``<end_code>`` without a well-formed block gets (nothing runs)."""
    return CodeRun(ExecResult(stdout="", stderr=NO_CODE, error="no_code", duration_ms=0.0))


# MERGE(sandbox): local stand-ins for ExecResult.to_json() / ExecResult.from_json(), which the
# sandbox branch adds. The keys, their order and the rounding must stay exactly these: they are
# the stored ``code_exec`` blob, and a changed blob is a changed store (replays stop matching).
# At merge, call r.to_json() and ExecResult.from_json(d) in exec_runner and delete both.
def _exec_result_to_json(r: ExecResult) -> dict[str, Any]:
    return {"stdout": r.stdout, "stderr": r.stderr, "error": r.error, "notice": r.notice,
            "duration_ms": round(r.duration_ms, 3), "output_truncated": r.output_truncated,
            "tool_calls": [c.to_json() for c in r.tool_calls]}


def _exec_result_from_json(d: Mapping[str, Any]) -> ExecResult:
    return ExecResult(
        stdout=d["stdout"], stderr=d["stderr"], error=d["error"], notice=d["notice"],
        duration_ms=d["duration_ms"], output_truncated=d.get("output_truncated", False),
        tool_calls=[ToolCall(tool=c["tool"], args=c["args"], key=c.get("key"),
                             error=c.get("error")) for c in d["tool_calls"]])


def exec_runner(recorder: Recorder, run: Callable[[str], Awaitable[ExecResult]], *,
                fingerprint: dict[str, Any]) -> Runner:
    """A :data:`Runner` over ``run`` (the sandbox's) through ``recorder``: the key is the code
    and ``fingerprint`` (the sandbox settings that change a result)."""

    async def runner(code: str) -> CodeRun:
        async def fetch() -> Response:
            return Response(_exec_result_to_json(await run(code)))

        res = await recorder.memo(EXECUTION, {"code": code, "sandbox": fingerprint}, fetch,
                                  backend="sandbox")
        return CodeRun(_exec_result_from_json(res.data), res.key)

    return runner
