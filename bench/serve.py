"""Throughput and latency of ``cirkit tools serve``, against anchors measured in the same run.

    python bench/serve.py [--requests 3000] [--clients 1,8,64] [--repeats 3] [--obs-n 200]

1. ``/retrieve`` replayed: a store of 300 recorded searches (local BM25 backend) served by the
   real command (``cirkit tools serve --mode replay``, a subprocess), POSTed by 1, 8 and 64
   concurrent keep-alive connections of a small raw HTTP/1.1 client (so the client costs
   little next to the server). Anchors: (a) a hello-world endpoint of the same stack (a
   Starlette route on uvicorn, started by ``run_app`` in a subprocess, that reads the body
   and answers fixed JSON), driven by the same client; (b) in-process ``Recorder`` replay of
   the same calls (``await rec.call``), no HTTP at all. Server and anchor runs alternate, and
   each row keeps the best of ``--repeats`` runs (the machine may be shared).
2. ``/get_observation`` with a ``cir`` block (``print('hello from the sandbox')``), one
   request at a time: p50 and p99, against the p50 of the same block run in-process through
   ``Sandbox.run`` (bench/sandbox.py's first measure).

Target: replayed ``/retrieve`` at least 0.5x the hello-world rate at every concurrency. This is
a benchmark, not a test: it prints figures and pass/fail marks, and exits 0 either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from cirkit.sandbox import Sandbox
from recorders import Recorder, Store
from recorders.backends import LocalSearch
from tests.servers.toolserver import first_line

ROOT = Path(__file__).resolve().parents[1]

TARGET_RATIO = 0.5
PRINT_BLOCK = "print('hello from the sandbox')"
WORDS = [f"w{i:03d}x" for i in range(300)]
TOPK = 3

console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


# -- the hello-world server (same stack), run as ``bench/serve.py --hello`` -----------------
def hello_main() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from cirkit.toolserver import bind, run_app, url_of

    answer = b'{"result": [[]]}'

    async def hello(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    sock = bind("127.0.0.1", 0)
    app = Starlette(routes=[Route("/retrieve", hello, methods=["POST"])])
    run_app(app, sock, on_ready=lambda: print(url_of(sock), flush=True))


# -- set-up ----------------------------------------------------------------------------------
def make_corpus(path: Path) -> Path:
    rows = ({"id": f"d{i}", "contents": f'"Doc {w}"\nA page about {w}, number {i}, and more '
                                         f"words so that the snippet has some length to it."}
            for i, w in enumerate(WORDS))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def make_tokenizer(out: Path) -> Path:
    """A small byte-level BPE (the cir tool cuts observations in its tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["hello from the sandbox", "print(web_search('x'))"] * 20, trainer)
    tok.save(str(out))
    return out


async def record(store: Path, corpus: Path) -> None:
    with Store(store) as st:
        rec = Recorder(st, search=LocalSearch(corpus=corpus), mode="record")
        for w in WORDS:
            await rec.call("web_search", {"query": w, "num_results": TOPK})


