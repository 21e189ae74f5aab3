"""A small website on 127.0.0.1 for the ``web_visit`` backends: the pages real sites serve,
and the ways real sites misbehave (wrong charset hints, cookies, redirects, 404s, slowness,
huge bodies).

Fixture ``site`` (session scope) yields a ``Site``; ``site.url("/article")`` is a page's URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ._loopback import QuietHandler, serve

__all__ = [
    "ARTICLE_MAIN",
    "ARTICLE_TITLE",
    "BIG_SIZE",
    "BOILERPLATE",
    "COOKIE_SECRET",
    "LATIN1_TEXT",
    "LIGATURE_PDF_BYTES",
    "LIGATURE_PDF_TEXT",
    "LIGATURE_PDF_TITLE",
    "LONG_TITLE",
    "PDF_BYTES",
    "PDF_TEXT",
    "PLAIN_TEXT",
    "Site",
    "site",
]

COOKIE_SECRET = "SECRETCOOKIE123"
ARTICLE_TITLE = "Tidal Locking of the Moon"
ARTICLE_MAIN = (
    "The Moon is tidally locked to the Earth, so the same hemisphere always faces us. "
    "Tidal forces slowed the Moon's rotation over millions of years until its rotation period "
    "matched its orbital period of about 27.3 days. Astronomers call this synchronous rotation, "
    "and it is common among the large moons of the outer planets as well."
)
BOILERPLATE = ("NAVMENU-BOILERPLATE", "FOOTER-BOILERPLATE-COPYRIGHT")
LATIN1_TEXT = "Crème brûlée à Genève: une façade naïve, déjà vue près du lac Léman."
PDF_TEXT = "CIRKIT PDF known text 42"
PLAIN_TEXT = "plain text line one\nplain text line two\n"
BIG_SIZE = 10 * 1024 * 1024

_ARTICLE = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{ARTICLE_TITLE}</title></head>
<body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/about">About {BOILERPLATE[0]}</a></li>
<li><a href="/contact">Contact</a></li></ul></nav>
<main><article>
<h1>{ARTICLE_TITLE}</h1>
<p>{ARTICLE_MAIN}</p>
<p>Further reading covers libration, which lets observers see slightly more than half of the
lunar surface over time, and the slow recession of the Moon by a few centimetres a year.</p>
</article></main>
<footer><p>{BOILERPLATE[1]} 2024 Example Astronomy Society. All rights reserved.</p>
<a href="/privacy">Privacy</a> <a href="/terms">Terms</a></footer>
</body></html>
""".encode()

_LATIN1 = f"""<html><head><meta charset="iso-8859-1"><title>Caf\u00e9 page</title></head>
<body><article><h1>Caf\u00e9 page</h1><p>{LATIN1_TEXT} {LATIN1_TEXT}</p>
<p>Les p\u00e2tisseries de Gen\u00e8ve sont c\u00e9l\u00e8bres depuis longtemps, et la cr\u00e8me
br\u00fbl\u00e9e y est servie dans presque chaque caf\u00e9 du centre-ville.</p></article>
</body></html>""".encode("iso-8859-1")

_COOKIE_PAGE = f"""<html><head><title>Members</title></head><body><article>
<h1>Members area</h1><p>{ARTICLE_MAIN}</p></article></body></html>""".encode()

_NOT_FOUND = b"""<html><head><title>Not Found</title></head><body>
<h1>404 Not Found</h1><p>The page you asked for does not exist on this server.</p>
</body></html>"""

_BROKEN = b"<html><body><h1>500</h1><p>Internal failure of the example site.</p></body></html>"


