"""How the parent answers a block's tool call, and how it names and explains a block's end."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._limits import Limits
from ._result import ToolCall

__all__ = ["ToolHandler", "check_args", "ms_since", "notice_of", "reason_of", "serve_tool"]

#: ``(tool, args) -> str`` or an object with ``.text`` (and ``.key``), e.g. a ToolResult.
ToolHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]


def check_args(tool: str, args: Any) -> dict[str, Any]:
    if tool == "web_search" and isinstance(args, dict) and set(args) == {"query", "num_results"} \
            and isinstance(args["query"], str) and type(args["num_results"]) is int:
        return args
    if tool == "web_visit" and isinstance(args, dict) and set(args) == {"url"} \
            and isinstance(args["url"], str):
        return args
    raise ValueError("malformed tool call")


async def serve_tool(payload: bytes, calls: list[ToolCall], limits: Limits,
                handler: ToolHandler | None) -> dict[str, Any]:
    try:
        req = json.loads(payload)
        tool = str(req["tool"])
        args = check_args(tool, req["args"])
    except (ValueError, KeyError, TypeError):
        return {"error": "malformed tool call"}
    err: str | None = None
    if len(calls) >= limits.tool_calls:
        err = f"too many tool calls in one code block (the limit is {limits.tool_calls})"
    elif handler is None:
        err = f"{tool} is not available here (the sandbox has no tool handler)"
    if err is not None or handler is None:
        calls.append(ToolCall(tool, args, None, err))
        return {"error": err}
    t0 = time.perf_counter()
    try:
        res = await asyncio.wait_for(handler(tool, args), limits.tool_timeout_s)
    except TimeoutError:
        msg = f"no answer within {limits.tool_timeout_s:g} seconds"
        calls.append(ToolCall(tool, args, None, msg, ms_since(t0)))
        return {"error": msg}
    except Exception as e:
        msg = str(getattr(e, "message", "") or e) or type(e).__name__
        calls.append(ToolCall(tool, args, None, msg, ms_since(t0)))
        return {"error": msg}
    text = res if isinstance(res, str) else str(res.text)
    calls.append(ToolCall(tool, args, getattr(res, "key", None), None, ms_since(t0)))
    return {"text": text}


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def reason_of(done: dict[str, Any] | None, exited: dict[str, Any] | None,
            limits: Limits) -> str | None:
    """The error reason from the child's own report, else from how it exited."""
    if exited is not None and exited.get("oom"):
        return "memory_limit"  # the block's cgroup went over its limit: the kernel killed
    if done is not None:
        e = done.get("error")
        if e is None or e in ("exception", "memory_limit"):
            return e
        if isinstance(e, str) and re.fullmatch(r"exit_code:\d+", e):
            return e
        return "killed" if e == "setup" else "exception"
    if exited is None:
        return "killed"
    sig = exited.get("signal")
    if sig is not None:
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and
                                      exited.get("cpu_s", 0) >= limits.cpu_time_s - 0.05):
            return "cpu_limit"
        return "killed"
    code = exited.get("code", 0)
    return f"exit_code:{code}" if code else None


def notice_of(error: str | None, limits: Limits, exited: dict[str, Any] | None,
            stderr: str, detail: str | None) -> str | None:
    if error == "timeout":
        return f"TimeoutError: the code block timed out after {limits.wall_time_s:g} seconds"
    if error == "cpu_limit":
        return f"TimeoutError: the code block used more than {limits.cpu_time_s} s of CPU time"
    if error == "memory_limit" and "MemoryError" not in stderr:
        mib = limits.memory_bytes >> 20
        return f"MemoryError: the code block exceeded its {mib} MiB memory limit"
    if error == "killed":
        if detail:
            return f"Killed ({detail})"
        sig = (exited or {}).get("signal")
        if not isinstance(sig, int):
            return "Killed"
        try:
            return f"Killed (signal {signal.Signals(sig).name})"
        except ValueError:
            return f"Killed (signal {sig})"
    return None
