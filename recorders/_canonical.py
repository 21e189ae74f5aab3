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
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import orjson

from ._errors import InvalidCallError

__all__ = [
    "COMPLETION",
    "EXECUTION",
    "MAX_QUERY_CHARS",
    "MAX_URL_CHARS",
    "REDACTED",
    "SEARCH",
    "TOOLS",
    "VISIT",
    "canonical_json",
    "json_loads",
    "make_key",
    "normalise_args",
    "normalise_query",
    "normalise_url",
    "secret_param",
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
MAX_QUERY_CHARS = 4096  # a web search query; search engines take far less (Google: 2048)
MAX_URL_CHARS = 8192  # a visited URL; the common limit of web servers and CDNs


def secret_param(name: str) -> bool:
    """Whether a query parameter of this name carries a credential."""
    return bool(_SECRET_PARAMS.match(name))


def _not_json(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def _canonical_encoder() -> Callable[[Any, int], list[str]]:
    """The encoder ``json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    allow_nan=False).encode`` runs, built once: ``encode`` sets up a new one on every call
    (half the cost of a key). It skips the circular-reference check (a cycle, which no JSON
    document holds, raises RecursionError instead of ValueError); a test holds its output equal
    to ``encode``'s."""
    make = getattr(json.encoder, "c_make_encoder", None)  # not in the type stubs
    if make is None:  # a Python without the _json accelerator
        slow = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                allow_nan=False)
        return lambda obj, _level: [slow.encode(obj)]
    encoder: Callable[[Any, int], list[str]] = make(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", True, False, False)
    return encoder


_CANONICAL = _canonical_encoder()


def canonical_json(obj: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, UTF-8, no whitespace."""
    return "".join(_CANONICAL(obj, 0)).encode("utf-8")


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
    """The normalised arguments of a call. A call that cannot be made (unknown tool, missing or
    ill-typed argument, empty or malformed URL) raises InvalidCallError; arguments that JSON
    cannot hold are make_key's to report."""
    if tool == SEARCH:
        query = args.get("query")
        if not isinstance(query, str):
            raise InvalidCallError(f"web_search needs a string 'query', got {query!r}",
                                   hint="pass the search query as a str")
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidCallError(
                f"web_search 'query' is {len(query):,} characters long; the limit is "
                f"{MAX_QUERY_CHARS:,} (MAX_QUERY_CHARS)",
                hint="search with a short query: a few keywords or one question")
        num = args.get("num_results", 5)
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise InvalidCallError(
                f"web_search 'num_results' must be a positive int, got {num!r}",
                hint="pass num_results=5 (or any int from 1), or leave it out")
        return {"query": normalise_query(query), "num_results": num}
    if tool == VISIT:
        url = args.get("url")
        if not isinstance(url, str) or not url.strip():
            raise InvalidCallError(f"web_visit needs a non-empty string 'url', got {url!r}",
                                   hint=_URL_HINT)
        if len(url) > MAX_URL_CHARS:
            raise InvalidCallError(
                f"web_visit 'url' is {len(url):,} characters long; the limit is "
                f"{MAX_URL_CHARS:,} (MAX_URL_CHARS)",
                hint="visit the page's own address, without data packed into the URL")
        try:
            return {"url": normalise_url(url)}
        except UnicodeEncodeError as e:
            raise _not_unicode(tool, e) from None
        except ValueError as e:  # urlsplit's: a bad IPv6 host or port
            raise InvalidCallError(f"web_visit 'url' is not a valid URL ({e}): {url!r}",
                                   hint=_URL_HINT) from None
    if tool == COMPLETION:
        if not isinstance(args.get("model"), str):
            raise InvalidCallError("a completion needs a string 'model'",
                                   hint="pass the model's name as 'model'")
        return dict(json_loads(canonical_json(dict(args))))  # a deep, JSON-only copy
    if tool == EXECUTION:
        if not isinstance(args.get("code"), str):
            raise InvalidCallError("a code execution needs a string 'code'",
                                   hint="pass the block's source as 'code'")
        return dict(json_loads(canonical_json(dict(args))))
    raise InvalidCallError(f"unknown tool {tool!r}; valid tools: {', '.join(TOOLS)}",
                           hint=f"use one of {', '.join(TOOLS)}")


def make_key(tool: str, args: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(key, normalised args) for a call; InvalidCallError for a call that cannot be made,
    arguments that JSON cannot hold (text with a lone surrogate, NaN, a set) included."""
    try:
        norm = normalise_args(tool, args)
        doc = canonical_json({"tool": tool, "args": norm})
    except InvalidCallError:
        raise
    except UnicodeEncodeError as e:
        raise _not_unicode(tool, e) from None
    except (TypeError, ValueError) as e:  # from canonical_json: NaN, a set, ...
        raise InvalidCallError(
            f"{tool} arguments are not JSON: {e}",
            hint="pass only str, int, float, bool, None, lists and dicts") from None
    return hashlib.sha256(doc).hexdigest(), norm


_URL_HINT = "pass the full address of the page, e.g. https://en.wikipedia.org/wiki/Rembrandt"


def _not_unicode(tool: str, e: UnicodeEncodeError) -> InvalidCallError:
    bad = e.object[e.start:e.end]
    return InvalidCallError(
        f"{tool} arguments are not valid Unicode text: {bad!r} (a lone surrogate) cannot be "
        "encoded as UTF-8",
        hint="drop or replace the lone surrogate (decoding the source bytes with "
             "errors='replace' does it)")
