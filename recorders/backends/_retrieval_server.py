"""A tiny Search-R1-compatible retrieval server over a LocalSearch (stdlib only).

``POST /retrieve {"queries": [...], "topk": 3, "return_scores": true}`` answers
``{"result": [[{"document": {"id", "contents", "url"}, "score"}, ...], ...]}`` (one list per
query; without ``return_scores``, just the documents), the shape of Search-R1's
``retrieval_server.py``. It lets several processes share one local retriever, and gives the
``retrieval`` backend's tests a real server on 127.0.0.1.

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

from ._corpus import Corpus
from ._local import LocalSearch

__all__ = ["RetrievalServer", "handle_retrieve", "serve", "start_server"]

MAX_BODY = 1 << 20
MAX_TOPK = 1000


class _BadRequest(ValueError):
    pass


def handle_retrieve(search: LocalSearch, body: Any) -> dict[str, Any]:
    """The JSON answer to one ``/retrieve`` request body."""
    if not isinstance(body, dict):
        raise _BadRequest("the body must be a JSON object")
    queries = body.get("queries")
    if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise _BadRequest("'queries' must be a list of strings")
    topk = body.get("topk", 3)
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= MAX_TOPK:
        raise _BadRequest(f"'topk' must be an int from 1 to {MAX_TOPK}")
    with_scores = bool(body.get("return_scores", False))
    result: list[list[dict[str, Any]]] = []
    for q in queries:
        hits = search.search(q, topk)
        docs = [({"id": d.id, "contents": d.contents, "url": d.url}, s) for d, s in hits]
        result.append([{"document": d, "score": s} if with_scores else d for d, s in docs])
    return {"result": result}


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
                raise _BadRequest(f"the body must be 1 to {MAX_BODY} bytes of JSON")
            body = json.loads(self.rfile.read(length))
            answer = handle_retrieve(self.server.search, body)
        except (_BadRequest, ValueError) as e:
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
