"""A tiny Search-R1-compatible retrieval server over a LocalSearch (stdlib only).

``POST /retrieve {"queries": [...], "topk": 3, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents", "url"}, "score"}, ...], ...]}`` (one list per
query; without ``return_scores``, just the documents), the shape of Search-R1's
``retrieval_server.py`` as ``recorders`` implements it once (``parse_retrieve``,
``retrieve_answer``). It serves the local BM25 corpus live, with no store and no dependency
beyond the standard library, and gives the ``retrieval`` backend's tests a real server on
127.0.0.1; ``cirkit tools serve`` answers the same ``/retrieve`` from a store, whatever search
backend recorded it.

Run it with ``python -m recorders.backends._retrieval_server [--corpus FILE] [--port 8000]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recorders._errors import InvalidCallError
from recorders._retrieve import parse_retrieve, retrieve_answer, retrieve_document

from ._corpus import Corpus
from ._local import LocalSearch

__all__ = ["RetrievalServer", "handle_retrieve", "serve", "start_server"]

MAX_BODY = 1 << 20


def handle_retrieve(search: LocalSearch, body: Any) -> dict[str, Any]:
    """The JSON answer to one ``/retrieve`` request body (InvalidCallError for a bad one):
    the corpus docs' own ``contents``, in the shape ``recorders`` defines once."""
    req = parse_retrieve(body)
    per_query = [[(retrieve_document(id=d.id, url=d.url, contents=d.contents), s)
                  for d, s in search.search(q, req.topk)] for q in req.queries]
    return retrieve_answer(per_query, return_scores=req.return_scores)


class _Handler(BaseHTTPRequestHandler):
    server: RetrievalServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] in ("/", "/health"):
            self._send(200, {"status": "ok", "corpus": self.server.search.corpus.sha256,
                             "num_docs": len(self.server.search.corpus)})
        else:
            self._send(404, {"error": f"no route {self.path}; use POST /retrieve"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/retrieve":
            self._send(404, {"error": f"no route {self.path}; use POST /retrieve"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise ValueError(f"the body must be 1 to {MAX_BODY} bytes of JSON")
            body = json.loads(self.rfile.read(length))
            answer = handle_retrieve(self.server.search, body)
        except InvalidCallError as e:
            self._send(400, {"error": e.message, "hint": e.hint})
            return
        except ValueError as e:
            self._send(400, {"error": str(e)})
            return
        self._send(200, answer)


class RetrievalServer(ThreadingHTTPServer):
    """The server, running in a background thread once ``start()`` is called."""

    daemon_threads = True

    def __init__(self, search: LocalSearch, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.search = search
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> RetrievalServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> RetrievalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_server(
    corpus: str | os.PathLike[str] | Corpus | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RetrievalServer:
    """A server in a background thread (port 0: any free port; see ``.url``); close it after."""
    search = LocalSearch(corpus=corpus, cache_dir=cache_dir).prepare()
    return RetrievalServer(search, host, port).start()


def serve(
    corpus: str | os.PathLike[str] | Corpus | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> None:
    """Serve until interrupted."""
    search = LocalSearch(corpus=corpus, cache_dir=cache_dir).prepare()
    with RetrievalServer(search, host, port) as server:
        print(f"retrieval server on {server.url}/retrieve ({len(search.corpus)} docs)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--corpus", help="JSONL/parquet corpus (default: the demo Wikipedia corpus)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args(argv)
    serve(a.corpus, a.host, a.port)


if __name__ == "__main__":
    main()
