"""Secrets never reach stored data: a visited URL's credentials (userinfo, api_key=, token=,
sig=...) and every echo of them are redacted in the blobs too, not only in keys, on decoded
values; nothing of them is in the store directory, in a pack or in a dry-run push."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cirkit.hub import push_folder
from recorders import Backend, Recorder, Response, Store, pack
from recorders.backends import DirectFetch, JinaReader, LocalVisit, SerperScrape
from tests.cirkit.hub.test_push import make_folder
from tests.servers.providers import API_KEY, Providers
from tests.servers.site import Site

USER, PASSWORD = "alice-SECRET-USER", "pw-SECRET-PASS-77"
PARAMS = {"api_key": "SECRET-APIKEY-11", "token": "SECRET-TOKEN-22", "sig": "SECRET-SIG-33"}
SECRETS = (USER, PASSWORD, *PARAMS.values(), API_KEY)
FAST: dict[str, Any] = {"timeout": 5.0, "retries": 1, "backoff": 0.01}


def _with_secrets(url: str) -> str:
    """``url`` with userinfo and credential parameters (and one harmless parameter)."""
    scheme, rest = url.split("://", 1)
    query = "&".join(f"{k}={v}" for k, v in PARAMS.items())
    return f"{scheme}://{USER}:{PASSWORD}@{rest}?page=2&{query}"


def _leaks(data: bytes, where: str) -> list[str]:
    return [f"{s} in {where}" for s in SECRETS if s.encode() in data]


def _tree_leaks(root: Path) -> list[str]:
    found: list[str] = []
    for f in sorted(root.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.suffix == ".cirpack":  # search the pack's own bytes, not its gzip stream
                data = gzip.decompress(data)
            found += _leaks(data, str(f.relative_to(root)))
    return found


async def test_no_visited_url_secret_in_the_store_a_pack_or_a_push(
    site: Site, providers: Providers, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "1", "contents": "Doc\nSome text.",
                                  "url": "https://example.org/doc"}) + "\n")
    visits: list[tuple[Backend, str]] = [
        (DirectFetch(allow_private=True, **FAST), site.url("/echo")),  # the page echoes it
        (JinaReader(api_key=API_KEY, base_url=providers.jina, **FAST),
         "https://example.org/reader"),  # Jina echoes the URL in title, url and text
        (SerperScrape(api_key=API_KEY, base_url=providers.serper_scrape, **FAST),
         "https://example.org/scrape"),  # Serper echoes it in text, markdown and title
        (LocalVisit(corpus=corpus), "https://example.org/unknown"),  # a 404 echoing it
    ]
    store = Store(tmp_path / "store")
    for backend, url in visits:
        rec = Recorder(store, visit=backend, mode="record")
        result = await rec.web_visit(_with_secrets(url))
        assert result.status in ("ok", "http_404")
        assert "page=2" in json.dumps(result.data)  # the harmless parameter is kept
        assert _leaks(json.dumps(result.data).encode(), backend.name) == []
    assert len(store) == len(visits)
    assert store.verify().ok
    store.close()
    assert _tree_leaks(tmp_path / "store") == []

    with Store(tmp_path / "store", readonly=True) as st:
        pack(st, tmp_path / "packs" / "s.cirpack")
    assert _tree_leaks(tmp_path / "packs") == []

    push_folder(make_folder(tmp_path / "ds"), "user/data", dry_run=tmp_path / "dry",
                with_store=tmp_path / "store")
    assert (tmp_path / "dry" / "store" / "store.cirpack").is_file()
    assert _tree_leaks(tmp_path / "dry") == []


class _Echo:
    """A backend whose provider echoes its own credential back, inside the answer (the kind a
    JSON encoder escapes) and as a dict key."""

    name = "echo"
    tool = "web_search"

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.key,)

    async def handle(self, args: Mapping[str, Any]) -> Response:
        return Response({"results": [], "raw": {"message": f"bad key {self.key}",
                                                self.key: [self.key]}})


async def test_a_secret_that_json_escapes_is_redacted(tmp_path: Path) -> None:
    for n, key in enumerate(['sk-QUOTE"SECRET-1', "sk-BACKSLASH\\SECRET-2",
                             'sk-BOTH\\"SECRET-3\u00e9']):
        with Store(tmp_path / f"s{n}") as st:
            rec = Recorder(st, search=_Echo(key), mode="record")
            result = await rec.web_search("q")
            assert key not in json.dumps(result.data, ensure_ascii=False)
            assert "[REDACTED]" in result.data["raw"]["message"]
        for f in (tmp_path / f"s{n}").rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                for form in (key, json.dumps(key)[1:-1], json.dumps(key, ensure_ascii=False)[1:-1]):
                    assert form.encode() not in data, (form, f)


async def test_search_hit_urls_lose_their_credentials(tmp_path: Path) -> None:
    class Hits:
        name, tool, secrets = "hits", "web_search", ()

        async def handle(self, args: Mapping[str, Any]) -> Response:
            return Response({"results": [{"title": "t", "snippet": "s",
                                          "url": _with_secrets("https://cdn.example.org/f")}]})

    with Store(tmp_path / "s") as st:
        result = await Recorder(st, search=Hits(), mode="record").web_search("q")  # type: ignore[arg-type]
        url = result.data["results"][0]["url"]
        assert url == ("https://REDACTED@cdn.example.org/f?page=2&api_key=REDACTED&"
                       "token=REDACTED&sig=REDACTED")
    assert _tree_leaks(tmp_path / "s") == []
