"""Live ``web_search`` backends: Serper, Tavily, Brave, SearXNG and a Search-R1 retrieval server.

Each asks its provider, keeps the provider's JSON as ``raw`` (so a renderer change never needs a
re-recording) and normalises the hits, in the provider's order, to ``{title, url, snippet,
position}`` plus ``date``/``score`` where given. Credentials live only in request headers and in
``secrets`` (which the Recorder scrubs from anything stored); they never enter ``data``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from recorders._canonical import SEARCH

from ._base import Response, document_url, preview, search_data, visit_data
from ._provider import Provider

__all__ = ["BraveSearch", "RetrievalSearch", "SearxngSearch", "SerperSearch", "TavilySearch"]

_TAG = re.compile(r"<[^>]+>")


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _strip_html(value: Any) -> str:
    """Brave and SearXNG mark matched words with ``<strong>``; the model wants plain text."""
    return " ".join(html.unescape(_TAG.sub("", _text(value))).split())


def _hit(title: Any, url: Any, snippet: Any, **extra: Any) -> dict[str, Any]:
    hit: dict[str, Any] = {"title": _text(title), "url": _text(url), "snippet": _text(snippet)}
    hit.update({k: v for k, v in extra.items() if v is not None and v != ""})
    return hit


class _ProviderSearch(Provider):
    """A search provider: the shared wiring (key, base URL, retries: see Provider), one request
    per search, and its hits normalised in the provider's order."""

    tool = SEARCH
    max_num: ClassVar[int] = 100

    async def handle(self, args: Mapping[str, Any]) -> Response:
        query = str(args["query"])
        num = int(args.get("num_results", 5))
        raw = await self._search(query, max(1, min(num, self.max_num)))
        hits = self._hits(raw)[:num]
        for i, hit in enumerate(hits, start=1):
            hit["position"] = i
        return Response(search_data(hits, raw=raw))

    async def _search(self, query: str, num: int) -> Any:
        raise NotImplementedError

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    @staticmethod
    def _list(raw: Any, *path: str) -> list[Mapping[str, Any]]:
        """``raw[path...]`` as a list of objects, tolerating missing or odd fields."""
        node = raw
        for p in path:
            node = node.get(p) if isinstance(node, Mapping) else None
        return [x for x in node if isinstance(x, Mapping)] if isinstance(node, list) else []


class SerperSearch(_ProviderSearch):
    """Google results via serper.dev, the provider the CIR demo used. ``answerBox`` and
    ``knowledgeGraph`` stay in ``raw`` (not hits); ``RenderOptions(answer_box=True)`` shows
    them to the model."""

    name = "serper"
    key_env = "SERPER_API_KEY"
    base_env = "SERPER_BASE_URL"
    default_base = "https://google.serper.dev"

    async def _search(self, query: str, num: int) -> Any:
        assert self._key is not None
        got = await self._http.request(
            "POST", f"{self.base_url}/search", json_body={"q": query, "num": num},
            headers={"X-API-KEY": self._key, "Content-Type": "application/json"},
        )
        return self._http.parse_json(got)

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        return [_hit(o.get("title"), o.get("link"), o.get("snippet"), date=o.get("date"))
                for o in self._list(raw, "organic")]


class TavilySearch(_ProviderSearch):
    """Tavily's search API (Bearer key); its relevance ``score`` is kept."""

    name = "tavily"
    key_env = "TAVILY_API_KEY"
    base_env = "TAVILY_BASE_URL"
    default_base = "https://api.tavily.com"
    max_num = 20

    async def _search(self, query: str, num: int) -> Any:
        assert self._key is not None
        got = await self._http.request(
            "POST", f"{self.base_url}/search", json_body={"query": query, "max_results": num},
            headers={"Authorization": f"Bearer {self._key}"},
        )
        return self._http.parse_json(got)

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        return [_hit(r.get("title"), r.get("url"), r.get("content"),
                     date=r.get("published_date"), score=r.get("score"))
                for r in self._list(raw, "results")]


