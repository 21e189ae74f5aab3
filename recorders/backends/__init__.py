"""Backends for ``web_search`` and ``web_visit``: live providers and the local corpus.

Optional heavy parts (bm25s, trafilatura, pypdf) are imported inside the backends that use
them, so ``import recorders`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from recorders._canonical import SEARCH, VISIT

from ._base import POLICY_REFUSAL, Backend, InMemoryBackend, Response, require_env

if TYPE_CHECKING:
    from ._corpus import Corpus, build_demo_corpus, cache_dir, demo_corpus_path
    from ._http import DEFAULT_MAX_BYTES, HttpClient, RetryPolicy, redact_url
    from ._local import LocalSearch, LocalVisit, clear_memory_caches, load_index
    from ._retrieval_server import start_server as start_retrieval_server
    from ._search_providers import (
        BraveSearch,
        RetrievalSearch,
        SearxngSearch,
        SerperSearch,
        TavilySearch,
    )
    from ._visit_providers import DirectFetch, JinaReader, SerperScrape, decode_body, extract_text

__all__ = [
    "DEFAULT_MAX_BYTES",
    "POLICY_REFUSAL",
    "SEARCH_BACKENDS",
    "VISIT_BACKENDS",
    "Backend",
    "BraveSearch",
    "Corpus",
    "DirectFetch",
    "HttpClient",
    "InMemoryBackend",
    "JinaReader",
    "LocalSearch",
    "LocalVisit",
    "Response",
    "RetrievalSearch",
    "RetryPolicy",
    "SearxngSearch",
    "SerperScrape",
    "SerperSearch",
    "TavilySearch",
    "build_demo_corpus",
    "cache_dir",
    "clear_memory_caches",
    "decode_body",
    "demo_corpus_path",
    "extract_text",
    "load_index",
    "make_backend",
    "redact_url",
    "require_env",
    "start_retrieval_server",
]

# Public names whose modules are imported on first use (httpx, bm25s and trafilatura stay
# unloaded until a backend needs them): name -> "module:attribute".
_LAZY = {
    "DEFAULT_MAX_BYTES": "._http:DEFAULT_MAX_BYTES", "HttpClient": "._http:HttpClient",
    "RetryPolicy": "._http:RetryPolicy", "redact_url": "._http:redact_url",
    "Corpus": "._corpus:Corpus", "build_demo_corpus": "._corpus:build_demo_corpus",
    "cache_dir": "._corpus:cache_dir", "demo_corpus_path": "._corpus:demo_corpus_path",
    "LocalSearch": "._local:LocalSearch", "LocalVisit": "._local:LocalVisit",
    "clear_memory_caches": "._local:clear_memory_caches", "load_index": "._local:load_index",
    "BraveSearch": "._search_providers:BraveSearch",
    "RetrievalSearch": "._search_providers:RetrievalSearch",
    "SearxngSearch": "._search_providers:SearxngSearch",
    "SerperSearch": "._search_providers:SerperSearch",
    "TavilySearch": "._search_providers:TavilySearch",
    "DirectFetch": "._visit_providers:DirectFetch", "JinaReader": "._visit_providers:JinaReader",
    "SerperScrape": "._visit_providers:SerperScrape",
    "decode_body": "._visit_providers:decode_body",
    "extract_text": "._visit_providers:extract_text",
    "start_retrieval_server": "._retrieval_server:start_server",
}


def __getattr__(name: str) -> Any:
    import importlib

    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value

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
