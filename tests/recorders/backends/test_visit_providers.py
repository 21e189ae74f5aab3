"""The live web_visit backends against a real website and provider APIs on 127.0.0.1, and the
store-wide secret check across every live backend."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorders import Backend, BackendError, MissingCredentialError, Recorder, Store, make_backend
from recorders.backends import (
    DEFAULT_MAX_BYTES,
    BraveSearch,
    DirectFetch,
    JinaReader,
    RetrievalSearch,
    SearxngSearch,
    SerperScrape,
    SerperSearch,
    TavilySearch,
    decode_body,
)
from tests.servers.providers import API_KEY, PROVIDER_COOKIE, Providers
from tests.servers.site import (
    ARTICLE_MAIN,
    ARTICLE_TITLE,
    BOILERPLATE,
    COOKIE_SECRET,
    LATIN1_TEXT,
    LIGATURE_PDF_BYTES,
    LIGATURE_PDF_TEXT,
    LIGATURE_PDF_TITLE,
    LONG_TITLE,
    PDF_BYTES,
    PDF_TEXT,
    PLAIN_TEXT,
    Site,
)

FAST: dict[str, Any] = {"timeout": 5.0, "retries": 2, "backoff": 0.01}
SITE: dict[str, Any] = {**FAST, "allow_private": True}  # the test site is on 127.0.0.1


@pytest.fixture(autouse=True)
def _fresh(providers: Providers) -> Iterator[None]:
    providers.reset()
    yield
    providers.reset()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def recorder(store: Store, backend: Any, mode: str = "auto") -> Recorder:
    return Recorder(store, visit=backend, mode=mode)


# -- DirectFetch -------------------------------------------------------------------------------
async def test_article_main_text_without_boilerplate(site: Site, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/article"))
    data = result.data
    assert result.status == "ok" and result.backend == "fetch"
    assert data["extractor"] == "trafilatura" and data["content_type"] == "text/html"
    assert data["title"] == ARTICLE_TITLE
    assert ARTICLE_MAIN in " ".join(data["text"].split())
    for junk in BOILERPLATE:
        assert junk not in data["text"] and junk not in result.text
    assert ARTICLE_MAIN in " ".join(result.text.split())
    assert data["raw"]["headers"]["last-modified"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    # The page's bytes are kept beside the answer, named by their sha256.
    raw = store.blobs.get(data["raw_blob"])
    assert data["raw_blob"] == hashlib.sha256(raw).hexdigest()
    assert b"<nav>" in raw and data["truncated"] is False


async def test_meta_charset_decoded(site: Site, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/latin1"))
    assert LATIN1_TEXT in result.data["text"]
    assert "Crème brûlée à Genève" in result.text
    assert "\ufffd" not in result.data["text"]


async def test_the_5000_word_cap_counts_the_title_line(site: Site, tmp_path: Path) -> None:
    """A 6000-word page whose title is put before its text: the model sees 5000 words in all
    (renderer version 1, which old stores replay under, capped the text and added the title)."""
    new = await recorder(Store(tmp_path / "new"), DirectFetch(**SITE)).web_visit(
        site.url("/long"))
    assert len(new.data["text"].split()) > 6000
    assert new.text.startswith(LONG_TITLE + "\n# Lunar calendar\n")
    assert len(new.text.split()) == 5000
    old = await recorder(Store(tmp_path / "old", renderer=1), DirectFetch(**SITE)).web_visit(
        site.url("/long"))
    assert len(old.text.split()) == 5000 + len(LONG_TITLE.split())


async def test_pdf_ligatures_are_spelled_out_and_lines_trimmed(site: Site, store: Store) -> None:
    """A typeset PDF's ligature glyphs (ToUnicode U+FB01, U+FB00) and pypdf's leading tabs:
    the model reads plain letters and trimmed lines, as from an HTML page; the raw bytes keep
    the original."""
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/ligatures.pdf"))
    data = result.data
    assert data["extractor"] == "pypdf"
    assert data["text"] == LIGATURE_PDF_TEXT and data["title"] == LIGATURE_PDF_TITLE
    assert result.text == f"{LIGATURE_PDF_TITLE}\n{LIGATURE_PDF_TEXT}"
    assert not any(0xFB00 <= ord(c) <= 0xFB06 or c == "\t" for c in result.text)
    assert store.blobs.get(data["raw_blob"]) == LIGATURE_PDF_BYTES


async def test_pdf_text(site: Site, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/doc.pdf"))
    data = result.data
    assert data["extractor"] == "pypdf" and data["content_type"] == "application/pdf"
    assert PDF_TEXT in data["text"] and data["title"] == "CIRKIT test document"
    assert store.blobs.get(data["raw_blob"]) == PDF_BYTES


async def test_plain_text_as_is(site: Site) -> None:
    resp = await DirectFetch(**SITE).handle({"url": site.url("/plain.txt")})
    assert resp.data["text"] == PLAIN_TEXT and resp.data["extractor"] == "text"


async def test_redirect_followed(site: Site, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/redirect"))
    assert result.data["url"] == site.url("/redirect")
    assert result.data["final_url"] == site.url("/article")
    assert ARTICLE_MAIN in " ".join(result.data["text"].split())


async def test_404_is_a_result_and_replays(site: Site, store: Store) -> None:
    url = site.url("/missing-page")
    before = site.count("/missing-page")
    live = await recorder(store, DirectFetch(**SITE)).web_visit(url)
    assert live.status == "http_404" and live.data["status_code"] == 404
    assert live.text.startswith("Failed to visit the page: HTTP 404")
    assert site.count("/missing-page") == before + 1  # a 404 is not retried
    replayed = await Recorder(store, mode="replay").web_visit(url)
    assert replayed.from_store and replayed.status == "http_404"
    assert replayed.text == live.text
    assert site.count("/missing-page") == before + 1


async def test_site_500_is_a_result_after_retries(site: Site, store: Store) -> None:
    before = site.count("/broken")
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/broken"))
    assert result.status == "http_500" and result.data["status_code"] == 500
    assert site.count("/broken") == before + 3
    assert len(store) == 1


async def test_slow_page_times_out_and_records_nothing(site: Site, store: Store) -> None:
    backend = DirectFetch(timeout=0.5, retries=1, backoff=0.01, allow_private=True)
    started = time.perf_counter()
    with pytest.raises(BackendError) as err:
        await recorder(store, backend).web_visit(site.url("/slow"))
    assert time.perf_counter() - started < 2.5
    msg = err.value.message
    assert msg.startswith("fetch: GET ") and site.url("/slow") in msg
    assert "timed out after 0.5 s" in msg and "2 attempts" in msg
    assert len(store) == 0 and list(store.blobs.names()) == []


async def test_big_page_is_capped(site: Site, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(site.url("/big"))
    assert result.data["truncated"] is True
    assert len(store.blobs.get(result.data["raw_blob"])) == DEFAULT_MAX_BYTES
    assert "filler words" in result.text
    small = await DirectFetch(max_bytes=1000, **SITE).handle({"url": site.url("/big")})
    assert small.data["truncated"] is True and len(small.extra_blobs[0]) == 1000


async def test_cookies_and_other_headers_are_not_kept(site: Site) -> None:
    resp = await DirectFetch(**SITE).handle({"url": site.url("/cookie")})
    assert set(resp.data["raw"]["headers"]) <= {"content-type", "content-length",
                                                 "last-modified"}
    assert COOKIE_SECRET not in str(resp.data)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x", "http://"])
async def test_unsupported_urls_are_refused_without_a_request(url: str, store: Store) -> None:
    result = await recorder(store, DirectFetch(**SITE)).web_visit(url)
    assert result.status == "invalid_url"
    assert result.text.startswith("Failed to visit the page: ")


async def test_unreachable_site_raises(store: Store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendError) as err:
        await recorder(store, DirectFetch(**SITE)).web_visit(f"http://127.0.0.1:{port}/x")
    assert "3 attempts" in err.value.message and "ConnectError" in err.value.message
    assert len(store) == 0


# -- Jina Reader and Serper scrape -------------------------------------------------------------
async def test_jina_reader(providers: Providers, store: Store) -> None:
    backend = JinaReader(api_key=API_KEY, base_url=providers.jina, **FAST)
    assert backend.secrets == (API_KEY,)
    target = "https://example.org/moon"
    result = await recorder(store, backend).web_visit(target)
    assert result.status == "ok" and result.data["extractor"] == "jina"
    assert result.data["title"] == f"Reader {target}"
    assert result.data["final_url"] == target
    assert f"Reader text of {target}\nSee the docs.\nLast line." in result.text
    assert "![" not in result.text and "](" not in result.text  # images out, links to text


async def test_jina_without_key_and_target_404(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.setenv("JINA_BASE_URL", providers.jina)
    backend = JinaReader(**FAST)
    assert backend.secrets == ()
    resp = await backend.handle({"url": "https://example.org/missing"})
    assert resp.status == "http_404" and resp.data["status_code"] == 404


async def test_jina_wrong_key(providers: Providers) -> None:
    backend = JinaReader(api_key="jina-wrong-key-000", base_url=providers.jina, **FAST)
    with pytest.raises(BackendError) as err:
        await backend.handle({"url": "https://example.org/a"})
    assert err.value.hint is not None and "JINA_API_KEY" in err.value.hint
    assert "jina-wrong-key-000" not in str(err.value) and providers.requests == 1


async def test_serper_scrape(providers: Providers, store: Store) -> None:
    backend = SerperScrape(api_key=API_KEY, base_url=providers.serper_scrape, **FAST)
    target = "https://example.org/page"
    result = await recorder(store, backend).web_visit(target)
    assert result.data["title"] == f"Scraped {target}"
    assert result.data["text"].startswith(f"# Scraped {target}")  # markdown preferred
    assert result.text.endswith(f"# Scraped {target}\nIt has a linked body.")
    failed = await recorder(store, backend).web_visit("https://example.org/missing")
    assert failed.status == "http_400"
    assert failed.text == "Failed to visit the page: Failed to scrape the URL"


async def test_serper_scrape_retries(providers: Providers) -> None:
    backend = SerperScrape(api_key=API_KEY, base_url=providers.serper_scrape, **FAST)
    providers.fail_next(2, 429, retry_after="0")
    resp = await backend.handle({"url": "https://example.org/page"})
    assert resp.status == "ok" and providers.requests == 3
    providers.fail_next(5, 502)
    with pytest.raises(BackendError, match="HTTP 502"):
        await backend.handle({"url": "https://example.org/page"})


def test_serper_scrape_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPER_API_KEY", raising=False)
    with pytest.raises(MissingCredentialError) as err:
        SerperScrape()
    assert err.value.env_var == "SERPER_API_KEY"


async def test_registry_builds_visit_backends(providers: Providers, site: Site) -> None:
    backend = make_backend("web_visit", "fetch", timeout=5.0, allow_private=True)
    assert isinstance(backend, DirectFetch) and backend.tool == "web_visit"
    resp = await backend.handle({"url": site.url("/plain.txt")})
    assert resp.data["text"] == PLAIN_TEXT


# -- secrets never reach the store -------------------------------------------------------------
async def test_no_secret_reaches_the_store(
    site: Site, providers: Providers, tmp_path: Path
) -> None:
    p = providers
    searches: list[Backend] = [
        SerperSearch(api_key=API_KEY, base_url=p.serper, **FAST),
        TavilySearch(api_key=API_KEY, base_url=p.tavily, **FAST),
        BraveSearch(api_key=API_KEY, base_url=p.brave, **FAST),
        SearxngSearch(base_url=p.searxng, **FAST),
        RetrievalSearch(base_url=p.retrieval, **FAST),
    ]
    visits: list[Backend] = [
        DirectFetch(**SITE),
        JinaReader(api_key=API_KEY, base_url=p.jina, **FAST),
        SerperScrape(api_key=API_KEY, base_url=p.serper_scrape, **FAST),
    ]
    store = Store(tmp_path / "store")
    for i, backend in enumerate(searches):
        rec = Recorder(store, search=backend, mode="record")
        await rec.web_search(f"secret check {i}", 5)
    pages = ["/cookie", "/article", "/missing", "/doc.pdf"]
    for i, visit in enumerate(visits):
        rec = Recorder(store, visit=visit, mode="record")
        for page in pages:
            await rec.web_visit(site.url(page) + f"?v={i}")
    # + the retrieval search's 4 documents without a URL, recorded as visits of corpus:// URLs
    assert len(store) == len(searches) + 4 + len(visits) * len(pages)

    def leaks() -> list[str]:
        found = []
        for f in sorted((tmp_path / "store").rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                for secret in (API_KEY, COOKIE_SECRET, PROVIDER_COOKIE):
                    if secret.encode() in data:
                        found.append(f"{secret} in {f.relative_to(tmp_path)}")
        return found

    assert leaks() == []  # with the index open (SQLite WAL files included)
    store.close()
    assert leaks() == []
    files = [f.name for f in (tmp_path / "store").rglob("*") if f.is_file()]
    assert any(n.endswith(".db") for n in files)  # the index's SQLite file was searched


# -- decoding ----------------------------------------------------------------------------------
def test_charset_precedence() -> None:
    # b"\xc3\xa9" is "é" in UTF-8 but "Ã©" in Latin-1: the page's own declaration must win.
    page = b'<html><head><meta charset="iso-8859-1"></head><body>\xc3\xa9</body></html>'
    assert "Ã©" in decode_body(page, None, "text/html")
    assert "é" in decode_body(page, "utf-8", "text/html")  # the header beats the meta tag
    assert decode_body(b"caf\xc3\xa9", None, "text/plain") == "café"
    french = "Le café est très apprécié à Genève, où les pâtisseries sont célèbres. " * 5
    assert decode_body(french.encode("cp1252"), None, "text/plain") == french  # guessed
    assert decode_body(b"caf\xc3", None, "text/plain") == "caf"  # a character cut by the cap
    assert decode_body(b"ok", "no-such-codec", "text/plain") == "ok"


async def test_private_addresses_are_refused_by_default(site: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Model-written code picks the URLs: loopback and private hosts are off limits unless
    allowed."""
    monkeypatch.delenv("CIRKIT_ALLOW_PRIVATE_URLS", raising=False)
    for url in (site.url("/article"), "http://169.254.169.254/latest/meta-data/"):
        resp = await DirectFetch(**FAST).handle({"url": url})
        assert resp.status == "blocked_url"
        assert "non-public address" in resp.data["error"]