class BraveSearch(_ProviderSearch):
    """Brave Search API (``X-Subscription-Token``); it answers at most 20 hits per request."""

    name = "brave"
    key_env = "BRAVE_API_KEY"
    base_env = "BRAVE_BASE_URL"
    default_base = "https://api.search.brave.com"
    max_num = 20

    async def _search(self, query: str, num: int) -> Any:
        assert self._key is not None
        got = await self._http.request(
            "GET", f"{self.base_url}/res/v1/web/search", params={"q": query, "count": num},
            headers={"X-Subscription-Token": self._key, "Accept": "application/json"},
        )
        return self._http.parse_json(got, "GET")

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        return [_hit(_strip_html(r.get("title")), r.get("url"), _strip_html(r.get("description")),
                     date=r.get("page_age") or r.get("age"))
                for r in self._list(raw, "web", "results")]


class SearxngSearch(_ProviderSearch):
    """A SearXNG instance (no key; its ``json`` format must be enabled in settings.yml)."""

    name = "searxng"
    base_env = "SEARXNG_URL"
    default_base = None

    async def _search(self, query: str, num: int) -> Any:
        got = await self._http.request(
            "GET", f"{self.base_url}/search", params={"q": query, "format": "json"},
            headers={"Accept": "application/json"},
        )
        return self._http.parse_json(got, "GET")

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        return [_hit(_strip_html(r.get("title")), r.get("url"), _strip_html(r.get("content")),
                     date=r.get("publishedDate"), score=r.get("score"))
                for r in self._list(raw, "results")]


class RetrievalSearch(_ProviderSearch):
    """A Search-R1 style retrieval server over a local corpus: ``contents`` is a title line then
    the text, so the title is the first line and the snippet the first words of the rest."""

    name = "retrieval"
    base_env = "RETRIEVAL_URL"
    default_base = "http://127.0.0.1:8000"

    async def _search(self, query: str, num: int) -> Any:
        got = await self._http.request(
            "POST", f"{self.base_url}/retrieve",
            json_body={"queries": [query], "topk": num, "return_scores": True},
        )
        return self._http.parse_json(got)

    def _hits(self, raw: Any) -> list[dict[str, Any]]:
        return [h for h, _ in self._docs(raw)]

    def _docs(self, raw: Any) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Each hit, with the visit answer its document gives when it has no URL of its own
        (Search-R1's documents: ``{id, contents}`` from its dense retrievers, ``{title, text,
        contents}`` from BM25, ``{contents}`` from its online-search servers)."""
        result = raw.get("result") if isinstance(raw, Mapping) else None
        first = result[0] if isinstance(result, list) and result else []
        out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
        for item in first if isinstance(first, list) else []:
            if not isinstance(item, Mapping):
                continue
            doc = item.get("document", item)
            doc = doc if isinstance(doc, Mapping) else {}
            contents = _text(doc.get("contents"))
            if not contents and _text(doc.get("title")):
                contents = f'"{_text(doc.get("title"))}"\n{_text(doc.get("text"))}'
            title, _, rest = contents.partition("\n")
            title = title.strip().strip('"').strip()
            url = _text(doc.get("url"))
            page = None
            if not url:
                url = document_url(doc.get("id"), contents)
                page = visit_data(url=url, final_url=url, status_code=200,
                                  content_type="text/plain", title=title, text=rest.strip(),
                                  extractor=self.name)
            out.append((_hit(title, url, preview(rest), score=item.get("score")), page))
        return out

    async def handle(self, args: Mapping[str, Any]) -> Response:
        """As every provider, plus the documents behind the corpus:// URLs it made."""
        query = str(args["query"])
        num = int(args.get("num_results", 5))
        raw = await self._search(query, max(1, min(num, self.max_num)))
        docs = self._docs(raw)[:num]
        hits = [h for h, _ in docs]
        for i, hit in enumerate(hits, start=1):
            hit["position"] = i
        pages = {h["url"]: p for h, p in docs if p is not None}
        return Response(search_data(hits, raw=raw), documents=pages)