def _pdf(content: bytes, font: bytes, title: bytes, extra: list[bytes] | None = None) -> bytes:
    """A minimal one-page PDF: objects 1-6 (catalog, pages, page, content, font F1, info) and
    ``extra`` from 7 on, with a correct xref table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        font,
        b"<< /Title " + title + b" >>",
        *(extra or []),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def _make_pdf(text: str) -> bytes:
    """A one-page PDF (Helvetica text object)."""
    return _pdf(f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1"),
                b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
                b"(CIRKIT test document)")


# A typeset PDF (TeX, Word) draws "fi", "ff" as one ligature glyph, which its font's ToUnicode
# CMap maps to U+FB01, U+FB00: text extraction gives those code points. Codes 1 and 2 of this
# font are the ligature glyphs; the lines start with tabs, as pypdf gives indented lines.
_LIGATURE_CMAP = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CMapName /Ligatures def
/CMapType 2 def
1 begincodespacerange
<00> <FF>
endcodespacerange
2 beginbfchar
<01> <FB01>
<02> <FB00>
endbfchar
endcmap
CMapName currentdict /CMapResource defineresource pop
end
end"""
LIGATURE_PDF_BYTES = _pdf(
    b"BT /F1 12 Tf 72 720 Td (\\tThe \\001rst e\\002ort) Tj "
    b"0 -14 Td (\\t\\tan o\\002ice   of \\001nance) Tj ET",
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Times-Roman /Encoding /WinAnsiEncoding "
    b"/ToUnicode 7 0 R >>",
    # The title as the Info dictionary holds Unicode: UTF-16BE with its byte order mark.
    b"<" + ("\ufeffE\ufb00ective \ufb01les").encode("utf-16-be").hex().upper().encode() + b">",
    [b"<< /Length %d >>\nstream\n" % len(_LIGATURE_CMAP) + _LIGATURE_CMAP + b"\nendstream"])
#: What the model should read: ligatures spelled out, lines trimmed as the HTML path trims them.
LIGATURE_PDF_TEXT = "The first effort\nan office of finance"
LIGATURE_PDF_TITLE = "Effective files"


PDF_BYTES = _make_pdf(PDF_TEXT)


LONG_TITLE = "Lunar calendar - Example Encyclopedia"
# A long article whose <title> differs from its <h1> (a site name appended), as on most real
# sites: the extractor's text opens with the h1, so the renderer puts the title line first.
_LONG = ("<!doctype html><html><head><meta charset=\"utf-8\">"
         f"<title>{LONG_TITLE}</title></head><body><article><h1>Lunar calendar</h1>\n"
         + "".join("<p>" + " ".join(f"w{j}x{i}" for i in range(100)) + ".</p>\n"
                   for j in range(60))
         + "</article></body></html>").encode()


def _big_page() -> bytes:
    para = b"<p>" + b"filler words for a very large page " * 30 + b"</p>\n"
    head = b"<html><head><title>Big page</title></head><body><article>\n"
    body = para * (BIG_SIZE // len(para) + 1)
    return (head + body)[:BIG_SIZE]


@dataclass
class Site:
    base: str
    hits: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    big: bytes = b""

    def url(self, path: str) -> str:
        return self.base + (path if path.startswith("/") else "/" + path)

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)


class _SiteHandler(QuietHandler):
    def do_GET(self) -> None:
        site: Site = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        with site.lock:
            site.hits[path] = site.hits.get(path, 0) + 1
        html = "text/html; charset=utf-8"
        if path == "/article":
            self.send_bytes(200, _ARTICLE, html, {"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"})
        elif path == "/latin1":
            self.send_bytes(200, _LATIN1, "text/html")  # charset only in <meta>
        elif path == "/cookie":
            self.send_bytes(200, _COOKIE_PAGE, html,
                            {"Set-Cookie": f"session={COOKIE_SECRET}; Path=/; HttpOnly"})
        elif path == "/doc.pdf":
            self.send_bytes(200, PDF_BYTES, "application/pdf")
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/article")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/slow":
            time.sleep(3)
            self.send_bytes(200, b"<html><body><p>finally</p></body></html>", html)
        elif path == "/ligatures.pdf":
            self.send_bytes(200, LIGATURE_PDF_BYTES, "application/pdf")
        elif path == "/long":
            self.send_bytes(200, _LONG, html)
        elif path == "/big":
            self.send_bytes(200, site.big, html)
        elif path == "/plain.txt":
            self.send_bytes(200, PLAIN_TEXT.encode(), "text/plain; charset=utf-8")
        elif path == "/echo":  # a page that shows the address it was asked for, query and all
            page = (f"<html><head><title>Echo {self.path}</title></head><body><article>"
                    f"<h1>Echo</h1><p>You asked for {self.path} on this server, and this "
                    f"paragraph repeats it: {self.path}.</p></article></body></html>")
            self.send_bytes(200, page.encode(), html)
        elif path == "/broken":
            self.send_bytes(500, _BROKEN, html)
        else:
            self.send_bytes(404, _NOT_FOUND, html)


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    """The test website, shared by the session."""
    state = Site(base="", big=_big_page())
    with serve(_SiteHandler, state) as base:
        state.base = base
        yield state
