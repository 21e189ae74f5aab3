"""Code blocks run through the store: a replay gets the very same output and timing, even for
code that prints the time.

The sandbox's :class:`~cirkit.sandbox.ExecResult` is stored as its JSON (tool ``code_exec``)
and read back from it, so a live run and a replay hand the rollout the same values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cirkit.cir import END_CODE, Tokenizer, make_observation, pending_code
from cirkit.sandbox import ExecResult, Limits
from cirkit.trajectory import CodeBlock
from recorders import EXECUTION, Recorder, Response

__all__ = ["NO_CODE", "BlockStep", "CodeRun", "Runner", "exec_runner", "no_code_run",
           "run_block_turn", "sandbox_fingerprint"]

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


def sandbox_fingerprint(limits: Limits) -> dict[str, Any]:
    """The sandbox settings that change a block's result: part of its store key, so a run
    replays only under the same settings (``cirkit rollout`` and ``cirkit tools serve``)."""
    return {"version": 1, "wall_time_s": limits.wall_time_s,
            "memory_bytes": limits.memory_bytes, "persistent": False}


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


@dataclass(slots=True, frozen=True)
class BlockStep:
    """A turn that stopped at ``<end_code>``, answered: the run, the record's code block, and
    ``text``, what follows the turn in the response (the marker if the server dropped it, a
    newline, the wrapped observation)."""

    run: CodeRun
    block: CodeBlock
    text: str


async def run_block_turn(generated: str, *, runner: Runner, tokenizer: Tokenizer,
                         max_observation_tokens: int,
                         demo_error_hint: bool = False) -> BlockStep:
    """Run the code block ``generated`` (the response so far, or its last turn) ends with and
    build its observation: the one place a rollout and the tool server turn a block into
    what the model sees next."""
    code = pending_code(generated)
    run = await runner(code) if code is not None else no_code_run()
    r = run.result
    obs = make_observation(r.stdout, r.stderr, error=r.notice, tokenizer=tokenizer,
                           max_tokens=max_observation_tokens, demo_error_hint=demo_error_hint)
    head = "" if generated.endswith(END_CODE) else END_CODE
    block = CodeBlock(code or "", obs.body, r.error, r.duration_ms,
                      [CodeBlock.tool_call(c.tool, c.args, c.key, c.error)
                       for c in r.tool_calls])
    return BlockStep(run, block, head + "\n" + obs.text)
