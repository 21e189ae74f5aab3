"""No command ever prints a Python traceback for a user's input.

One table: every verb against the bad inputs a user really gives it (a file that is not UTF-8,
a binary file, a file named .parquet that is not parquet, an output path that cannot be
written, a damaged store or pack, an empty URL, a query that cannot be encoded, a Hub server
answering garbage). Each case runs the real ``cirkit`` command in a subprocess and asserts: a
non-zero exit, one ``error:`` line (or click's own usage error), a ``hint:`` line, no
``Traceback``, and nothing half-written (the paths the command would write are absent or
unchanged).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from recorders import InMemoryBackend, Recorder, Store, make_backend


@dataclass(slots=True)
class Inputs:
    """The bad (and a few good) inputs, made once per module."""

    root: Path
    tokenizer: Path
    good_store: Path
    calls: Path
    questions: Path
    traces: Path
    bad_utf8: Path = field(init=False)
    binary: Path = field(init=False)
    fake_parquet: Path = field(init=False)
    a_file: Path = field(init=False)
    empty: Path = field(init=False)
    odd_lines: Path = field(init=False)
    no_ground_truth: Path = field(init=False)
    lone_surrogate: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bad_utf8 = self.root / "latin1.jsonl"
        self.bad_utf8.write_bytes(b'{"question": "caf\xe9 au lait?", "answer": "caf\xe9"}\n')
        self.binary = self.root / "binary.jsonl"
        self.binary.write_bytes(bytes(range(256)) * 4)
        self.fake_parquet = self.root / "questions.parquet"
        self.fake_parquet.write_text('{"question": "not parquet at all"}\n')
        self.a_file = self.root / "a-file"
        self.a_file.write_text("a regular file, not a directory\n")
        self.empty = self.root / "empty.jsonl"
        self.empty.write_bytes(b"")
        self.odd_lines = self.root / "odd-lines.jsonl"  # JSON, but not one object
        self.odd_lines.write_text('[1, 2]\n"x"\n3\n')
        self.no_ground_truth = self.root / "no-ground-truth.jsonl"
        self.no_ground_truth.write_text('{"question": "Who painted the Night Watch?"}\n')
        self.lone_surrogate = self.root / "lone-surrogate.jsonl"
        self.lone_surrogate.write_text('{"question": "Who\\ud800?", "answer": "x", '
                                       '"text": "<think>\\n</think>\\nx"}\n')

    @property
    def unwritable(self) -> Path:
        """A path nobody can create, even root: its parent is a regular file."""
        return self.a_file / "out"


def _record_store(path: Path) -> None:
    with Store(path) as store:
        rec = Recorder(store, search=make_backend("web_search", "local"),
                       visit=make_backend("web_visit", "local"), mode="record")
        rec.call_sync("web_search", {"query": "who painted the night watch", "num_results": 2})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Inputs:
    root = tmp_path_factory.mktemp("bad-inputs")
    store = root / "good-store"
    _record_store(store)
    calls = root / "calls.jsonl"
    calls.write_text('{"query": "who painted the night watch"}\n')
    questions = root / "questions.jsonl"
    questions.write_text('{"id": "q1", "question": "Who painted the Night Watch?", '
                         '"answer": "Rembrandt"}\n')
    traces = root / "traces.jsonl"
    traces.write_text('{"text": "<think>\\nI know.\\n</think>\\nRembrandt"}\n')
    i = Inputs(root, Path(chat_tokenizer.name), store, calls, questions, traces)
    built = subprocess.run([sys.executable, "-m", "cirkit.cli", "build", "rl", str(questions),
                            "--tokenizer", str(i.tokenizer), "--out", str(root / "rl-good")],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    return i


def _copy_store(src: Path, dest: Path) -> Path:
    if not dest.exists():
        shutil.copytree(src, dest)
    return dest


def corrupt_index(i: Inputs) -> Path:
    """A store whose SQLite index has every page but the first damaged (each page's header
    overwritten: a small index has free pages, whose damage SQLite rightly never sees)."""
    dest = _copy_store(i.good_store, i.root / "corrupt-index")
    db = next(dest.rglob("cache.db"))
    data = bytearray(db.read_bytes())
    for page in range(4096, len(data), 4096):
        data[page:page + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))
    return dest


def corrupt_entry(i: Inputs) -> Path:
    """A store whose one index entry holds text that is not JSON."""
    dest = _copy_store(i.good_store, i.root / "corrupt-entry")
    db = next(dest.rglob("cache.db"))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE Cache SET value = ?", ('{"blob": "not json',))
    return dest


def conflicting_store(i: Inputs) -> Path:
    """A store holding the good store's search with another answer (a merge conflict)."""
    dest = i.root / "conflicting-store"
    if not dest.exists():
        other = InMemoryBackend("web_search", lambda args: {"results": [
            {"title": "Another answer", "url": "https://example.org/x", "snippet": "x"}]})
        with Store(dest) as store:
            Recorder(store, search=other, mode="record").call_sync(
                "web_search", {"query": "who painted the night watch", "num_results": 2})
