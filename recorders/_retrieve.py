"""Search-R1's ``/retrieve`` shape, in one place for every server that speaks it.

Request: ``{"queries": [...], "topk": 3, "return_scores": false}`` (or ``"query": "..."`` for
one query). Answer: ``{"result": [[hit, ...], ...]}``, one list per query, where a hit is
``{"document": doc, "score": s}`` with ``return_scores`` and the bare ``doc`` without, and a
doc is ``{"id", "contents", "url"}`` with ``contents`` = the title line then the text, the
title in double quotes as Search-R1's wiki-18 corpus has it (``'"Aaron"\\nAaron is ...'``).
Clients (verl's ``SearchTool``, Search-R1's own) take the first line of ``contents`` as the
title and the rest as the passage.

A recorded ``web_search`` answer of any backend maps to docs here: its normalised hits
(``{title, url, snippet, position}`` + ``score`` where the provider gives one) become docs
whose text is the snippet the store holds; a hit without a score gets ``1/position``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._errors import InvalidCallError

__all__ = [
    "DEFAULT_TOPK",
    "MAX_TOPK",
    "RetrieveRequest",
    "parse_retrieve",
    "retrieve_answer",
    "retrieve_document",
    "stored_search_documents",
]

DEFAULT_TOPK = 3  # Search-R1's retriever default
MAX_TOPK = 1000

#: One retrieved document and its score.
Scored = tuple[dict[str, Any], float]


@dataclass(slots=True, frozen=True)
class RetrieveRequest:
    """A parsed ``/retrieve`` body."""

    queries: tuple[str, ...]
    topk: int = DEFAULT_TOPK
    return_scores: bool = False


def _bad(message: str) -> InvalidCallError:
    return InvalidCallError(message, hint='send {"queries": ["..."], "topk": 3, '
                                          '"return_scores": true}', setting="body")


def parse_retrieve(body: Any) -> RetrieveRequest:
    """The request a ``/retrieve`` body asks for; InvalidCallError naming the bad field."""
    if not isinstance(body, Mapping):
        raise _bad("the body must be an object")
    if "queries" in body:
        queries = body["queries"]
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
            raise _bad("'queries' must be a list of strings")
    elif isinstance(body.get("query"), str):
        queries = [body["query"]]
    else:
        raise _bad("give 'queries' (a list of strings) or 'query' (a string)")
    topk = body.get("topk")
    if topk is None:
        topk = DEFAULT_TOPK
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
        raise _bad(f"'topk' must be an int from 1 to {MAX_TOPK}")
    scores = body.get("return_scores", False)
    if not isinstance(scores, bool | None):
        raise _bad("'return_scores' must be true or false")
    return RetrieveRequest(tuple(queries), topk, bool(scores))


def retrieve_document(*, id: str, url: str, title: str = "", text: str = "",
                      contents: str | None = None) -> dict[str, Any]:
    """A Search-R1 doc: ``contents`` as given, else the quoted title line then the text."""
    if contents is None:
        contents = f'"{title}"\n{text}'
    return {"id": id, "contents": contents, "url": url}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def stored_search_documents(data: Mapping[str, Any], topk: int) -> list[Scored]:
    """The first ``topk`` hits of a recorded ``web_search`` answer as Search-R1 docs.

    A doc's id is the corpus id where the local backend recorded one, else the hit's URL."""
    results = data.get("results")
    hits = [h for h in results if isinstance(h, Mapping)] if isinstance(results, list) else []
    raw = data.get("raw")
    raw_hits = raw.get("hits") if isinstance(raw, Mapping) else None
    ids = [h[0] for h in raw_hits if isinstance(h, list) and h] if isinstance(raw_hits, list) \
        else []
    out: list[Scored] = []
    for i, hit in enumerate(hits[:topk]):
        url = str(hit.get("url", ""))
        position: Any = hit.get("position")
        rank = position if _number(position) and position > 0 else i + 1
        score: Any = hit.get("score")
        doc_id = ids[i] if i < len(ids) and isinstance(ids[i], str) else url
        doc = retrieve_document(id=doc_id, url=url, title=str(hit.get("title", "")),
                                text=str(hit.get("snippet", "")))
        out.append((doc, float(score) if _number(score) else round(1.0 / rank, 6)))
    return out


def retrieve_answer(per_query: Sequence[Sequence[Scored]], *,
                    return_scores: bool) -> dict[str, Any]:
    """The ``/retrieve`` answer for each query's scored docs, in query order."""
    if return_scores:
        return {"result": [[{"document": d, "score": s} for d, s in docs]
                           for docs in per_query]}
    return {"result": [[d for d, _ in docs] for docs in per_query]}
