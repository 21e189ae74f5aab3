"""What running a block gives back: its output, a stable error reason, its tool calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["REASONS", "ExecResult", "SandboxError", "ToolCall"]

#: The stable error reasons ("exit_code:N" carries the status).
REASONS = ("timeout", "cpu_limit", "memory_limit", "output_limit", "killed", "exit_code:N",
           "exception")


class SandboxError(RuntimeError):
    """The sandbox itself failed (a worker would not start): not the block's fault."""


@dataclass(slots=True, frozen=True)
class ToolCall:
    """One ``web_search``/``web_visit`` made by a block, as the parent's handler saw it.

    ``args`` are normalised (``{"query", "num_results"}`` or ``{"url"}``); ``key`` is the
    store key when the handler returned one; ``error`` is set when the call raised.
    """

    tool: str
    args: dict[str, Any]
    key: str | None = None
    error: str | None = None
    duration_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "args": self.args, "key": self.key, "error": self.error}


@dataclass(slots=True, frozen=True)
class ExecResult:
    """One block's run.

    ``stdout``/``stderr`` are what the block wrote (each capped), with the sandbox's
    ``notice`` for a limit (e.g. "TimeoutError: the code block timed out after 10 seconds")
    at the end of ``stderr``, so stdout + stderr is what the model should see; ``output`` is
    both streams in the order they were written. ``error`` is ``None`` or one of
    :data:`REASONS`; pass ``notice`` (not ``error``) as the message of an observation.
    """

    stdout: str
    stderr: str
    error: str | None
    duration_ms: float
    tool_calls: list[ToolCall] = field(default_factory=list)
    output_truncated: bool = False
    exit_code: int | None = 0
    output: str = ""
    notice: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None
