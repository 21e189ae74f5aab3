"""A separate process that records calls into a store (for concurrency and kill tests).

usage: python -m tests.recorders.store_worker STORE START STOP [--mode M]
Records web_search calls "query {i}" for i in [START, STOP) from an in-memory backend whose
answer depends only on the query, then prints the keys it used, one per line.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from recorders import InMemoryBackend, Recorder, Store


def answer(args: Any) -> dict[str, Any]:
    q = args["query"]
    return {
        "results": [
            {"title": f"{q} — result {j}", "url": f"https://example.org/{q.replace(' ', '_')}/{j}",
             "snippet": f"About {q}. " * 20}
            for j in range(1, args["num_results"] + 1)
        ],
        "raw": {"q": q},
    }


async def main(path: str, start: int, stop: int, mode: str) -> None:
    store = Store(path)
    rec = Recorder(store, search=InMemoryBackend("web_search", answer), mode=mode,
                   clock=lambda: 0.0)
    for i in range(start, stop):
        r = await rec.web_search(f"query {i}", num_results=3)
        print(r.key, flush=True)
    store.close()


if __name__ == "__main__":
    mode = sys.argv[sys.argv.index("--mode") + 1] if "--mode" in sys.argv else "auto"
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), mode))
