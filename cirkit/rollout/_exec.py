"""Code blocks run through the store: a replay gets the very same output and timing, even for
code that prints the time.

The sandbox's :class:`~cirkit.sandbox.ExecResult` is stored as its JSON (tool ``code_exec``)
and read back from it, so a live run and a replay hand the rollout the same values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cirkit.sandbox import ExecResult, Limits
from recorders import EXECUTION, Recorder, Response

__all__ = ["NO_CODE", "CodeRun", "Runner", "exec_runner", "no_code_run", "sandbox_setup"]

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


def sandbox_setup(block_timeout: float) -> tuple[Limits, dict[str, Any]]:
    """The sandbox limits of a rollout and their fingerprint (part of every code run's key):
    one definition, so ``cirkit rollout`` and a trainer's agent loop share recorded runs."""
    limits = Limits(wall_time_s=block_timeout)
    return limits, {"version": 1, "wall_time_s": block_timeout,
                    "memory_bytes": limits.memory_bytes, "persistent": False}


def no_code_run() -> CodeRun:
    """What a turn ending in ``<end_code>`` without a well-formed block gets (nothing runs)."""
    return CodeRun(ExecResult(stdout="", stderr=NO_CODE, error="no_code", duration_ms=0.0))


def exec_runner(recorder: Recorder, run: Callable[[str], Awaitable[ExecResult]], *,
                fingerprint: dict[str, Any]) -> Runner:
    """A :data:`Runner` over ``run`` (the sandbox's) through ``recorder``: the key is the code
    and ``fingerprint`` (the sandbox settings that change a result)."""

    async def runner(code: str) -> CodeRun:
        async def fetch() -> Response:
            return Response((await run(code)).to_json(record=True))

        res = await recorder.memo(EXECUTION, {"code": code, "sandbox": fingerprint}, fetch,
                                  backend="sandbox")
        return CodeRun(ExecResult.from_json(res.data), res.key)

    return runner
