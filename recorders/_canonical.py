"""Canonical JSON and request keys.

A key names *what was asked*, never who answered or with which credentials: it is the sha256 of
the canonical JSON of ``{"tool", "args"}`` after normalisation. Canonical JSON has sorted keys,
UTF-8, no whitespace, so the same call gives the same key in every process, whatever the dict
order or hash seed (the failure litellm #40128 shows).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import orjson

__all__ = [
    "COMPLETION",
    "EXECUTION",
    "SEARCH",
    "TOOLS",
    "VISIT",
    "canonical_json",
    "json_loads",
    "make_key",
    "normalise_args",
    "normalise_query",
    "normalise_url",
    "sha256_hex",
]

SEARCH = "web_search"
VISIT = "web_visit"
COMPLETION = "completion"  # a model completion; its args name the prompt by hash
EXECUTION = "code_exec"  # a code block's run, so a replayed rollout is bit-identical
TOOLS = (SEARCH, VISIT, COMPLETION, EXECUTION)


# Query parameters that only track the visitor; they never change the page.
_TRACKING = re.compile(
    r"^(utm_[a-z0-9_]*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid"
    r"|_ga|_gl|ref_src|spm|si)$",
    re.IGNORECASE,
)
# Query parameters that carry credentials: their values never reach a key.
_SECRET_PARAMS = re.compile(
    r"^(api[_-]?key|apikey|key|token|access[_-]?token|auth|authorization|password|secret"
    r"|signature|sig|x-api-key)$",
    re.IGNORECASE,
)
REDACTED = "REDACTED"

# One encoder, built once: json.dumps with non-default options builds a new one on every call.
_CANONICAL = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
)


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, UTF-8, no whitespace."""
    return _CANONICAL.encode(obj).encode("utf-8")


def json_loads(data: bytes | str) -> Any:
    """Parse JSON on the replay hot path: orjson is ~3x faster than json; the few valid
    documents it refuses (integers over 64 bits) go to json, which gives the same objects."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def normalise_query(query: str) -> str:
    """Strip and collapse whitespace; case is kept (providers are case-sensitive at times).
    ``str.split()`` splits on exactly the characters ``\\s`` matches (``str.isspace``)."""
    return " ".join(query.split())


def normalise_url(url: str) -> str:
    """Lower-case scheme and host, drop default ports, fragment and tracking parameters,
    redact credential parameters, sort the remaining query."""
    url = url.strip()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme and not parts.netloc:
        # "example.com/page" — the model often omits the scheme.
        parts = urlsplit("https://" + url)
        scheme = "https"
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port
    if port is not None and not (
        (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
    ):
        host = f"{host}:{port}"
    if parts.username or parts.password:
        host = f"{REDACTED}@{host}"
    path = quote(unquote(parts.path), safe="/:@!$&'()*+,;=-._~%") or "/"
    pairs = [
        (k, REDACTED if _SECRET_PARAMS.match(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING.match(k)
    ]
    query = urlencode(sorted(pairs))
    return urlunsplit((scheme, host, path, query, ""))


def normalise_args(tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised arguments of a call; unknown tools are rejected."""
    if tool == SEARCH:
        query = args.get("query")
        if not isinstance(query, str):
            raise ValueError("web_search needs a string 'query'")
        num = args.get("num_results", 5)
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"web_search 'num_results' must be a positive int, got {num!r}")
        return {"query": normalise_query(query), "num_results": num}
    if tool == VISIT:
        url = args.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValueError("web_visit needs a non-empty string 'url'")
        return {"url": normalise_url(url)}
    if tool == COMPLETION:
        if not isinstance(args.get("model"), str):
            raise ValueError("a completion needs a string 'model'")
        return dict(json_loads(canonical_json(dict(args))))  # a deep, JSON-only copy
    if tool == EXECUTION:
        if not isinstance(args.get("code"), str):
            raise ValueError("a code execution needs a string 'code'")
        return dict(json_loads(canonical_json(dict(args))))
    raise ValueError(f"unknown tool {tool!r}; valid tools: {', '.join(TOOLS)}")


def make_key(tool: str, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, normalised args) for a call."""
    norm = normalise_args(tool, args)
    return sha256_hex(canonical_json({"tool": tool, "args": norm})), norm
