"""Credentials out of everything stored: URL userinfo, credential query parameters, and the
secret values a caller or a provider echoed back.

Why on decoded values: a secret holding ``"`` or ``\\`` is escaped in JSON (``\\"``), so a
search over the encoded bytes misses it. Redaction walks the decoded answer (every string, dict
keys included) before it is encoded; only raw page bytes, which are not JSON, are scrubbed as
bytes (in their plain and percent-encoded forms).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote_plus, urlsplit

from ._canonical import REDACTED, secret_param

__all__ = ["MIN_SECRET_CHARS", "redact_data", "redact_urls", "scrub_bytes", "url_secrets"]

MIN_SECRET_CHARS = 4  # a shorter value would erase ordinary words from pages; URLs still redact
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>\\\[\]{}()`|^]+")
_MARK = "[REDACTED]"


def _redact_one(url: str) -> str:
    """One URL with its userinfo and credential parameter values replaced; else unchanged."""
    scheme, sep, rest = url.partition("://")
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if i != -1:
            end = min(end, i)
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    path, qmark, query = tail.partition("?")
    if qmark:
        query, hsep, frag = query.partition("#")
        parts = query.split("&")
        for n, p in enumerate(parts):
            k, eq, _ = p.partition("=")
            if eq and secret_param(unquote_plus(k)):
                parts[n] = f"{k}={REDACTED}"
        tail = path + "?" + "&".join(parts) + hsep + frag
    return scheme + sep + netloc + tail


def redact_urls(text: str) -> str:
    """Every URL inside ``text`` without credentials (userinfo, ``api_key=``, ``token=``,
    ``sig=``...); text without a URL is returned as is (the same object)."""
    if "://" not in text:
        return text
    return _URL.sub(lambda m: _redact_one(m.group(0)), text)


def url_secrets(url: str) -> tuple[str, ...]:
    """The credential values a URL carries (its password, its credential parameters' values),
    as given and percent-encoded, so that an echo of them anywhere can be scrubbed."""
    try:
        parts = urlsplit(url.strip() if "://" in url else "https://" + url.strip())
        values = [parts.password or ""]
        values += [v for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if secret_param(k)]
    except ValueError:
        return ()
    out: dict[str, None] = {}
    for v in values:
        for form in (v, quote(v, safe=""), quote_plus(v)):
            if len(form) >= MIN_SECRET_CHARS:
                out.setdefault(form)
    return tuple(out)


def _scrub_text(s: str, secrets: tuple[str, ...], urls: bool) -> str:
    if urls:
        s = redact_urls(s)
    for v in secrets:
        if v in s:
            s = s.replace(v, _MARK)
    return s


def redact_data(obj: Any, secrets: tuple[str, ...], *, urls: bool) -> Any:
    """A JSON value with every string (and key) scrubbed of ``secrets`` and, if ``urls``, of
    URL credentials. Values that need no change are returned as they are."""
    secrets = tuple(s for s in secrets if len(s) >= MIN_SECRET_CHARS)
    if not urls and not secrets:
        return obj
    return _walk(obj, secrets, urls)


def _walk(obj: Any, secrets: tuple[str, ...], urls: bool) -> Any:
    if isinstance(obj, str):
        return _scrub_text(obj, secrets, urls)
    if isinstance(obj, dict):
        return {_scrub_text(k, secrets, urls) if isinstance(k, str) else k:
                _walk(v, secrets, urls) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, secrets, urls) for v in obj]
    return obj


def scrub_bytes(data: bytes, secrets: tuple[str, ...]) -> bytes:
    """Raw bytes (a page) with every secret value replaced."""
    for s in secrets:
        if len(s) >= MIN_SECRET_CHARS:
            b = s.encode("utf-8", "surrogatepass")
            if b in data:
                data = data.replace(b, _MARK.encode())
    return data
