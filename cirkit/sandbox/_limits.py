"""What a code block may use: one frozen record, sent to the worker as JSON.

The defaults follow the demo's executor (10 s, RLIMIT_AS 4 GiB, RLIMIT_CPU 10 s) and add the
limits a hostile block needs (processes, files, output, disk, tool calls).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cirkit.errors import SandboxError

__all__ = ["DEFAULT_PRELOAD", "GiB", "Limits", "MiB"]

MiB = 1 << 20
GiB = 1 << 30

#: Imported once by every worker, so that a block's ``import json`` costs nothing.
DEFAULT_PRELOAD = (
    "collections", "datetime", "decimal", "fractions", "functools", "itertools", "json",
    "math", "random", "re", "statistics", "string", "textwrap", "time", "urllib.parse",
)


#: The setting (option) a front end offers for a limit, where it is not the field's name.
_SETTINGS = {"wall_time_s": "timeout", "memory_bytes": "memory_mb"}


@dataclass(slots=True, frozen=True)
class Limits:
    """Per-block limits. ``wall_time_s`` excludes the time the parent spends answering tool
    calls, so a block behaves the same whether its tools are live or replayed; each call has
    ``tool_timeout_s`` of its own, and a block at most ``tool_calls`` of them.
    ``output_bytes`` is kept per stream; ``disk_bytes`` caps the block's scratch mounts
    (fixed when a worker starts)."""

    wall_time_s: float = 10.0
    cpu_time_s: int = 10
    memory_bytes: int = 4 * GiB
    file_size_bytes: int = 64 * MiB
    processes: int = 64
    open_files: int = 256
    output_bytes: int = 1 * MiB
    disk_bytes: int = 512 * MiB
    tool_calls: int = 64
    tool_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        # A NaN compares False with everything: ``nan <= 0`` would let it through and disable
        # the wall clock (the parent then spins on a deadline it never reaches).
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v <= 0:
                setting = _SETTINGS.get(f.name, f.name)
                raise SandboxError(
                    f"the sandbox limit {f.name} must be a finite number above 0, not {v!r}",
                    hint=f"give {setting} a positive, finite number, e.g. {f.default!r}",
                    setting=setting)

    def replace(self, **changes: Any) -> Limits:
        """A copy with some limits changed, e.g. ``limits.replace(wall_time_s=1)``."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Limits:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
