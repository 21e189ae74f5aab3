"""Live ``web_visit`` backends: a direct fetch (trafilatura/pypdf), Jina Reader, Serper scrape.

A visited site's own HTTP errors (404, 500) are *answers*: they are returned as results with
status ``http_{code}`` so that a replay shows the model the same failure. Only the transport
failing (timeouts, refused connections, provider outages) raises ``BackendError``, and nothing
is recorded then. No cookie or other response header outside a short whitelist is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import io
import ipaddress
import os
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import httpx

from recorders._canonical import VISIT

from ._base import POLICY_REFUSAL, Response, visit_data
from ._http import DEFAULT_MAX_BYTES, Fetched, redact_url
from ._provider import Provider

__all__ = ["DirectFetch", "JinaReader", "SerperScrape", "decode_body", "extract_text"]

_KEEP_HEADERS = ("content-type", "content-length", "last-modified")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_DROP = re.compile(r"<(script|style|noscript|template|svg|head)\b.*?</\1\s*>", re.I | re.S)
_BLOCK = re.compile(r"<(?:br|/p|/div|/h[1-6]|/li|/tr|/section|/article)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]+>")
# The Latin ligatures (U+FB00-FB06: ff, fi, fl, ffi, ffl, long st, st) that typeset PDFs map
# their ligature glyphs to; NFKC spells each out, and touches nothing else.
_LIGATURE = re.compile("[\ufb00-\ufb06]")
_TARGET_STATUS = re.compile(r"returned error (\d{3})")
_ACCEPT = "text/html,application/xhtml+xml,application/pdf;q=0.9,text/plain;q=0.8,*/*;q=0.5"


def _check_url(url: str) -> tuple[str, str | None]:
    """(url with a scheme, error) — the model often omits ``https://``; other schemes
    (``file:``, ``ftp:``) are refused as a recorded answer, never fetched."""
    url = url.strip()
    if "://" not in url:
        url = "https://" + url
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as e:
        return url, f"invalid URL: {e}"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return url, f"unsupported URL {url!r}: only http and https pages can be visited"
    return url, None


def _refused(url: str, error: str, status: str = "invalid_url") -> Response:
    data = visit_data(url=url, final_url=url, status_code=0, content_type="", title="", text="")
    data["error"] = error
    return Response(data, status=status)


class BlockedURL(ValueError):
    """A request (or a redirect) aimed at a loopback, private or link-local address."""


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified)


async def refuse_private(url: httpx.URL) -> None:
    """Model-written code chooses the URLs: never let it reach this machine's or its network's
    services (cloud metadata at 169.254.169.254, admin ports on 127.0.0.1...)."""
    host = url.host
    try:
        addrs = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, url.port or 443)
        except OSError:
            return  # unresolvable: the request itself will fail with a clear error
        addrs = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
    bad = [a for a in addrs if _private(a)]
    if bad:
        raise BlockedURL(f"{host} resolves to the non-public address {bad[0]}; refused "
                         "(set CIRKIT_ALLOW_PRIVATE_URLS=1 to allow)")


def decode_body(body: bytes, charset: str | None, mime: str) -> str:
    """Bytes to text: the header's charset, else a ``<meta charset>``, else UTF-8, else a guess
    by charset_normalizer (on the first 64 KiB, to stay fast on big pages)."""
    declared = [charset] if charset else []
    if "html" in mime or "xml" in mime:
        m = _META_CHARSET.search(body[:8192])
        if m:
            declared.append(m.group(1).decode("ascii", "ignore"))
    for enc in declared:
        try:
            return body.decode(enc, "replace")
        except LookupError:
            continue
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start >= len(body) - 3:  # a character cut by the byte cap
            return body[: e.start].decode("utf-8-sig", "replace")
    import charset_normalizer

    matches = charset_normalizer.from_bytes(body[:65536])
    best = matches.best()
    enc = best.encoding if best is not None else "utf-8"
    if best is not None and any(  # on a tie, the web's default legacy encoding (WHATWG)
        m.encoding == "cp1252" and (m.chaos, m.coherence) == (best.chaos, best.coherence)
        for m in matches
    ):
        enc = "cp1252"
    return body.decode(enc, "replace")


def _plain_strip(markup: str) -> str:
    """When trafilatura finds no main content: tags out, one line per block."""
    text = _BLOCK.sub("\n", _DROP.sub(" ", markup))
    text = html.unescape(_TAG.sub(" ", text))
    return "\n".join(" ".join(ln.split()) for ln in text.splitlines() if ln.strip())


def _sniff(body: bytes, mime: str) -> str:
    if mime in ("", "application/octet-stream", "binary/octet-stream"):
        head = body[:512].lstrip().lower()
        if body.startswith(b"%PDF-"):
            return "application/pdf"
        if head.startswith((b"<!doctype html", b"<html")):
            return "text/html"
    return mime


def extract_text(body: bytes, mime: str, charset: str | None, url: str,
                 output_format: str = "markdown") -> tuple[str, str, str]:
    """(title, text, extractor) for a page body; CPU-bound, so callers run it in a thread."""
    mime = _sniff(body, mime)
    if mime == "application/pdf":
        return _extract_pdf(body)
    if "html" in mime or "xml" in mime:
        markup = decode_body(body, charset, mime)
        m = _TITLE.search(markup[:200_000])
        title = " ".join(html.unescape(m.group(1)).split()) if m else ""
        import trafilatura

        text = trafilatura.extract(
            markup, url=url, output_format=output_format, include_links=False,
            include_images=False, include_comments=False, include_tables=True,
        )
        if text is None:
            return title, _plain_strip(markup), "strip"
        return title, str(text), "trafilatura"
    if mime.startswith("text/") or mime in ("application/json", "application/javascript"):
        return "", decode_body(body, charset, mime), "text"
    return "", "", "none"


def _extract_pdf(body: bytes) -> tuple[str, str, str]:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(body))
        pages = [page.extract_text() or "" for page in reader.pages]
        meta = reader.metadata
        title = str(meta.title) if meta is not None and meta.title else ""
    except Exception:  # pypdf raises many kinds on broken or capped files
        return "", "", "pypdf-failed"
    pages = [_pdf_lines(p) for p in pages]
    return " ".join(_unligate(title).split()), "\n\n".join(p for p in pages if p), "pypdf"


def _unligate(text: str) -> str:
    return _LIGATURE.sub(lambda m: unicodedata.normalize("NFKC", m[0]), text)


def _pdf_lines(page: str) -> str:
    """A page's text as the HTML path gives it (trafilatura trims every line): ligatures
    spelled out, each line's spaces and tabs collapsed, blank lines dropped."""
    lines = (" ".join(ln.split()) for ln in _unligate(page).splitlines())
    return "\n".join(ln for ln in lines if ln)


