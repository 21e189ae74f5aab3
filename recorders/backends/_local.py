"""The embedded default backends: BM25 search and visits over a local corpus (no key, no network).

``LocalSearch`` ranks docs with bm25s; its index is built once per corpus and cached on disk,
named by the corpus hash, the bm25s version and the parameters, so a changed corpus or library
gets a new index and an old one is never reused by mistake. ``LocalVisit`` answers a URL with the
doc's full text, and an unknown URL with a 404 *result* (recordable and replayable).
Same corpus, same query: same bytes, whatever the process or hash seed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorders._canonical import SEARCH, VISIT, canonical_json
from recorders._errors import RecordersError

from ._base import PREVIEW_WORDS, Response, preview, search_data, visit_data
from ._corpus import Corpus, Doc, cache_dir, demo_corpus_path

__all__ = ["LocalSearch", "LocalVisit", "clear_memory_caches", "load_corpus", "tokenize"]

CorpusSpec = str | os.PathLike[str] | Corpus | None

# Part of the index name: change any of these and a new index is built.
BM25_PARAMS: dict[str, Any] = {"method": "lucene", "k1": 1.5, "b": 0.75}
TOKENIZER_VERSION = 1
SNIPPET_WORDS = PREVIEW_WORDS

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS: frozenset[str] | None = None
_LOCK = threading.Lock()
_CORPORA: dict[tuple[str, int, int], Corpus] = {}
_INDEXES: dict[str, _Index] = {}


def tokenize(text: str) -> list[str]:
    """Lower-cased words of 2+ characters, English stopwords dropped (no stemmer: no extra
    dependency, and the same tokens on every machine)."""
    global _STOPWORDS
    if _STOPWORDS is None:
        from bm25s.stopwords import STOPWORDS_EN

        _STOPWORDS = frozenset(STOPWORDS_EN)
    stop = _STOPWORDS
    return [t for t in _TOKEN.findall(text.lower()) if t not in stop]


def clear_memory_caches() -> None:
    """Forget the corpora and indexes loaded in this process (the disk cache stays)."""
    with _LOCK:
        _CORPORA.clear()
        _INDEXES.clear()


def load_corpus(corpus: CorpusSpec = None, cache: str | os.PathLike[str] | None = None) -> Corpus:
    """A Corpus, loaded once per process per file version; ``None`` is the demo corpus."""
    if isinstance(corpus, Corpus):
        return corpus
    path = Path(corpus) if corpus is not None else demo_corpus_path(cache)
    try:
        st = path.stat()
    except OSError:
        return Corpus.from_path(path)  # raises the clear "not found" error
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _LOCK:
        hit = _CORPORA.get(key)
        if hit is None:
            hit = _CORPORA[key] = Corpus.from_path(path)
    return hit


@dataclass(slots=True)
class _Index:
    """A loaded bm25s index plus how it was obtained (``built``, ``disk`` or ``memory``)."""

    retriever: Any
    vocab: dict[str, int]
    path: Path
    source: str
    seconds: float


def _index_path(corpus: Corpus, cache: str | os.PathLike[str] | None) -> Path:
    import bm25s

    params = {"bm25": BM25_PARAMS, "tokenizer": TOKENIZER_VERSION}
    tag = hashlib.sha256(canonical_json(params)).hexdigest()[:12]
    name = f"{corpus.sha256[:24]}-bm25s{bm25s.__version__}-{tag}"
    return cache_dir(cache) / "bm25" / name


def _build_index(corpus: Corpus, final: Path) -> None:
    """Index the corpus into a temp dir beside ``final`` and rename it into place."""
    import bm25s

    tokens = [tokenize(d.contents) for d in corpus.docs]
    # Our own sorted vocabulary: bm25s builds one from a set, whose order follows the hash seed.
    vocab = {t: i for i, t in enumerate(sorted({t for doc in tokens for t in doc}))}
    if not vocab:
        raise RecordersError(f"the corpus {corpus.path or '(in memory)'} has no searchable words")
    ids = [[vocab[t] for t in doc] for doc in tokens]
    retriever = bm25s.BM25(**BM25_PARAMS)
    retriever.index((ids, vocab), show_progress=False)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        retriever.save(str(tmp), show_progress=False)
        info = {"corpus_sha256": corpus.sha256, "num_docs": len(corpus),
                "bm25s": bm25s.__version__, "params": BM25_PARAMS,
                "tokenizer": TOKENIZER_VERSION}
        (tmp / "cirkit.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a cache may be shared
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_from_disk(corpus: Corpus, path: Path) -> tuple[Any, dict[str, int]] | None:
    import bm25s

    try:
        info = json.loads((path / "cirkit.json").read_text())
        if info.get("corpus_sha256") != corpus.sha256 or info.get("num_docs") != len(corpus):
            return None
        retriever = bm25s.BM25.load(str(path), show_progress=False, verbosity=0)
    except (OSError, ValueError, KeyError):
        return None
    return retriever, dict(retriever.vocab_dict)


def load_index(corpus: Corpus, cache: str | os.PathLike[str] | None = None) -> _Index:
    """The corpus's BM25 index: from this process, else from disk, else built (under a file
    lock, so concurrent processes build it once and never read half an index)."""
    path = _index_path(corpus, cache)
    with _LOCK:
        hit = _INDEXES.get(str(path))
        if hit is not None:
            return _Index(hit.retriever, hit.vocab, hit.path, "memory", 0.0)
        from filelock import FileLock

        started = time.perf_counter()
        loaded = _load_from_disk(corpus, path) if path.is_dir() else None
        source = "disk"
        if loaded is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(path) + ".lock"):
                loaded = _load_from_disk(corpus, path) if path.is_dir() else None
                if loaded is None:
                    if path.exists():  # stale or damaged: rebuild it
                        shutil.rmtree(path, ignore_errors=True)
                    _build_index(corpus, path)
                    source = "built"
                    loaded = _load_from_disk(corpus, path)
            if loaded is None:
                raise RecordersError(f"the BM25 index at {path} could not be loaded",
                                     hint="delete that directory to rebuild it")
        index = _Index(loaded[0], loaded[1], path, source, time.perf_counter() - started)
        _INDEXES[str(path)] = index
        return index


def _snippet(doc: Doc) -> str:
    return preview(doc.text or doc.title, SNIPPET_WORDS)


def _num_results(args: Mapping[str, Any]) -> int:
    num = args.get("num_results", 5)
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"web_search 'num_results' must be a positive int, got {num!r}")
    return num


class _CorpusBackend:
    """What both local backends share: a corpus file (or the demo corpus), loaded on first use."""

    name = "local"

    def __init__(
        self, *, corpus: CorpusSpec = None, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        if corpus is not None and not isinstance(corpus, Corpus) and not Path(corpus).is_file():
            raise RecordersError(f"corpus file not found: {corpus}",
                                 hint="give a .jsonl, .jsonl.gz or .parquet file, or omit it "
                                      "for the demo Wikipedia corpus")
        self._spec = corpus
        self._cache = cache_dir
        self._corpus: Corpus | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    @property
    def corpus(self) -> Corpus:
        if self._corpus is None:
            self._corpus = load_corpus(self._spec, self._cache)
        return self._corpus


class LocalSearch(_CorpusBackend):
    """BM25 search over a local corpus; ``corpus=None`` is the demo Wikipedia corpus.

    The corpus and index load on first use (a replay never pays for them); call ``prepare()``
    to load them up front. ``index_info`` then says where the index came from and how long it
    took.
    """

    tool = SEARCH

    def __init__(
        self, *, corpus: CorpusSpec = None, cache_dir: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(corpus=corpus, cache_dir=cache_dir)
        self._index: _Index | None = None

    @property
    def index_info(self) -> dict[str, Any]:
        idx = self._ensure_index()
        return {"path": str(idx.path), "source": idx.source, "seconds": idx.seconds}

    def prepare(self) -> LocalSearch:
        self._ensure_index()
        return self

    def _ensure_index(self) -> _Index:
        if self._index is None:
            self._index = load_index(self.corpus, self._cache)
        return self._index

    def search(self, query: str, num_results: int = 5) -> list[tuple[Doc, float]]:
        """The top docs and their scores (rounded to 6 decimals); ties go to the earlier doc.
        A query with no indexed word (empty, all stopwords) finds nothing."""
        import numpy as np

        idx = self._ensure_index()
        ids = [idx.vocab[t] for t in tokenize(query) if t in idx.vocab]
        if not ids:
            return []
        scores = np.asarray(idx.retriever.get_scores(ids), dtype=np.float64)
        cand = np.flatnonzero(scores > 0)
        order = cand[np.lexsort((cand, -scores[cand]))][:num_results]
        docs = self.corpus.docs
        return [(docs[int(i)], round(float(scores[i]), 6)) for i in order]

    async def handle(self, args: Mapping[str, Any]) -> Response:
        if self._index is None:  # the first load reads files: keep the event loop free
            await asyncio.to_thread(self._ensure_index)
        hits = self.search(str(args.get("query", "")), _num_results(args))
        results = [
            {"title": d.title, "url": d.url, "snippet": _snippet(d), "score": s, "position": i}
            for i, (d, s) in enumerate(hits, start=1)
        ]
        raw = {"corpus": self.corpus.sha256, "hits": [[d.id, s] for d, s in hits]}
        return Response(search_data(results, raw=raw))


class LocalVisit(_CorpusBackend):
    """A visit to a corpus URL: the doc's full text; an unknown URL is a 404 result."""

    tool = VISIT


    async def handle(self, args: Mapping[str, Any]) -> Response:
        url = str(args.get("url", "")).strip()
        if self._corpus is None:  # the first load reads a file: keep the event loop free
            await asyncio.to_thread(lambda: self.corpus)
        doc = self.corpus.lookup(url)
        if doc is None:
            return Response(
                visit_data(url=url, final_url=url, status_code=404, content_type="text/plain",
                           title="", text="", extractor="corpus"),
                status="http_404",
            )
        return Response(
            visit_data(url=url, final_url=doc.url, status_code=200, content_type="text/plain",
                       title=doc.title, text=doc.text, extractor="corpus")
        )
