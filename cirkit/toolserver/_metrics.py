"""The tool server's counters and latency histogram, rendered as Prometheus text.

Kept by hand (a few dicts of ints, updated on the event loop's thread only) rather than by a
metrics library: the server needs six series, and a scrape is one ``render()``.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the request latency histogram's buckets; +Inf is implied.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0)

_HELP = {
    "cirkit_tools_requests_total": ("counter", "HTTP requests answered, by endpoint."),
    "cirkit_tools_request_errors_total": ("counter",
                                          "Requests answered with an error, by endpoint."),
    "cirkit_tools_store_hits_total": ("counter", "Tool calls the store answered, by tool."),
    "cirkit_tools_store_misses_total": ("counter",
                                        "Tool calls replay found no recording for, by tool."),
    "cirkit_tools_live_calls_total": ("counter", "Tool calls a live backend or the sandbox "
                                                 "answered, by tool (on-miss answers too)."),
    "cirkit_tools_local_answers_total": ("counter", "Replay misses answered by the local "
                                                    "backend (--on-miss local), by tool."),
}


@dataclass(slots=True)
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    count: int = 0
    total: float = 0.0


@dataclass(slots=True)
class Metrics:
    """Counters by label and one latency histogram per endpoint."""

    counters: dict[str, Counter[str]] = field(
        default_factory=lambda: {name: Counter() for name in _HELP})
    latency: dict[str, _Histogram] = field(default_factory=dict)

    def count(self, name: str, label: str, n: int = 1) -> None:
        self.counters[name][label] += n

    def observe(self, endpoint: str, seconds: float, *, error: bool) -> None:
        """One answered request and how long it took."""
        self.counters["cirkit_tools_requests_total"][endpoint] += 1
        if error:
            self.counters["cirkit_tools_request_errors_total"][endpoint] += 1
        h = self.latency.get(endpoint)
        if h is None:
            h = self.latency[endpoint] = _Histogram()
        i = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        if i < len(h.buckets):
            h.buckets[i] += 1
        h.count += 1
        h.total += seconds

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4, series sorted by label."""
        lines: list[str] = []
        for name, (kind, text) in _HELP.items():
            label = "endpoint" if name.startswith("cirkit_tools_request") else "tool"
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            for value, n in sorted(self.counters[name].items()):
                lines.append(f'{name}{{{label}="{value}"}} {n}')
        name = "cirkit_tools_request_seconds"
        lines += [f"# HELP {name} Request latency, by endpoint.", f"# TYPE {name} histogram"]
        for endpoint, h in sorted(self.latency.items()):
            running = 0
            for bound, n in zip(LATENCY_BUCKETS, h.buckets, strict=True):
                running += n
                lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="{bound}"}} {running}')
            lines.append(f'{name}_bucket{{endpoint="{endpoint}",le="+Inf"}} {h.count}')
            lines.append(f'{name}_sum{{endpoint="{endpoint}"}} {h.total:.6f}')
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {h.count}')
        return "\n".join(lines) + "\n"
