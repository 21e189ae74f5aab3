"""Provider-shaped JSON APIs on 127.0.0.1: Serper (search + scrape), Tavily, Brave, SearXNG,
Jina Reader and a Search-R1 ``/retrieve``. Each checks its credential header (401 if wrong),
answers deterministically from the query, sets a cookie, and can be told to fail.

Fixture ``providers`` (session scope) yields a ``Providers``: base URLs per provider, the test
``api_key``, ``fail_next(n, status, retry_after)``, ``requests`` (a count) and ``reset()``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ._loopback import QuietHandler, serve

__all__ = ["API_KEY", "PROVIDER_COOKIE", "SEARCH_R1_DOCS", "SERPER_BOXES", "WORLD_CUP",
           "Providers", "fake_hits", "providers"]

API_KEY = "sk-test-CIRKIT-SECRET-0123456789"
PROVIDER_COOKIE = "SECRETCOOKIE123"
MAX_HITS = 10


def _slug(query: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", query.lower()).strip("-") or "q"


def fake_hits(query: str, n: int) -> list[dict[str, Any]]:
    """The hits every search API answers for ``query`` (at most 10); hit 2 is on huggingface.co."""
    slug = _slug(query)
    out = []
    for i in range(1, max(0, min(n, MAX_HITS)) + 1):
        url = (f"https://huggingface.co/datasets/{slug}" if i == 2
               else f"https://example.org/{slug}/{i}")
        out.append({"title": f"{query} result {i}", "url": url,
                    "snippet": f"Snippet {i} about {query}.", "date": f"2024-01-{i:02d}",
                    "score": round(1.0 - i / 20, 3)})
    return out


#: Search-R1's documents without id or URL, per query, as its servers send them: BM25 over a
#: corpus with stored contents (search_r1/search/retrieval_server.py: ``{title, text,
#: contents}``, wiki-18's quoted title line) and the online-search proxy
#: (serp_search_server.py: ``{"document": {"contents"}}``, no score).
SEARCH_R1_DOCS: dict[str, list[dict[str, Any]]] = {
    "bm25 aaron": [
        {"document": {"title": "Aaron",
                      "text": "Aaron is a prophet, high priest, and the brother of Moses in "
                              "the Abrahamic religions. Knowledge of Aaron, along with his "
                              "brother Moses, comes exclusively from religious texts, such as "
                              "the Bible and Quran. The Hebrew Bible relates that, unlike "
                              "Moses, who grew up in the Egyptian royal court, Aaron and his "
                              "elder sister Miriam remained with their kinsmen in the eastern "
                              "border-land of Egypt (Goshen).",
                      "contents": "\"Aaron\"\nAaron is a prophet, high priest, and the "
                                  "brother of Moses in the Abrahamic religions. Knowledge of "
                                  "Aaron, along with his brother Moses, comes exclusively from "
                                  "religious texts, such as the Bible and Quran. The Hebrew "
                                  "Bible relates that, unlike Moses, who grew up in the "
                                  "Egyptian royal court, Aaron and his elder sister Miriam "
                                  "remained with their kinsmen in the eastern border-land of "
                                  "Egypt (Goshen)."},
         "score": 12.5},
        {"document": {"title": "Aaron",
                      "text": "When Moses first confronted the Egyptian king about them, Aaron "
                              "served as his brother's spokesman to Pharaoh.",
                      "contents": "\"Aaron\"\nWhen Moses first confronted the Egyptian king "
                                  "about them, Aaron served as his brother's spokesman to "
                                  "Pharaoh."},
         "score": 11.0},
    ],
    "online night watch": [
        {"document": {"contents": "\"The Night Watch - Rijksmuseum\"\nThe Night Watch is "
                                  "Rembrandt's most famous painting, completed in 1642."}},
        {"document": {"contents": "\"The Night Watch - Wikipedia\"\nMilitia Company of "
                                  "District II under the Command of Captain Frans Banninck "
                                  "Cocq, also known as The Night Watch."}},
    ],
}

WORLD_CUP = "who won the 2018 fifa world cup"
#: Serper's direct-answer blocks for a query, in the shape serper.dev returns them: an
#: ``answerBox`` (title, link, answer or snippet) and a ``knowledgeGraph`` (title, type,
#: description with its source and link, attributes, website and image).
SERPER_BOXES: dict[str, dict[str, Any]] = {
    WORLD_CUP: {
        "answerBox": {"title": "2018 FIFA World Cup / Champions",
                      "link": "https://en.wikipedia.org/wiki/2018_FIFA_World_Cup",
                      "answer": "France"},
        "knowledgeGraph": {
            "title": "2018 FIFA World Cup", "type": "Football tournament",
            "imageUrl": "https://example.org/img/2018-world-cup.png",
            "description": "The 2018 FIFA World Cup was the 21st FIFA World Cup, held in "
                           "Russia from 14 June to 15 July 2018.",
            "descriptionSource": "Wikipedia",
            "descriptionLink": "https://en.wikipedia.org/wiki/2018_FIFA_World_Cup",
            "attributes": {"Champions": "France", "Runners-up": "Croatia",
                           "Host country": "Russia", "Dates": "14 Jun - 15 Jul 2018"},
        },
    },
}


@dataclass
class Providers:
    root: str = ""
    api_key: str = API_KEY
    requests: int = 0
    paths: list[str] = field(default_factory=list)
    _fail: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def serper(self) -> str:
        return f"{self.root}/serper"

    @property
    def serper_scrape(self) -> str:
        return f"{self.root}/serper-scrape"

    @property
    def tavily(self) -> str:
        return f"{self.root}/tavily"

    @property
    def brave(self) -> str:
        return f"{self.root}/brave"

    @property
    def searxng(self) -> str:
        return f"{self.root}/searxng"

    @property
    def jina(self) -> str:
        return f"{self.root}/jina"

    @property
    def retrieval(self) -> str:
        return f"{self.root}/retrieval"

    def fail_next(self, n: int, status: int = 500, retry_after: str | None = None) -> None:
        """The next ``n`` requests (any provider) answer ``status``."""
        with self.lock:
            self._fail = [(status, retry_after)] * n

    def reset(self) -> None:
        with self.lock:
            self._fail = []
            self.requests = 0
            self.paths = []


class _ProviderHandler(QuietHandler):
    def _reply(self, code: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        headers = {"Set-Cookie": f"provider_session={PROVIDER_COOKIE}; Path=/; HttpOnly",
                   **(extra or {})}
        self.send_bytes(code, json.dumps(obj).encode(), "application/json", headers)

    def _route(self, method: str) -> None:
        state: Providers = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body_bytes = self.read_body() if method == "POST" else b""
        with state.lock:
            state.requests += 1
            state.paths.append(parts.path)
            failure = state._fail.pop(0) if state._fail else None
        if failure is not None:
            status, retry_after = failure
            self._reply(status, {"message": f"injected failure {status}"},
                        {"Retry-After": retry_after} if retry_after is not None else None)
            return
        body: Any = json.loads(body_bytes) if body_bytes else {}
        routes = {"serper": self._serper, "serper-scrape": self._serper_scrape,
                  "tavily": self._tavily, "brave": self._brave, "searxng": self._searxng,
                  "jina": self._jina, "retrieval": self._retrieval}
        handler = routes.get(parts.path.strip("/").split("/")[0])
        if handler is None:
            self._reply(404, {"message": "no such endpoint"})
        else:
            handler(method, parts.path, query, body)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _authorised(self, header: str, value: str) -> bool:
        if self.headers.get(header) == value:
            return True
        self._reply(401, {"message": "Unauthorized."})
        return False

    # -- providers -------------------------------------------------------------------------
    def _serper(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if not self._authorised("X-API-KEY", API_KEY):
            return
        q, n = str(body.get("q", "")), int(body.get("num", 10))
        organic = [{"title": h["title"], "link": h["url"], "snippet": h["snippet"],
                    "position": i, **({"date": h["date"]} if i % 2 else {})}
                   for i, h in enumerate(fake_hits(q, n), start=1)]
        self._reply(200, {"searchParameters": {"q": q, "num": n, "type": "search"},
                          **SERPER_BOXES.get(q, {
                              "answerBox": {"answer": f"The answer about {q}"},
                              "knowledgeGraph": {"title": q, "type": "Topic"}}),
                          "organic": organic, "credits": 1})

    def _serper_scrape(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if not self._authorised("X-API-KEY", API_KEY):
            return
        url = str(body.get("url", ""))
        if "missing" in url:
            self._reply(400, {"message": "Failed to scrape the URL", "statusCode": 400})
            return
        self._reply(200, {
            "text": f"Scraped page {url}\nIt has a body.",
            "markdown": f"# Scraped {url}\n\nIt has a [linked](https://example.org/x) body.\n\n"
                        "![logo](https://example.org/logo.png)",
            "metadata": {"title": f"Scraped {url}", "description": "A scraped page"},
            "credits": 1,
        })

    def _tavily(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if not self._authorised("Authorization", f"Bearer {API_KEY}"):
            return
        q, n = str(body.get("query", "")), int(body.get("max_results", 5))
        results = [{"title": h["title"], "url": h["url"], "content": h["snippet"],
                    "score": h["score"], "raw_content": None, "published_date": h["date"]}
                   for h in fake_hits(q, n)]
        self._reply(200, {"query": q, "answer": None, "images": [], "results": results,
                          "response_time": 0.42})

    def _brave(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if not self._authorised("X-Subscription-Token", API_KEY):
            return
        q, n = query.get("q", ""), int(query.get("count", 20))
        results = [{"title": h["title"], "url": h["url"],
                    "description": h["snippet"].replace("Snippet", "<strong>Snippet</strong>"),
                    "page_age": h["date"], "age": "1 year ago"}
                   for h in fake_hits(q, n)]
        self._reply(200, {"type": "search", "query": {"original": q},
                          "web": {"type": "search", "results": results}})

    def _searxng(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        if query.get("format") != "json":
            self._reply(403, {"message": "format not allowed"})
            return
        q = query.get("q", "")
        results = [{"url": h["url"], "title": h["title"], "content": h["snippet"],
                    "engine": "duckduckgo", "score": h["score"]}
                   for h in fake_hits(q, MAX_HITS)]  # SearXNG has no count parameter
        self._reply(200, {"query": q, "number_of_results": len(results), "results": results})

    def _jina(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        auth = self.headers.get("Authorization")
        if auth is not None and auth != f"Bearer {API_KEY}":
            self._reply(401, {"message": "Invalid API key"})
            return
        target = self.path.split("/jina/", 1)[1] if "/jina/" in self.path else ""
        data: dict[str, Any] = {
            "title": f"Reader {target}", "url": target,
            "content": f"Reader text of {target}\n\nSee [the docs](https://example.org/docs)."
                       "\n\n![figure](https://example.org/f.png)\n\nLast line.",
        }
        if "missing" in target:
            data["warning"] = "Target URL returned error 404: Not Found"
        self._reply(200, {"code": 200, "status": 20000, "data": data})

    def _retrieval(self, method: str, path: str, query: dict[str, str], body: Any) -> None:
        queries, k = list(body.get("queries", [])), int(body.get("topk", 3))
        result = []
        for q in queries:
            if q in SEARCH_R1_DOCS:
                result.append(SEARCH_R1_DOCS[q][:k])
                continue
            docs = []
            for i, h in enumerate(fake_hits(q, k), start=1):
                doc: dict[str, Any] = {
                    "id": f"{_slug(q)}-{i}",
                    "contents": f'"{h["title"]}"\n{h["snippet"]} ' + "more corpus words " * 40,
                }
                if "huggingface" in h["url"]:
                    doc["url"] = h["url"]
                docs.append({"document": doc, "score": h["score"] * 10})
            result.append(docs)
        self._reply(200, {"result": result})


@pytest.fixture(scope="session")
def providers() -> Iterator[Providers]:
    """The fake provider APIs, shared by the session (call ``reset()`` before counting)."""
    state = Providers()
    with serve(_ProviderHandler, state) as root:
        state.root = root
        yield state