@contextmanager
def server(argv: list[str]) -> Iterator[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    try:
        url = first_line(proc, 120)
        if not url.startswith("http://"):
            proc.terminate()
            raise SystemExit(f"server did not start: {' '.join(argv)}\n{proc.communicate()[1]}")
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


# -- a small raw HTTP/1.1 keep-alive client ----------------------------------------------------
def requests_for(host: str, path: str, bodies: list[bytes]) -> list[bytes]:
    return [(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
             f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]


async def _connection(host: str, port: int, reqs: list[bytes], first: int, n: int,
                      check: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for i in range(first, first + n):
            writer.write(reqs[i % len(reqs)])
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {head[:80]!r}")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            body = await reader.readexactly(length)
            if i == first and not check:
                check.append(body)
    finally:
        writer.close()


async def rate(url: str, path: str, bodies: list[bytes], clients: int, total: int) -> float:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reqs = requests_for(host, path, bodies)
    per = max(1, total // clients)
    await asyncio.gather(*(_connection(host, int(port), reqs, c * 7, 20, [])
                           for c in range(clients)))  # warm-up: connections, caches
    t0 = time.perf_counter()
    await asyncio.gather(*(_connection(host, int(port), reqs, c * per, per, [])
                           for c in range(clients)))
    return clients * per / (time.perf_counter() - t0)


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]


async def observation_latency(url: str, n: int) -> list[float]:
    import httpx

    body = {"trajectory_ids": ["t"], "actions": [
        "Let me check.\n<start_code>\n```python\n" + PRINT_BLOCK + "\n```<end_code>"]}
    out = []
    async with httpx.AsyncClient(timeout=60) as client:
        for i in range(n + 20):
            t0 = time.perf_counter()
            r = await client.post(url + "/get_observation", json=body)
            if i >= 20:
                out.append((time.perf_counter() - t0) * 1000.0)
            obs = r.json()["observations"][0]
            assert obs == "\n```output\nhello from the sandbox\n\n```", obs
    return out


async def sandbox_latency(n: int) -> list[float]:
    out = []
    async with Sandbox() as sb:
        for i in range(n + 20):
            t0 = time.perf_counter()
            r = await sb.run(PRINT_BLOCK)
            if i >= 20:
                out.append((time.perf_counter() - t0) * 1000.0)
            assert r.stdout == "hello from the sandbox\n", r
    return out


async def replay_rate(store: Path, total: int) -> float:
    with Store(store, readonly=True) as st:
        rec = Recorder(st, mode="replay", track_keys=False)
        for w in WORDS[:20]:
            await rec.call("web_search", {"query": w, "num_results": TOPK})
        t0 = time.perf_counter()
        for i in range(total):
            await rec.call("web_search", {"query": WORDS[i % len(WORDS)], "num_results": TOPK})
        return total / (time.perf_counter() - t0)


def bench(args: argparse.Namespace) -> None:
    clients = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        asyncio.run(record(store, make_corpus(Path(tmp) / "corpus.jsonl")))
        tok = make_tokenizer(Path(tmp) / "tokenizer.json")
        bodies = [json.dumps({"queries": [w], "topk": TOPK, "return_scores": True}).encode()
                  for w in WORDS]
        serve = [sys.executable, "-m", "cirkit.cli", "tools", "serve", "--store", str(store),
                 "--mode", "replay", "--port", "0", "--tokenizer", str(tok)]
        rows: list[tuple[int, float, float]] = []
        with server([sys.executable, str(Path(__file__).resolve()), "--hello"]) as hello, \
                server(serve) as tools:
            for c in clients:  # interleaved, best of --repeats: the machine is shared
                hs, ts = [], []
                for _ in range(args.repeats):
                    hs.append(asyncio.run(rate(hello, "/retrieve", bodies, c, args.requests)))
                    ts.append(asyncio.run(rate(tools, "/retrieve", bodies, c, args.requests)))
                rows.append((c, max(hs), max(ts)))
            observed = asyncio.run(observation_latency(tools, args.obs_n))
        in_process = asyncio.run(replay_rate(store, args.requests * 5))
    anchor = asyncio.run(sandbox_latency(args.obs_n))

    table = Table(title=f"cirkit tools serve, replayed /retrieve (python "
                        f"{platform.python_version()}, {os.cpu_count()} cpus, "
                        f"{args.requests} requests per run, best of {args.repeats})")
    for col in ("clients", "hello-world req/s", "/retrieve req/s", "ratio",
                "in-process replay calls/s"):
        table.add_column(col, justify="right")
    for c, h, t in rows:
        table.add_row(str(c), f"{h:,.0f}", f"{t:,.0f}", f"{t / h:.2f}x", f"{in_process:,.0f}")
    console.print(table)
    p50, p99 = percentiles(observed)
    a50, _ = percentiles(anchor)
    console.print(f"/get_observation, cir print block, 1 client: p50 {p50:.2f} ms, p99 "
                  f"{p99:.2f} ms; in-process Sandbox.run p50 {a50:.2f} ms "
                  f"({p50 / a50:.1f}x at p50, {len(observed)} requests)")
    mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]"}
    for c, h, t in rows:
        console.print(f"{mark[t / h >= TARGET_RATIO]} {c} clients: /retrieve at {t / h:.2f}x "
                      f"the hello-world rate (target >= {TARGET_RATIO}x)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=3000, help="timed requests per row")
    ap.add_argument("--clients", default="1,8,64", help="concurrent connections per row")
    ap.add_argument("--repeats", type=int, default=3, help="runs per row; the best is kept")
    ap.add_argument("--obs-n", type=int, default=200, help="timed /get_observation requests")
    ap.add_argument("--hello", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.hello:
        hello_main()
        return 0
    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
