"""``/retrieve`` (Search-R1), ``/web_search``, ``/web_visit``, ``/health`` and ``/metrics``
against a real server on 127.0.0.1 serving a real store, called with httpx in JSON and in
msgpack, one client or 64 at once."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cirkit.toolserver import MAX_BODY_BYTES, BackgroundServer, ToolService
from recorders import Recorder, Store, make_key
from recorders.backends import LocalSearch, LocalVisit, SerperSearch, TavilySearch
from tests.servers.providers import Providers
from tests.servers.toolserver import CliServer

from .conftest import QUERIES, TOPK

MakeServer = Callable[[ToolService], BackgroundServer]


def _replay(store: Path, *, fallback: Recorder | None = None) -> ToolService:
    return ToolService(Recorder(Store(store, readonly=True), mode="replay", track_keys=False),
                       fallback=fallback)


def _expected(store: Path, query: str, topk: int) -> list[dict[str, Any]]:
    """What the store holds for ``query``, read straight from the stored JSON: Search-R1 docs
    with the quoted title line, then the snippet."""
    key, _ = make_key("web_search", {"query": query, "num_results": topk})
    with Store(store, readonly=True) as st:
        loaded = st.load(key)
    assert loaded is not None
    data = json.loads(loaded[1])["data"]
    ids = [h[0] for h in data["raw"]["hits"]] if "hits" in data.get("raw", {}) else None
    out = []
    for i, hit in enumerate(data["results"]):
        score = hit.get("score", round(1 / hit["position"], 6))
        doc = {"id": ids[i] if ids else hit["url"], "url": hit["url"],
               "contents": f'"{hit["title"]}"\n{hit["snippet"]}'}
        out.append({"document": doc, "score": score})
    return out


def test_retrieve_answers_what_the_store_holds_in_json_and_msgpack(
        recorded: Path, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    want = [_expected(recorded, q, TOPK) for q in QUERIES[:3]]
    assert all(w for w in want) and want[0][0]["document"]["id"].startswith("d")
    r = httpx.post(server.url + "/retrieve",
                   json={"queries": QUERIES[:3], "topk": TOPK, "return_scores": True})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"result": want}
    # msgpack in, msgpack out (ROLL/GEM); 'query' for one query; no scores by default
    r = httpx.post(server.url + "/retrieve", content=msgpack.packb({"query": QUERIES[0],
                                                                    "topk": TOPK}),
                   headers={"content-type": "application/msgpack"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/msgpack"
    assert msgpack.unpackb(r.content) == {"result": [[h["document"] for h in want[0]]]}
    # JSON in, msgpack out when Accept asks for it
    r = httpx.post(server.url + "/retrieve", json={"queries": [QUERIES[1]], "topk": TOPK},
                   headers={"accept": "application/msgpack"})
    assert msgpack.unpackb(r.content)["result"][0] == [h["document"] for h in want[1]]
    # the title line as verl's SearchTool and Search-R1 read it: the first line, quoted
    assert want[1][0]["document"]["contents"].split("\n")[0].startswith('"Doc ')


@pytest.mark.parametrize("backend", ["serper", "tavily"])
async def test_retrieve_maps_live_providers_recordings(
        backend: str, providers: Providers, tmp_path: Path, make_toolserver: MakeServer) -> None:
    store = tmp_path / backend
    search = (SerperSearch(api_key=providers.api_key, base_url=providers.serper)
              if backend == "serper" else
              TavilySearch(api_key=providers.api_key, base_url=providers.tavily))
    with Store(store) as st:
        await Recorder(st, search=search, mode="record").call(
            "web_search", {"query": "night watch painter", "num_results": 4})
    server = make_toolserver(_replay(store))
    async with httpx.AsyncClient() as client:
        r = await client.post(server.url + "/retrieve", json={
            "queries": ["night watch painter"], "topk": 4, "return_scores": True})
    assert r.status_code == 200
    got = r.json()["result"][0]
    assert got == _expected(store, "night watch painter", 4)
    assert [h["document"]["contents"].split("\n")[0] for h in got][:1] == [
        '"night watch painter result 1"']
    assert all(isinstance(h["score"], float) for h in got)


def test_a_replay_miss_names_the_key_its_fields_and_the_nearest_calls(
        recorded: Path, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    r = httpx.post(server.url + "/retrieve", json={"queries": ["delta mountain"], "topk": 5})
    assert r.status_code == 404
    body = r.json()
    key, _ = make_key("web_search", {"query": "delta mountain", "num_results": 5})
    near, _ = make_key("web_search", {"query": "delta mountain", "num_results": 3})
    assert body["key"] == key
    assert body["fields"] == {"tool": "web_search", "query": "delta mountain", "num_results": 5}
    assert body["nearest"][0] == near
    assert "differs in: num_results" in body["message"] and body["hint"]
    r = httpx.post(server.url + "/web_visit", json={"url": "corpus://d2"})
    assert r.status_code == 404 and r.json()["fields"]["url"] == "corpus://d2/"  # normalised


def test_on_miss_local_answers_from_the_local_backend_and_says_so(
        recorded: Path, corpus: Path, make_toolserver: MakeServer) -> None:
    local = LocalSearch(corpus=corpus)
    fallback = Recorder(None, mode="off", search=local, visit=LocalVisit(corpus=corpus))
    server = make_toolserver(_replay(recorded, fallback=fallback))
    r = httpx.post(server.url + "/retrieve", json={
        "queries": [QUERIES[0], "juliet mountain"], "topk": TOPK, "return_scores": True})
    assert r.status_code == 200
    body = r.json()
    assert body["answered_locally"] == [1]
    assert body["result"][0] == _expected(recorded, QUERIES[0], TOPK)
    assert body["result"][1][0]["document"]["id"] == "d9"
    r = httpx.post(server.url + "/web_visit", json={"url": "corpus://d2"}).json()
    assert r["answered_locally"] is True and r["from_store"] is False
    assert "about charlie" in r["text"]
    r = httpx.post(server.url + "/web_visit", json={"url": "corpus://d1"}).json()
    assert r["answered_locally"] is False and r["from_store"] is True


def test_web_search_and_web_visit_give_what_cirkit_tools_prints(
        recorded: Path, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    with Store(recorded, readonly=True) as st:
        rec = Recorder(st, mode="replay")
        want_search = rec.call_sync("web_search", {"query": QUERIES[2], "num_results": TOPK})
        want_visit = rec.call_sync("web_visit", {"url": "corpus://d1"})
    got = httpx.post(server.url + "/web_search",
                     json={"query": QUERIES[2], "num_results": TOPK}).json()
    assert (got["text"], got["key"], got["data"]) == (want_search.text, want_search.key,
                                                      want_search.data)
    got = httpx.post(server.url + "/web_visit", json={"url": "corpus://d1"}).json()
    assert got["text"] == want_visit.text and got["from_store"] is True


@pytest.mark.parametrize(("path", "body", "why"), [
    ("/retrieve", b"{not json", "not valid JSON"),
    ("/retrieve", b'{"queries": "one string"}', "'queries' must be a list"),
    ("/retrieve", b'{"queries": ["x"], "topk": 0}', "'topk' must be an int"),
    ("/retrieve", b'["x"]', "must be an object"),
    ("/web_search", b'{"query": "x", "num_results": "5"}', "num_results"),
    ("/web_visit", b'{"url": ""}', "url"),
    ("/get_observation", b'{"trajectory_ids": ["a"], "actions": []}', "1 trajectory_ids"),
])
def test_a_bad_body_is_a_400_naming_the_field(recorded: Path, make_toolserver: MakeServer,
                                              path: str, body: bytes, why: str) -> None:
    server = make_toolserver(_replay(recorded))
    r = httpx.post(server.url + path, content=body,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and why in r.json()["error"], r.text
    r = httpx.post(server.url + "/retrieve", content=b"\xc1\xc1",
                   headers={"content-type": "application/msgpack"})
    assert r.status_code == 400 and "msgpack" in msgpack.unpackb(r.content)["error"]


def test_a_body_over_the_limit_is_refused_unread(recorded: Path,
                                                 make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    big = b'{"queries": ["' + b"x" * MAX_BODY_BYTES + b'"]}'
    r = httpx.post(server.url + "/retrieve", content=big,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400 and "the limit is" in r.json()["error"]


def test_64_concurrent_clients_get_the_sequential_answers(
        recorded: Path, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    bodies = [{"queries": [QUERIES[i % len(QUERIES)]], "topk": TOPK, "return_scores": True}
              for i in range(64)]
    sequential = [httpx.post(server.url + "/retrieve", json=b).json() for b in bodies[:8]]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(*(client.post(server.url + "/retrieve", json=b)
                                          for b in bodies))

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 64
    assert [r.json() for r in answers] == [sequential[i % 8] for i in range(64)]


def test_metrics_parse_as_prometheus_text_and_count_what_happened(
        recorded: Path, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_replay(recorded))
    httpx.post(server.url + "/retrieve", json={"queries": QUERIES[:2], "topk": TOPK})
    httpx.post(server.url + "/retrieve", json={"queries": ["never asked"], "topk": TOPK})
    httpx.post(server.url + "/web_visit", json={"url": "corpus://d1"})
    text = httpx.get(server.url + "/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("cirkit_tools_store_hits_total", (("tool", "web_search"),))] == 2
    assert samples[("cirkit_tools_store_hits_total", (("tool", "web_visit"),))] == 1
    assert samples[("cirkit_tools_store_misses_total", (("tool", "web_search"),))] == 1
    assert samples[("cirkit_tools_requests_total", (("endpoint", "retrieve"),))] == 2
    assert samples[("cirkit_tools_request_errors_total", (("endpoint", "retrieve"),))] == 1
    assert samples[("cirkit_tools_request_seconds_count", (("endpoint", "retrieve"),))] == 2
    inf = ("cirkit_tools_request_seconds_bucket", (("endpoint", "web_visit"), ("le", "+Inf")))
    assert samples[inf] == 1
    health = httpx.get(server.url + "/health").json()
    assert health == {"status": "ok", "mode": "replay", "store": str(recorded), "cir": False,
                      "on_miss": "error"}


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_two_cli_replicas_serve_one_store_without_changing_a_byte(
        recorded: Path, serve_cli: Callable[..., CliServer]) -> None:
    before = _snapshot(recorded)
    a = serve_cli("--store", str(recorded))
    b = serve_cli("--store", str(recorded), "--mode", "replay")
    body = {"queries": QUERIES, "topk": TOPK, "return_scores": True}

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(s.url + "/retrieve", json=body)
                                          for s in (a, b, a, b)))

    answers = asyncio.run(both())
    assert [r.status_code for r in answers] == [200] * 4
    assert len({r.content for r in answers}) == 1
    assert answers[0].json()["result"] == [_expected(recorded, q, TOPK) for q in QUERIES]
    err = a.stop() + b.stop()
    assert a.proc.returncode == 0 and b.proc.returncode == 0 and "Traceback" not in err
    assert _snapshot(recorded) == before


@pytest.mark.slow
def test_recording_replicas_then_store_merge_serve_everything(
        corpus: Path, tmp_path: Path, serve_cli: Callable[..., CliServer]) -> None:
    """The recording run of the how-to: each replica grows its own store (auto mode, local
    backend), the stores are merged, and one replay replica answers every call."""
    from click.testing import CliRunner

    from cirkit.cli import cli

    stores = [tmp_path / "r1", tmp_path / "r2"]
    replicas = [serve_cli("--store", str(s), "--mode", "auto", "--corpus", str(corpus))
                for s in stores]
    asked = {0: QUERIES[:5], 1: QUERIES[3:]}  # QUERIES[3:5] recorded by both
    for i, server in enumerate(replicas):
        r = httpx.post(server.url + "/retrieve", json={"queries": asked[i], "topk": TOPK},
                       timeout=60)
        assert r.status_code == 200 and len(r.json()["result"]) == len(asked[i])
        server.stop()
        assert server.proc.returncode == 0
    out = CliRunner().invoke(cli, ["store", "merge", *map(str, stores), "--into",
                                   str(tmp_path / "merged")])
    assert out.exit_code == 0 and "2 duplicates dropped" in out.output, out.output
    replay = serve_cli("--store", str(tmp_path / "merged"))
    r = httpx.post(replay.url + "/retrieve", json={"queries": QUERIES, "topk": TOPK,
                                                   "return_scores": True})
    assert r.status_code == 200
    assert r.json()["result"] == [_expected(tmp_path / "merged", q, TOPK) for q in QUERIES]