class _ProviderVisit(Provider):
    """A visit backend: the shared wiring (see Provider), URLs checked before any request (a
    refused one is a recorded answer), and the provider's own failure to read a page (HTTP 4xx
    or 5xx from the provider) kept as the answer, with its message."""

    tool = VISIT
    default_timeout = 60.0

    async def handle(self, args: Mapping[str, Any]) -> Response:
        url, error = _check_url(str(args["url"]))
        if error is not None:
            return _refused(url, error)
        return await self._visit(url)

    async def _visit(self, url: str) -> Response:
        """Ask the provider for the page (accepting its 4xx as an answer), then read its reply."""
        got = await self._request(url)
        if got.status_code >= 400:
            raw = _json_or_none(got)
            data = visit_data(url=url, final_url=url, status_code=got.status_code,
                              content_type="", title="", text="", raw=raw, extractor=self.name)
            data["error"] = _provider_error(got, raw)
            return Response(data, status=_status(got.status_code))
        return self._read(url, got)

    async def _request(self, url: str) -> Fetched:
        raise NotImplementedError

    def _read(self, url: str, got: Fetched) -> Response:
        raise NotImplementedError


class DirectFetch(_ProviderVisit):
    """GET the page itself (redirects followed, body capped at ``max_bytes``) and extract its
    main content: trafilatura for HTML, pypdf for PDF, text as is. The raw bytes are stored
    beside the answer (``raw_blob``), so a better extractor can be run later without a refetch.
    No provider stands between: the site's own 4xx and 5xx are extracted like any page."""

    name = "fetch"
    default_timeout = 30.0

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        max_bytes: int = DEFAULT_MAX_BYTES,
        output_format: str = "markdown",
        user_agent: str = "Mozilla/5.0 (compatible; cirkit-recorders/0.1)",
        allow_private: bool | None = None,
    ) -> None:
        """``api_key`` and ``base_url`` are accepted, so every backend takes the same options,
        and unused."""
        if output_format not in ("markdown", "txt"):
            raise ValueError(f"unknown output_format {output_format!r}; valid: markdown, txt")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.output_format = output_format
        if allow_private is None:
            allow_private = os.environ.get("CIRKIT_ALLOW_PRIVATE_URLS", "") in ("1", "true")
        self.allow_private = allow_private
        super().__init__(api_key=api_key, base_url=base_url, timeout=timeout, retries=retries,
                         backoff=backoff, user_agent=user_agent,
                         guard=None if allow_private else refuse_private)

    async def _visit(self, url: str) -> Response:
        try:
            got = await self._http.request(
                "GET", url, headers={"Accept": _ACCEPT}, max_bytes=self.max_bytes,
                follow_redirects=True, accept_4xx=True, accept_5xx=True,
            )
        except BlockedURL as e:
            return _refused(url, str(e), status=POLICY_REFUSAL)
        ctype = got.headers.get("content-type", "")
        mime = ctype.split(";")[0].strip().lower()
        charset = _charset(ctype)
        final_url = redact_url(got.url)
        title, text, extractor = await asyncio.to_thread(
            extract_text, got.content, mime, charset, final_url, self.output_format
        )
        headers = {h: got.headers[h] for h in _KEEP_HEADERS if h in got.headers}
        data = visit_data(
            url=url, final_url=final_url, status_code=got.status_code,
            content_type=_sniff(got.content, mime), title=title, text=text,
            truncated=got.truncated, raw={"headers": headers},
            raw_blob=hashlib.sha256(got.content).hexdigest(), extractor=extractor,
        )
        return Response(data, status=_status(got.status_code), extra_blobs=[got.content])


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        k, _, v = part.partition("=")
        if k.strip().lower() == "charset" and v.strip():
            return v.strip().strip("\"'")
    return None


