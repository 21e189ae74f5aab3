"""What running a block gives back: its output, a stable error reason, its tool calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cirkit.errors import SandboxError

__all__ = ["REASONS", "ExecResult", "SandboxError", "ToolCall"]

#: The stable error reasons ("exit_code:N" carries the status).
REASONS = ("timeout", "cpu_limit", "memory_limit", "output_limit", "killed", "exit_code:N",
           "exception")


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

    def to_json(self, *, with_duration: bool = False) -> dict[str, Any]:
        """The call as rollouts and ``cirkit exec`` record it: without its duration (a live
        and a replayed call differ there), unless ``with_duration``."""
        out: dict[str, Any] = {"tool": self.tool, "args": self.args, "key": self.key,
                               "error": self.error}
        if with_duration:
            out["duration_ms"] = self.duration_ms
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        """The inverse of :meth:`to_json` (``duration_ms`` is 0.0 when it was left out)."""
        _require(data, ("tool", "args", "key", "error"), "ToolCall")
        return cls(tool=data["tool"], args=dict(data["args"]), key=data["key"],
                   error=data["error"], duration_ms=data.get("duration_ms", 0.0))


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

    def to_json(self, *, record: bool = False) -> dict[str, Any]:
        """Every field, the tool calls with their durations: ``from_json`` gives it back equal.

        ``record=True``: the form a rollout stores as its ``code_exec`` answer, what a replay
        must reproduce: stdout, stderr, error, notice, the duration rounded to a microsecond,
        whether output was cut, and the tool calls without their durations. Recorded stores
        hold these bytes: changing this form makes them stop replaying.
        """
        if record:
            return {"stdout": self.stdout, "stderr": self.stderr, "error": self.error,
                    "notice": self.notice, "duration_ms": round(self.duration_ms, 3),
                    "output_truncated": self.output_truncated,
                    "tool_calls": [c.to_json() for c in self.tool_calls]}
        return {"stdout": self.stdout, "stderr": self.stderr, "error": self.error,
                "duration_ms": self.duration_ms,
                "tool_calls": [c.to_json(with_duration=True) for c in self.tool_calls],
                "output_truncated": self.output_truncated, "exit_code": self.exit_code,
                "output": self.output, "notice": self.notice}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExecResult:
        """The inverse of :meth:`to_json`, of either form; other keys (such as the store key a
        rollout adds) are ignored. A stored record has no ``exit_code`` (None: not recorded)
        and no interleaved ``output`` ("")."""
        _require(data, _RECORD_FIELDS, "ExecResult")
        return cls(stdout=data["stdout"], stderr=data["stderr"], error=data["error"],
                   duration_ms=data["duration_ms"],
                   tool_calls=[ToolCall.from_json(c) for c in data["tool_calls"]],
                   output_truncated=data.get("output_truncated", False),
                   exit_code=data.get("exit_code"), output=data.get("output", ""),
                   notice=data["notice"])


_RECORD_FIELDS = ("stdout", "stderr", "error", "notice", "duration_ms", "tool_calls")


def _require(data: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"not a {what} record: no {', '.join(missing)}")
