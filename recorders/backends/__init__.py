"""Backends for ``web_search`` and ``web_visit``: live providers and the local corpus.

Optional heavy parts (bm25s, trafilatura, pypdf) are imported inside the backends that use
them, so ``import recorders`` stays fast.
"""

from __future__ import annotations

from typing import Any

from .._canonical import SEARCH, VISIT
from ._base import Backend, InMemoryBackend, Response, require_env

__all__ = [
    "SEARCH_BACKENDS",
    "VISIT_BACKENDS",
    "Backend",
    "InMemoryBackend",
    "Response",
    "make_backend",
    "require_env",
]

# name -> "module:Class". The first of each is the default.
SEARCH_BACKENDS = {
    "local": "._local:LocalSearch",
    "serper": "._search_providers:SerperSearch",
    "tavily": "._search_providers:TavilySearch",
    "brave": "._search_providers:BraveSearch",
    "searxng": "._search_providers:SearxngSearch",
    "retrieval": "._search_providers:RetrievalSearch",
}
VISIT_BACKENDS = {
    "local": "._local:LocalVisit",
    "fetch": "._visit_providers:DirectFetch",
    "jina": "._visit_providers:JinaReader",
    "serper": "._visit_providers:SerperScrape",
}


def make_backend(tool: str, name: str, **options: Any) -> Backend:
    """A backend by name, e.g. ``make_backend("web_search", "serper", api_key=...)``."""
    import importlib

    table = {SEARCH: SEARCH_BACKENDS, VISIT: VISIT_BACKENDS}.get(tool)
    if table is None:
        raise ValueError(f"unknown tool {tool!r}; valid tools: {SEARCH}, {VISIT}")
    target = table.get(name)
    if target is None:
        raise ValueError(f"unknown {tool} backend {name!r}; valid backends: {', '.join(table)}")
    module, cls = target.split(":")
    backend: Backend = getattr(importlib.import_module(module, __package__), cls)(**options)
    return backend