def _status(code: int) -> str:
    return "ok" if code < 400 else f"http_{code}"


def _provider_error(got: Fetched, raw: Any) -> str:
    """A scrape provider's message for a page it could not read (kept as the answer)."""
    if isinstance(raw, Mapping):
        for k in ("readableMessage", "message", "error", "detail"):
            if isinstance(raw.get(k), str) and raw[k].strip():
                return " ".join(str(raw[k]).split())[:300]
    return f"HTTP {got.status_code}"


def _json_or_none(got: Fetched) -> Any:
    try:
        return got.json()
    except (ValueError, UnicodeDecodeError):
        return None


class JinaReader(_ProviderVisit):
    """Jina Reader (``r.jina.ai``): the page as markdown. A key is optional (higher limits)."""

    name = "jina"
    key_env = "JINA_API_KEY"
    key_required = False
    base_env = "JINA_BASE_URL"
    default_base = "https://r.jina.ai"

    async def _request(self, url: str) -> Fetched:
        headers = {"Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return await self._http.request("GET", f"{self.base_url}/{url}", headers=headers,
                                        accept_4xx=True)

    def _read(self, url: str, got: Fetched) -> Response:
        raw = self._http.parse_json(got, "GET")
        doc = raw.get("data") if isinstance(raw, Mapping) else None
        doc = doc if isinstance(doc, Mapping) else {}
        warning = str(doc.get("warning") or "")
        m = _TARGET_STATUS.search(warning)
        code = int(m.group(1)) if m else 200
        data = visit_data(
            url=url, final_url=str(doc.get("url") or url), status_code=code,
            content_type="text/markdown", title=str(doc.get("title") or ""),
            text=str(doc.get("content") or ""), raw=raw, extractor="jina",
        )
        return Response(data, status=_status(code))


class SerperScrape(_ProviderVisit):
    """Serper's scraper, the visit tool of the CIR demo; markdown is asked for and preferred."""

    name = "serper"
    key_env = "SERPER_API_KEY"
    base_env = "SERPER_SCRAPE_URL"
    default_base = "https://scrape.serper.dev"

    async def _request(self, url: str) -> Fetched:
        assert self._key is not None
        return await self._http.request(
            "POST", self.base_url + "/", json_body={"url": url, "includeMarkdown": True},
            headers={"X-API-KEY": self._key, "Content-Type": "application/json"},
            accept_4xx=True,
        )

    def _read(self, url: str, got: Fetched) -> Response:
        raw = self._http.parse_json(got)
        raw_map: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        meta = raw_map.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        markdown = raw_map.get("markdown")
        text = markdown if isinstance(markdown, str) and markdown.strip() else raw_map.get("text")
        data = visit_data(
            url=url, final_url=str(meta.get("og:url") or meta.get("url") or url),
            status_code=200, content_type="text/markdown", title=str(meta.get("title") or ""),
            text=str(text or ""), raw=raw, extractor="serper",
        )
        return Response(data, status="ok")
