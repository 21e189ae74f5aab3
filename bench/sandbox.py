"""Per-block overhead of cirkit.sandbox, against the demo's way measured in the same run.

    python bench/sandbox.py [--n 300] [--warmup 30] [--n-subprocess 100] [--workers N]

1. ``print``: a block that prints one line, run N times one after another through
   ``Sandbox.run`` (fork-server workers, each block in a fresh child), after a warm-up.
2. ``web_search``: a block that calls ``web_search`` once and prints the start of the result,
   served by the parent from a store in strict replay (recorded first with an InMemoryBackend).
3. Anchor: the demo's way, a fresh ``python3`` per block
   (``subprocess.run([sys.executable, "-c", code], timeout=10)``, capturing output, with the same
   rlimits set in ``preexec_fn``), for the ``print`` block.

Targets: p50 of the ``print`` block at most 5 ms, and at least 15x faster than the anchor at
p50. The ``web_search`` block is compared with the anchor's ``print`` block, a lower bound
for the demo (whose subprocess would also have to make the call). This is a benchmark, not a
test: it prints figures and pass/fail marks, and exits 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from cirkit.sandbox import Limits, Sandbox
from recorders import InMemoryBackend, Recorder, Store

TARGET_P50_MS = 5.0
TARGET_SPEEDUP = 15.0
PRINT_BLOCK = "print('hello from the sandbox')"
SEARCH_BLOCK = "r = web_search({query!r}, num_result=3)\nprint(r[:60])"
QUERIES = [f"benchmark query {i}" for i in range(20)]

console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def search_answer(args: Mapping[str, Any]) -> dict[str, Any]:
    q = args["query"]
    return {"results": [{"title": f"{q} - result {i}", "url": f"https://example.org/{i}",
                         "snippet": f"A snippet about {q}, number {i}."}
                        for i in range(args["num_results"])]}


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return statistics.median(s), p99


async def timed(n: int, warmup: int, make: Callable[[int], Awaitable[Any]],
                check: Callable[[Any], None]) -> list[float]:
    for i in range(warmup):
        check(await make(i))
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        r = await make(i)
        out.append((time.perf_counter() - t0) * 1000.0)
        check(r)
    return out


def demo_subprocess(n: int, limits: Limits) -> list[float]:
    """The demo's executor: a fresh interpreter per block, with the same rlimits."""
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_time_s,) * 2)

    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", PRINT_BLOCK], timeout=10,
                           capture_output=True, text=True, preexec_fn=preexec)
        out.append((time.perf_counter() - t0) * 1000.0)
        assert p.stdout == "hello from the sandbox\n", p.stderr
    return out


async def bench(args: argparse.Namespace) -> None:
    limits = Limits()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        rec = Recorder(Store(store), search=InMemoryBackend("web_search", search_answer),
                       mode="record")
        for q in QUERIES:
            await rec.web_search(q, 3)
        replay = Recorder(Store(store), mode="replay")

        async def handler(tool: str, a: dict[str, Any]) -> Any:
            return await replay.call(tool, a)

        t0 = time.perf_counter()
        async with Sandbox(workers=args.workers, limits=limits, tool_handler=handler) as sb:
            start_ms = (time.perf_counter() - t0) * 1000.0

            def ok_print(r: Any) -> None:
                assert r.stdout == "hello from the sandbox\n" and r.error is None, r

            def ok_search(r: Any) -> None:
                assert r.error is None and r.stdout.startswith("\nIndex: 1\nURL: "), r
                assert len(r.tool_calls) == 1 and r.tool_calls[0].key

            printed = await timed(args.n, args.warmup, lambda i: sb.run(PRINT_BLOCK), ok_print)
            searched = await timed(
                args.n, args.warmup,
                lambda i: sb.run(SEARCH_BLOCK.format(query=QUERIES[i % len(QUERIES)])),
                ok_search)
            conc_t0 = time.perf_counter()
            await asyncio.gather(*(sb.run(PRINT_BLOCK) for _ in range(args.n)))
            conc_rate = args.n / (time.perf_counter() - conc_t0)
            info = f"{sb.isolation} ({', '.join(sorted(sb.features))}), {sb.workers} workers"
    anchor = demo_subprocess(args.n_subprocess, limits)

    p50_print, p99_print = percentiles(printed)
    p50_search, p99_search = percentiles(searched)
    p50_anchor, p99_anchor = percentiles(anchor)
    table = Table(title=f"cirkit.sandbox per-block overhead (python "
                        f"{platform.python_version()}, {os.cpu_count()} cpus; {info})")
    for col in ("block", "runs", "p50 ms", "p99 ms", "anchor p50 / p50"):
        table.add_column(col, justify="right" if col != "block" else "left")
    table.add_row("print, sandbox", str(len(printed)), f"{p50_print:.2f}", f"{p99_print:.2f}",
                  f"{p50_anchor / p50_print:.1f}x")
    table.add_row("web_search (replay), sandbox", str(len(searched)), f"{p50_search:.2f}",
                  f"{p99_search:.2f}", f"{p50_anchor / p50_search:.1f}x")
    table.add_row("print, python3 -c per block (anchor)", str(len(anchor)),
                  f"{p50_anchor:.2f}", f"{p99_anchor:.2f}", "1.0x")
    console.print(table)
    console.print(f"sandbox start ({sb.workers} workers): {start_ms:.0f} ms; "
                  f"{args.n} print blocks at once: {conc_rate:.0f} blocks/s")
    mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]"}
    console.print(f"{mark[p50_print <= TARGET_P50_MS]} p50 print block {p50_print:.2f} ms "
                  f"(target <= {TARGET_P50_MS} ms)")
    speedup = p50_anchor / p50_print
    console.print(f"{mark[speedup >= TARGET_SPEEDUP]} {speedup:.1f}x faster than a python3 "
                  f"subprocess per block at p50 (target >= {TARGET_SPEEDUP:.0f}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="timed runs per sandbox block")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--n-subprocess", type=int, default=100, help="timed anchor runs")
    ap.add_argument("--workers", type=int, default=None, help="default: the Sandbox default")
    args = ap.parse_args(argv)
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
