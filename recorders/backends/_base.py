"""The backend seam: one async method, ``handle(args) -> Response``.

A backend answers one tool (``web_search`` or ``web_visit``). It returns what the provider said,
normalised just enough for the renderer (``results`` for search, ``text`` for visits) and with the
provider's own JSON kept under ``raw``. It never returns credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from recorders._canonical import SEARCH, VISIT, canonical_json
from recorders._errors import MissingCredentialError

__all__ = ["POLICY_REFUSAL", "PREVIEW_WORDS", "Backend", "InMemoryBackend", "Response",
           "document_url", "preview", "require_env", "search_data", "visit_data"]

#: A corpus hit's preview: its document's first words, `` ...`` when the text goes on.
PREVIEW_WORDS = 50

#: The status of an answer cirkit gave itself, by its own policy, without asking anyone (a
#: private or loopback URL while ``CIRKIT_ALLOW_PRIVATE_URLS`` is unset). It is recorded, so
#: strict replay shows it again, but in ``auto`` mode the Recorder asks the backend again: once
#: the policy allows the URL, the real page replaces the refusal.
POLICY_REFUSAL = "blocked_url"


@dataclass(slots=True)
class Response:
    """A backend's answer: JSON ``data`` (what is stored), a status, and extra raw blobs
    (e.g. a page's bytes) that ``data`` names by sha256."""

    data: dict[str, Any]
    status: str = "ok"
    extra_blobs: list[bytes] = field(default_factory=list)
    #: Visit answers this answer holds already, by URL: a corpus search's documents under the
    #: corpus:// URLs its hits show, recorded with it so that ``web_visit`` resolves them
    #: through the store (an entry the store has already is kept).
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    name: str
    tool: str

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credential values this backend holds, scrubbed from anything stored."""
        ...

    async def handle(self, args: Mapping[str, Any]) -> Response: ...


def preview(text: str, words: int = PREVIEW_WORDS) -> str:
    """The first ``words`` words of ``text``, and `` ...`` if it goes on: the one preview rule
    of the corpus backends (local BM25, a Search-R1 retrieval server)."""
    split = text.split()
    cut = " ".join(split[:words])
    return cut + " ..." if len(split) > words else cut


def document_url(doc_id: Any, contents: str) -> str:
    """A visitable URL for a corpus document that has no URL: ``corpus://{id}``, else (Search-R1's
    BM25 and online-search servers send no id either) ``corpus://sha256-`` and the first 16
    hex digits of the sha256 of its contents: stable across searches, distinct per document."""
    if isinstance(doc_id, str | int) and not isinstance(doc_id, bool) and str(doc_id).strip():
        return "corpus://" + quote(str(doc_id).strip(), safe="")
    return "corpus://sha256-" + hashlib.sha256(contents.encode("utf-8")).hexdigest()[:16]


def search_data(results: list[dict[str, Any]], raw: Any) -> dict[str, Any]:
    """The stored form of a search answer: hits as ``{title, url, snippet}`` (+ extras)."""
    return {"results": results, "raw": raw}


def visit_data(
    *,
    url: str,
    final_url: str,
    status_code: int,
    content_type: str,
    title: str,
    text: str,
    truncated: bool = False,
    raw: Any = None,
    raw_blob: str | None = None,
    extractor: str = "",
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "url": url,
        "final_url": final_url,
        "status_code": status_code,
        "content_type": content_type,
        "title": title,
        "text": text,
        "truncated": truncated,
        "extractor": extractor,
    }
    if raw is not None:
        d["raw"] = raw
    if raw_blob is not None:
        d["raw_blob"] = raw_blob
    return d


def require_env(backend: str, env_var: str, given: str | None = None) -> str:
    """The API key given, else from the environment, else a clear error naming the variable."""
    value = given if given is not None else os.environ.get(env_var)
    if not value:
        raise MissingCredentialError(backend, env_var)
    return value


class InMemoryBackend:
    """A backend served from memory: a mapping of normalised query/url to data, or a function.
    For tests and for wiring a recorded corpus into code that expects a backend."""

    def __init__(
        self,
        tool: str,
        answers: Mapping[str, dict[str, Any]] | Callable[[Mapping[str, Any]], dict[str, Any]],
        *,
        name: str = "memory",
    ) -> None:
        if tool not in (SEARCH, VISIT):
            raise ValueError(f"unknown tool {tool!r}; valid tools: {SEARCH}, {VISIT}")
        self.tool = tool
        self.name = name
        self._answers = answers
        self.calls = 0

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    async def handle(self, args: Mapping[str, Any]) -> Response:
        self.calls += 1
        if callable(self._answers):
            return Response(self._answers(args))
        k = args["query"] if self.tool == SEARCH else args["url"]
        if k not in self._answers:
            return Response({"error": "not found", "args": dict(args)}, status="not_found")
        # Copy so a caller mutating the answer cannot change what was stored.
        return Response(json.loads(canonical_json(self._answers[k])))
