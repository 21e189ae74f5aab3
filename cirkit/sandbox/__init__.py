"""The sandbox: runs one model-written CIR code block the way a rollout needs.

Hostile code is expected: each block runs in a fresh child forked from a pre-started worker,
with no network (a network namespace, or an audit hook where the kernel refuses one), its own
uid and temp directory, no inherited environment, and limits on time, CPU, memory, files,
processes and output. ``web_search``/``web_visit`` inside a block are answered by the parent's
``tool_handler`` (in practice a ``recorders.Recorder``), so the block holds no key.

The parent-side classes (``Sandbox``, ``Session``) are imported on first use: a worker
process imports this package too, and must stay small (its size is paid at every fork).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cirkit._lazy import lazy_exports

from ._child import ToolError
from ._limits import DEFAULT_PRELOAD, GiB, Limits, MiB
from ._result import REASONS, ExecResult, SandboxError, ToolCall

if TYPE_CHECKING:
    from ._pool import DEFAULT_UID_BASE, PoolState, WorkerPool
    from ._run import Retry
    from ._sandbox import Sandbox
    from ._session import Session

__all__ = [
    "DEFAULT_PRELOAD",
    "DEFAULT_UID_BASE",
    "REASONS",
    "ExecResult",
    "GiB",
    "Limits",
    "MiB",
    "PoolState",
    "Retry",
    "Sandbox",
    "SandboxError",
    "Session",
    "ToolCall",
    "ToolError",
    "WorkerPool",
]

_LAZY = {"DEFAULT_UID_BASE": "._pool", "PoolState": "._pool", "WorkerPool": "._pool",
         "Retry": "._run", "Sandbox": "._sandbox", "Session": "._session"}


__getattr__ = lazy_exports(__name__, _LAZY, globals())
