"""verl's own Search-R1 client (``perform_single_search_batch``, what its ``SearchTool`` calls)
gets the recorded results from ``cirkit tools serve`` replaying a store: no code on verl's side.

The client is verl's released module (``cirkit.testing.verl_env.SEARCH_CLIENT_SPEC``), installed
pinned without dependencies in the cache and loaded by path: it needs only ``requests``, and
verl's package ``__init__`` would import torch and ray.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from cirkit.testing import ensure_search_client
from tests.servers.toolserver import CliServer

from .conftest import QUERIES, TOPK
from .test_retrieve import _expected

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def verl_search() -> ModuleType:
    path = ensure_search_client()
    spec = importlib.util.spec_from_file_location("verl_search_r1_like_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_verl_prints(docs: list[dict[str, object]]) -> str:
    """What verl's client makes of one query's documents: 'Doc i (Title: ...)' then the text."""
    out = []
    for i, d in enumerate(docs):
        contents = str(d["document"]["contents"])  # type: ignore[index]
        title, _, text = contents.partition("\n")
        out.append(f"Doc {i + 1} (Title: {title})\n{text}\n\n")
    return "".join(out).strip()


def test_verls_search_client_reads_recorded_results(
        verl_search: ModuleType, recorded: Path, serve_cli: Callable[..., CliServer]) -> None:
    server = serve_cli("--store", str(recorded))
    text, meta = verl_search.perform_single_search_batch(
        retrieval_service_url=server.url + "/retrieve", query_list=QUERIES[:2], topk=TOPK)
    assert meta["status"] == "success" and meta["api_request_error"] is None, meta
    want = [_expected(recorded, q, TOPK) for q in QUERIES[:2]]
    assert meta["api_response"] == {"result": want}
    assert json.loads(text)["result"] == "\n---\n".join(_as_verl_prints(w) for w in want)
    assert meta["total_results"] == sum(len(w) for w in want)


def test_a_replay_miss_reaches_verls_client_as_an_error_not_a_result(
        verl_search: ModuleType, recorded: Path, serve_cli: Callable[..., CliServer]) -> None:
    server = serve_cli("--store", str(recorded))
    text, meta = verl_search.perform_single_search_batch(
        retrieval_service_url=server.url + "/retrieve", query_list=["never recorded"],
        topk=TOPK)
    assert meta["status"] == "api_error" and "404" in str(meta["api_request_error"])
    assert json.loads(text)["result"].startswith("Search error:")
