"""A small corpus and a store recorded from it with the local backends (real BM25, real
store): what the tool server's tests serve."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recorders import Recorder, Store
from recorders.backends import LocalSearch, LocalVisit

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima"]
QUERIES = [f"{w} mountain" for w in WORDS[:8]]  # recorded; WORDS[8:] never searched
TOPK = 3


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("toolserver-corpus") / "corpus.jsonl"
    rows = ({"id": f"d{i}", "contents": f'"Doc {i}"\nabout {w}, a mountain of {i * 7}'}
            for i, w in enumerate(WORDS))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """A store with ``QUERIES`` searched (topk 3) and one page visited."""
    path = tmp_path_factory.mktemp("toolserver-store") / "store"
    with Store(path) as st:
        rec = Recorder(st, search=LocalSearch(corpus=corpus), visit=LocalVisit(corpus=corpus),
                       mode="record", clock=lambda: 0.0)
        for q in QUERIES:
            rec.call_sync("web_search", {"query": q, "num_results": TOPK})
        rec.call_sync("web_visit", {"url": "corpus://d1"})
    return path