async def test_a_refusal_by_cirkits_own_policy_is_not_an_answer(
        site: Site, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback URL refused while CIRKIT_ALLOW_PRIVATE_URLS is unset is recorded (strict
    replay shows the refusal again), but auto mode asks again: once the variable is set, the
    real page replaces it."""
    monkeypatch.delenv("CIRKIT_ALLOW_PRIVATE_URLS", raising=False)
    url, hits = site.url("/article"), site.count("/article")
    refused = await recorder(store, DirectFetch(**FAST)).web_visit(url)
    assert refused.status == "blocked_url" and "CIRKIT_ALLOW_PRIVATE_URLS=1" in refused.text
    assert site.count("/article") == hits and len(store) == 1
    entry = store.get_entry(refused.key)
    # Asked again while still refused: the same refusal, the store untouched.
    again = await recorder(store, DirectFetch(**FAST)).web_visit(url)
    assert again.text == refused.text and store.get_entry(refused.key) == entry
    replayed = await recorder(store, None, mode="replay").web_visit(url)
    assert replayed.from_store and replayed.text == refused.text

    monkeypatch.setenv("CIRKIT_ALLOW_PRIVATE_URLS", "1")
    page = await recorder(store, DirectFetch(**FAST)).web_visit(url)
    assert page.status == "ok" and ARTICLE_MAIN in page.text
    assert site.count("/article") == hits + 1
    replayed = await recorder(store, None, mode="replay").web_visit(url)
    assert replayed.from_store and replayed.text == page.text and len(store) == 1
    # An answer is an answer: auto mode serves it from the store from now on.
    assert (await recorder(store, DirectFetch(**FAST)).web_visit(url)).from_store
    assert site.count("/article") == hits + 1