def lost_index(i: Inputs) -> Path:
    """A store whose index directory was deleted (its blobs kept)."""
    dest = _copy_store(i.good_store, i.root / "lost-index")
    shutil.rmtree(dest / "index", ignore_errors=True)
    return dest


def not_a_store(i: Inputs) -> Path:
    """An existing directory without store.json."""
    dest = i.root / "not-a-store"
    dest.mkdir(exist_ok=True)
    return dest


def swapped_pack(i: Inputs) -> Path:
    """A pack whose one entry names a blob that answers another question (its manifest and
    entries hash recomputed, as an attacker would)."""
    dest = i.root / "swapped.cirpack"
    with Store(i.good_store, readonly=True) as st:
        (key, entry), = st.entries()
        other = b'{"version":2,"tool":"web_search","args":{"query":"other","num_results":2},' \
                b'"backend":"local","status":"ok","refs":[],"data":{"results":[]}}'
    sha = hashlib.sha256(other).hexdigest()
    row = {"key": key, "entry": {**entry.to_json(), "blob": sha}}
    entries = json.dumps(row, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    manifest = json.dumps({"format": "cirkit-pack", "version": 1, "entries": 1,
                           "entries_sha256": hashlib.sha256(entries).hexdigest(),
                           "blobs": [[sha, len(other)]]}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in (("manifest.json", manifest), ("entries.jsonl", entries),
                           (f"objects/{sha[:2]}/{sha[2:]}", other)):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    dest.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return dest


def bad_manifest_pack(i: Inputs) -> Path:
    """A gzip'd tar shaped like a pack whose manifest.json is not JSON."""
    dest = i.root / "bad-manifest.cirpack"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        body = b"{this is not json"
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    dest.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return dest


class _Garbage(BaseHTTPRequestHandler):
    """A 'Hub' that answers every request with 200 and bytes that mean nothing."""

    def _answer(self) -> None:
        body = b"\x00garbage, not JSON\xff"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def garbage_hub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@dataclass(slots=True, frozen=True)
class Case:
    name: str
    argv: Callable[[Inputs], list[str]]
    # paths (relative to the inputs root) the command must not leave behind, half-written
    untouched: tuple[str, ...] = ()
    hub: bool = False


def _demo_out(i: Inputs) -> str:
    return str(i.root / "demo-out")


CASES = [
    # -- files that are not UTF-8, or not text at all
    Case("record latin-1 calls", lambda i: ["record", str(i.bad_utf8), "--store",
                                             str(i.root / "rec1")], ("rec1",)),
    Case("record binary calls", lambda i: ["record", str(i.binary), "--store",
                                            str(i.root / "rec2")], ("rec2",)),
    Case("record latin-1 corpus", lambda i: ["record", str(i.calls), "--store",
                                              str(i.root / "rec3"), "--corpus",
                                              str(i.bad_utf8)], ("rec3",)),
    Case("exec latin-1 block", lambda i: ["exec", str(i.bad_utf8), "--mode", "off"]),
    Case("exec binary block", lambda i: ["exec", str(i.binary), "--mode", "off"]),
    # -- a time limit that is no limit (nan compares False with every bound)
    *(Case(f"exec --timeout {t}", lambda i, t=t: ["exec", str(i.calls), "--mode", "off",
                                                  "--timeout", t])
      for t in ("nan", "inf", "0", "-1")),
    Case("validate latin-1 traces", lambda i: ["validate", str(i.bad_utf8)]),
    Case("validate binary traces", lambda i: ["validate", str(i.binary)]),
    Case("build rl latin-1 questions", lambda i: [
        "build", "rl", str(i.bad_utf8), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl1")], ("rl1",)),
    Case("build rl binary questions", lambda i: [
        "build", "rl", str(i.binary), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl2")], ("rl2",)),
    Case("build rl fake parquet", lambda i: [
        "build", "rl", str(i.fake_parquet), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl3")], ("rl3",)),
    Case("build rl latin-1 --exclude-eval", lambda i: [
        "build", "rl", str(i.questions), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl4"), "--exclude-eval", str(i.bad_utf8)], ("rl4",)),
    Case("build rl unknown --ground-truth-format", lambda i: [
        "build", "rl", str(i.questions), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl5"), "--ground-truth-format", "string"], ("rl5",)),
    Case("build rl unwritable --out", lambda i: [
        "build", "rl", str(i.questions), "--tokenizer", str(i.tokenizer), "--out",
        str(i.unwritable)]),
    Case("build sft latin-1 traces", lambda i: [
        "build", "sft", str(i.bad_utf8), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "sft1")], ("sft1",)),
    Case("build sft fake parquet", lambda i: [
        "build", "sft", str(i.fake_parquet), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "sft2")], ("sft2",)),
    # -- files with no usable row: an error, not a dataset of no rows
    *(Case(f"build {kind} {name}", lambda i, kind=kind, name=name: [
        "build", kind, str(getattr(i, name.replace(" ", "_"))), "--tokenizer",
        str(i.tokenizer), "--out", str(i.root / f"{kind}-{name.replace(' ', '-')}")],
           (f"{kind}-{name.replace(' ', '-')}",))
      for kind in ("sft", "rl") for name in ("empty", "odd lines", "lone surrogate")),
    Case("build rl no ground truth", lambda i: [
        "build", "rl", str(i.no_ground_truth), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "rl-no-gt")], ("rl-no-gt",)),
    Case("build sft questions only", lambda i: [
        "build", "sft", str(i.no_ground_truth), "--tokenizer", str(i.tokenizer), "--out",
        str(i.root / "sft-no-trace")], ("sft-no-trace",)),
    Case("validate lone surrogate", lambda i: ["validate", str(i.lone_surrogate)]),
    Case("validate odd lines", lambda i: ["validate", str(i.odd_lines)]),
    Case("build sft unwritable --out", lambda i: [
        "build", "sft", str(i.traces), "--tokenizer", str(i.tokenizer), "--out",
        str(i.unwritable)]),
    Case("rollout latin-1 questions", lambda i: [
        "rollout", str(i.bad_utf8), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.root / "ro1")], ("ro1",)),
    Case("rollout binary questions", lambda i: [
        "rollout", str(i.binary), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.root / "ro2")], ("ro2",)),
    Case("rollout fake parquet", lambda i: [
        "rollout", str(i.fake_parquet), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.root / "ro3")], ("ro3",)),
    Case("rollout unwritable --out", lambda i: [
        "rollout", str(i.questions), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.unwritable)]),
    Case("rollout prompt longer than --max-model-len", lambda i: [
        "rollout", str(i.questions), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--max-model-len", "8", "--out", str(i.root / "ro5")], ("ro5",)),
    Case("eval latin-1 benchmark", lambda i: [
        "eval", str(i.bad_utf8), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.root / "ev1")], ("ev1",)),
    Case("eval benchmark without answers", lambda i: [
        "eval", str(i.no_ground_truth), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--out", str(i.root / "ev2")], ("ev2",)),
    Case("eval unknown grader", lambda i: [
        "eval", str(i.questions), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--grader", "bleu", "--out", str(i.root / "ev3")], ("ev3",)),
    Case("eval judge template without its fields", lambda i: [
        "eval", str(i.questions), "--model", "m", "--store", str(i.good_store),
        "--tools-mode", "replay", "--llm-mode", "replay", "--grader", "judge",
        "--judge-model", "j", "--judge-mode", "replay", "--judge-template", str(i.calls),
        "--out", str(i.root / "ev4")], ("ev4",)),
    Case("eval --replay of a folder that is no pack", lambda i: [
        "eval", "--replay", str(i.root / "rl-good"), "--out", str(i.root / "ev5")], ("ev5",)),
    Case("eval compare of folders that are no runs", lambda i: [
        "eval", "compare", str(i.root / "rl-good"), str(i.root / "rl-good")]),
    Case("eval pack of a folder that is no run", lambda i: [
        "eval", "pack", str(i.root / "rl-good"), "--store", str(i.good_store), "--out",
        str(i.root / "ev6")], ("ev6",)),
    *(Case(f"rollout --block-timeout {t}", lambda i, t=t: [
        "rollout", str(i.questions), "--model", "m", "--tokenizer", str(i.tokenizer),
        "--store", str(i.good_store), "--tools-mode", "replay", "--llm-mode", "replay",
        "--block-timeout", t, "--out", str(i.root / f"ro-bt{t}")], (f"ro-bt{t}",))
      for t in ("nan", "0")),
    Case("demo latin-1 --questions", lambda i: [
        "demo", "--quick", "--out", _demo_out(i), "--questions", str(i.bad_utf8)],
         ("demo-out",)),
    Case("demo latin-1 --calls", lambda i: [
        "demo", "--quick", "--out", _demo_out(i), "--calls", str(i.bad_utf8)], ("demo-out",)),
    # -- tool calls that cannot be made
    Case("tools visit empty url", lambda i: [
        "tools", "visit", "", "--store", str(i.root / "t1"), "--mode", "auto"], ("t1",)),
    Case("tools search unencodable query", lambda i: [
        "tools", "search", "caf\udce9", "--store", str(i.root / "t2"), "--mode", "auto"],
         ("t2",)),
    Case("tools search latin-1 corpus", lambda i: [
        "tools", "search", "night watch", "--store", str(i.root / "t3"), "--mode", "auto",
        "--corpus", str(i.bad_utf8)], ("t3",)),
    Case("tools search unwritable --store", lambda i: [
        "tools", "search", "night watch", "--store", str(i.unwritable), "--mode", "auto"]),
    # -- damaged stores and packs
    *(Case(f"store {verb} corrupt index", lambda i, verb=verb: [
        "store", verb, str(corrupt_index(i)), *extra(i, verb)])
      for verb in ("info", "ls", "show", "pack", "verify")),
    *(Case(f"store {verb} corrupt entry", lambda i, verb=verb: [
        "store", verb, str(corrupt_entry(i)), *extra(i, verb)])
      for verb in ("info", "ls", "show", "pack")),
    Case("tools search auto on a corrupt index", lambda i: [
        "tools", "search", "who painted the night watch", "-n", "2",
        "--store", str(corrupt_index(i)), "--mode", "auto"]),
    Case("tools search auto on a corrupt entry", lambda i: [
        "tools", "search", "who painted the night watch", "-n", "2",
        "--store", str(corrupt_entry(i)), "--mode", "auto"]),
    Case("store unpack malformed manifest", lambda i: [
        "store", "unpack", str(bad_manifest_pack(i)), str(i.root / "unpacked1")],
         ("unpacked1",)),
    Case("store unpack not a pack", lambda i: [
        "store", "unpack", str(i.binary), str(i.root / "unpacked2")], ("unpacked2",)),
    # -- cirkit tools serve: every bad input fails before the server listens
    Case("tools serve replay without a store", lambda i: ["tools", "serve", "--port", "0"]),
    Case("tools serve not a store", lambda i: [
        "tools", "serve", "--store", str(i.root / "no-store"), "--port", "0"], ("no-store",)),
    Case("tools serve an address of another machine", lambda i: [
        "tools", "serve", "--store", str(i.good_store), "--host", "192.0.2.1", "--port", "0"]),
    Case("tools serve binary tokenizer", lambda i: [
        "tools", "serve", "--store", str(i.good_store), "--tokenizer", str(i.binary),
        "--port", "0"]),
    Case("tools serve on-miss local outside replay", lambda i: [
        "tools", "serve", "--store", str(i.root / "ts1"), "--mode", "auto", "--on-miss", "local",
        "--port", "0"], ("ts1",)),
    Case("tools serve on-miss local latin-1 corpus", lambda i: [
        "tools", "serve", "--store", str(i.good_store), "--on-miss", "local", "--corpus",
        str(i.bad_utf8), "--port", "0"]),
    # -- cirkit store merge: conflicts and bad stores leave no merged store behind
    Case("store merge conflict", lambda i: [
        "store", "merge", str(i.good_store), str(conflicting_store(i)), "--into",
        str(i.root / "merged1")], ("merged1",)),
    Case("store merge corrupt index", lambda i: [
        "store", "merge", str(i.good_store), str(corrupt_index(i)), "--into",
        str(i.root / "merged2")], ("merged2",)),
    Case("store merge not a store", lambda i: [
        "store", "merge", str(i.good_store), str(i.root), "--into", str(i.root / "merged3")],
         ("merged3",)),
    Case("store merge into an existing directory", lambda i: [
        "store", "merge", str(i.good_store), "--into", str(i.root)]),
    Case("store unpack a pack whose entry names another answer", lambda i: [
        "store", "unpack", str(swapped_pack(i)), str(i.root / "unpacked3")], ("unpacked3",)),
    # -- a lost index, and limits on input
    *(Case(f"store {verb} lost index", lambda i, verb=verb: [
        "store", verb, str(lost_index(i)), *extra(i, verb)], ("lost-index/index",))
      for verb in ("info", "ls", "show", "pack", "verify")),
    Case("tools search auto on a lost index", lambda i: [
        "tools", "search", "who painted the night watch", "-n", "2",
        "--store", str(lost_index(i)), "--mode", "auto"], ("lost-index/index",)),
    Case("store reindex not a store", lambda i: ["store", "reindex", str(not_a_store(i))],
         ("not-a-store/index", "not-a-store/store.json")),
    Case("tools search too long a query", lambda i: [
        "tools", "search", "night watch " * 400, "--store", str(i.root / "t4"),
        "--mode", "auto"], ("t4",)),
    Case("tools visit too long a URL", lambda i: [
        "tools", "visit", "https://example.org/" + "a" * 9000, "--store", str(i.root / "t5"),
        "--mode", "auto"], ("t5",)),
    # -- a Hub server answering garbage
    Case("pull from a garbage hub", lambda i: ["pull", "user/data", str(i.root / "pulled")],
         ("pulled",), hub=True),
    Case("push to a garbage hub", lambda i: ["push", str(i.root / "rl-good"), "user/data"],
         hub=True),
]


def extra(i: Inputs, verb: str) -> list[str]:
    """The arguments a store verb needs besides the store."""
    if verb == "pack":
        return [str(i.root / f"{verb}-{len(list(i.root.iterdir()))}.cirpack")]
    if verb == "show":
        return ["0" * 64]
    return []


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_error_and_a_hint(case: Case, inputs: Inputs, garbage_hub: str,
                                              tmp_path: Path) -> None:
    argv = case.argv(inputs)
    before = _snapshot(inputs.good_store)
    env = {**os.environ, "CIRKIT_STORE": "", "PYTHONIOENCODING": "utf-8:surrogateescape"}
    if case.hub:
        env.update(HF_ENDPOINT=garbage_hub, HF_TOKEN="hf_dummy", HF_HUB_DISABLE_XET="1",
                   HF_HOME=str(tmp_path / "hf-home"), HF_HUB_ETAG_TIMEOUT="5",
                   HF_HUB_DOWNLOAD_TIMEOUT="5")
    args = [os.fsencode(a) for a in argv]  # a lone surrogate reaches the command as a raw byte
    r = subprocess.run([sys.executable, "-m", "cirkit.cli", *args], capture_output=True,
                       env=env, cwd=tmp_path, timeout=300, check=False)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    assert "Traceback" not in out, out
    assert r.returncode != 0, out
    lines = out.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    usage = [line for line in lines if line.startswith("Error:")]  # click's own usage errors
    assert len(errors) + len(usage) == 1, out
    assert (errors and any(line.startswith("hint:") for line in lines)) or (
        usage and r.returncode == 2), out
    for name in case.untouched:
        assert not (inputs.root / name).exists(), f"{name} was left behind:\n{out}"
    assert _snapshot(inputs.good_store) == before
    assert not list(inputs.root.glob("*.tmp")) and not list(tmp_path.glob("*.tmp"))


def test_the_table_covers_every_verb() -> None:
    from cirkit.cli import cli

    covered = {c.name.split()[0] for c in CASES}
    assert set(cli.commands) - {"serve"} <= covered  # serve only starts vLLM with its flags
