"""The numbered-row reader: JSONL, CSV, TSV and parquet rows as ``(line, dict)``, streamed.

Every way a file can be unusable is one ``InputError`` naming the file and, where there is one,
the line (a parquet row's number) and what is wrong with it in the user's terms: not UTF-8, not
JSON, not an object, a binary file, a fake parquet, an empty file, a missing file, a directory.
No decoder's own exception (UnicodeDecodeError, JSONDecodeError, ArrowInvalid, OSError) leaves
this module. A row-level problem may go to ``on_bad_row`` instead, so a checker can report every
bad line and go on; a file-level problem always raises.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from cirkit.errors import InputError

__all__ = [
    "FORMATS",
    "Format",
    "OnBadRow",
    "RowBlock",
    "RowError",
    "file_columns",
    "file_format",
    "iter_row_blocks",
    "iter_rows",
    "parse_json_line",
]

Format = Literal["jsonl", "csv", "tsv", "parquet"]
#: File suffix -> format. ``.json`` is read as JSONL, as cirkit always has.
FORMATS: dict[str, Format] = {
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet",
}
#: Called with each row-level problem when a caller wants every bad row, not the first.
OnBadRow = Callable[[InputError], None]
Source = str | os.PathLike[str] | IO[bytes]

_BLOCK_BYTES = 8 << 20
_PARQUET_BATCH = 1024
_HEAD = 1 << 16  # bytes searched for a NUL: text files have none
_BOM = codecs.BOM_UTF8
_NAMES = {"jsonl": "JSONL", "csv": "CSV", "tsv": "TSV", "parquet": "parquet"}
_SUFFIX_HINT = "name it .jsonl, .json, .csv, .tsv or .parquet"
#: A surrogate escape in JSON text: a high one with its low half after it, or either alone.
_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
                        rb"|\\u[dD][c-fC-F][0-9a-fA-F]{2}")


class RowError(InputError):
    """A problem of one row (the rest of the file may be fine): ``code`` names it for
    counting (``not_utf8``, ``not_json``, ``lone_surrogate``, ``not_an_object``, ``bad_row``),
    ``reason`` is the
    message without the file and line."""

    def __init__(self, code: str, reason: str, *, path: str, line: int,
                 hint: str | None = None) -> None:
        super().__init__(reason, path=path, line=line, hint=hint)
        self.code, self.reason = code, reason


@dataclass(slots=True, frozen=True)
class RowBlock:
    """Rows read together, and the input bytes they cover (for a progress bar)."""

    rows: list[tuple[int, dict[str, Any]]]
    nbytes: int


def file_format(path: str | os.PathLike[str], *, fallback: Format | None = None) -> Format:
    """The format a file's suffix names; ``fallback`` for any other suffix, else an error."""
    suffix = Path(path).suffix.lower()
    fmt = FORMATS.get(suffix, fallback)
    if fmt is None:
        raise InputError(f"unknown file type {suffix or '(no suffix)'!r}", path=os.fspath(path),
                         hint=_SUFFIX_HINT)
    return fmt


def file_columns(path: str | os.PathLike[str], *, fmt: Format | None = None) -> list[str]:
    """The columns of a file without reading it through: a parquet schema's names, else the
    keys of the first row (rows before it that cannot be read are skipped); [] when there is
    none. A file that is not what it claims raises ``InputError``."""
    fmt = fmt or file_format(path)
    if fmt == "parquet":
        return _parquet_columns(Path(path), os.fspath(path))
    with contextlib.closing(iter_row_blocks(path, fmt=fmt, block_bytes=_HEAD, allow_empty=True,
                                            on_bad_row=lambda e: None)) as blocks:
        for block in blocks:
            if block.rows:
                return list(block.rows[0][1])
    return []


def iter_rows(source: Source, *, fmt: Format | None = None, on_bad_row: OnBadRow | None = None,
              allow_empty: bool = False, name: str | None = None
              ) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every row of a file as ``(line, dict)``, in file order; see ``iter_row_blocks``."""
    for block in iter_row_blocks(source, fmt=fmt, on_bad_row=on_bad_row,
                                 allow_empty=allow_empty, name=name):
        yield from block.rows


def iter_row_blocks(source: Source, *, fmt: Format | None = None,
                    block_bytes: int = _BLOCK_BYTES, on_bad_row: OnBadRow | None = None,
                    allow_empty: bool = False, name: str | None = None
                    ) -> Generator[RowBlock, None, None]:
    """The rows of a file in blocks of about ``block_bytes`` (bounded memory for any size).

    ``source`` is a path (the format from its suffix unless ``fmt`` says) or a binary stream
    of JSONL (``name`` is how messages call it). ``line`` is the 1-based line a row starts on
    (the header of a CSV is line 1); for parquet, the 1-based row number. Blank lines are
    skipped. Row-level problems raise unless ``on_bad_row`` takes them; an empty file raises
    unless ``allow_empty``.
    """
    if not isinstance(source, str | os.PathLike):
        where = name or "<stdin>"
        if fmt not in (None, "jsonl"):
            raise InputError(f"a stream is read as JSONL, not {_NAMES[fmt]}", path=where,
                             hint="give the file's path")
        yield from _jsonl(source, where, "jsonl", block_bytes, on_bad_row, allow_empty)
        return
    path = Path(source)
    where = name or str(source)
    fmt = fmt or file_format(path)
    if fmt == "parquet":
        yield from _parquet(path, where, allow_empty)
        return
    with _open(path, where) as f:
        try:
            if fmt == "jsonl":
                yield from _jsonl(f, where, fmt, block_bytes, on_bad_row, allow_empty)
            else:
                yield from _csv(f, where, fmt, block_bytes, on_bad_row, allow_empty)
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}", path=where) from None


def _open(path: Path, where: str) -> io.BufferedReader:
    if path.is_dir():
        raise InputError("is a directory, not a file", path=where, hint="give a file")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputError("no such file", path=where) from None
    except OSError as e:
        raise InputError(f"cannot open: {e.strerror or e}", path=where) from None


def _bad(on_bad_row: OnBadRow | None, error: InputError) -> None:
    if on_bad_row is None:
        raise error
    on_bad_row(error)


def _check_head(head: bytes, where: str, fmt: Format) -> None:
    """A text format's first bytes: refuse what is plainly another kind of file."""
    kind = _NAMES[fmt]
    if head.startswith(b"PAR1"):
        raise InputError(f"is a parquet file, not {kind}", path=where, hint="name it .parquet")
    if head.startswith(b"\x1f\x8b"):
        raise InputError(f"is gzip-compressed, not {kind} text", path=where,
                         hint="decompress it first (gunzip)")
    if head.startswith(b"PK\x03\x04"):
        raise InputError(f"is a zip archive, not {kind} text", path=where,
                         hint="extract the file from it")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise InputError(f"is UTF-16 text, not UTF-8 {kind}", path=where,
                         hint="save it as UTF-8")
    nul = head.find(b"\x00", 0, _HEAD)
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise InputError(f"a binary file, not {kind} text (a NUL byte at byte {nul + 1} of "
                         "the file)", path=where, line=line, hint=f"give a {kind} text file")


def _empty(where: str, what: str, allow_empty: bool) -> None:
    if not allow_empty:
        raise InputError(what, path=where, hint="give a file with at least one row")


def _not_utf8(raw: bytes, where: str, line: int) -> RowError | None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return RowError("not_utf8", f"not UTF-8 (byte {e.start + 1})", path=where, line=line,
                        hint="save the file as UTF-8; the byte counts from the line's start")
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return "a number"


def _lone_surrogate(raw: bytes, where: str, line: int) -> RowError | None:
    """A string escape ``\\ud800`` with no other half: JSON allows it, Unicode text cannot
    hold it (it could never be written out as UTF-8), so the row is refused, not mangled."""
    for m in _SURROGATE.finditer(raw):
        slashes = len(raw[:m.start()]) - len(raw[:m.start()].rstrip(b"\\"))
        if slashes % 2 or m.group(1) is not None:
            continue  # an escaped backslash before "u", or a pair (one character)
        col = len(raw[:m.start()].decode("utf-8", "replace")) + 1
        return RowError("lone_surrogate", f"a lone surrogate escape {m.group(0)[:6].decode()} "
                        f"at column {col}: not valid Unicode text", path=where, line=line,
                        hint="write the text as UTF-8 (a \\uXXXX surrogate only in a pair)")
    return None


def parse_json_line(raw: bytes, *, where: str, line: int) -> dict[str, Any] | RowError:
    """One JSONL line as a dict, or the error naming what it is instead. orjson first; the
    standard library for what orjson refuses but Python writes (NaN, huge integers), never a
    lone surrogate escape."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        bad = _not_utf8(raw, where, line) or _lone_surrogate(raw, where, line)
        if bad is not None:
            return bad
        try:
            value = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as e:
            array = raw.lstrip().startswith(b"[") and line == 1
            hint = ("the file looks like one JSON array: write one JSON object per line (JSONL)"
                    if array else "one JSON object per line")
            return RowError("not_json", f"not valid JSON ({e.msg} at column {e.colno})",
                            path=where, line=line, hint=hint)
        except RecursionError:
            return RowError("not_json", "not valid JSON (nested too deeply)", path=where,
                            line=line)
    if not isinstance(value, dict):
        return RowError("not_an_object", f"expected a JSON object, got {_json_kind(value)}",
                        path=where, line=line, hint="one JSON object per line")
    return value


def _jsonl(f: IO[bytes], where: str, fmt: Format, block_bytes: int,
           on_bad_row: OnBadRow | None, allow_empty: bool) -> Iterator[RowBlock]:
    """Blocks of whole lines; a last line without a newline is kept."""
    block_bytes = max(1, block_bytes)
    state = _Lines(where, on_bad_row)
    rest = b""
    head = f.read(max(block_bytes, _HEAD))
    if not head:
        _empty(where, "empty file", allow_empty)
        return
    _check_head(head, where, fmt)
    buf = head.removeprefix(_BOM)
    while buf:
        data = rest + buf
        cut = data.rfind(b"\n") + 1
        rest = data[cut:]
        if cut:
            yield RowBlock(state.parse(data[:cut - 1]), cut)
        buf = f.read(block_bytes)
    if rest:
        yield RowBlock(state.parse(rest), len(rest))
    if state.nonblank == 0:
        _empty(where, "no rows (only blank lines)", allow_empty)


class _Lines:
    """Line numbering and parsing across the blocks of one JSONL file."""

    __slots__ = ("line", "nonblank", "on_bad_row", "where")

    def __init__(self, where: str, on_bad_row: OnBadRow | None) -> None:
        self.where, self.on_bad_row = where, on_bad_row
        self.line = self.nonblank = 0

    def parse(self, block: bytes) -> list[tuple[int, dict[str, Any]]]:
        """The rows of ``block``: whole lines joined by newlines, the last one's cut off."""
        rows: list[tuple[int, dict[str, Any]]] = []
        for raw in block.split(b"\n"):
            self.line += 1
            if not raw.strip():
                continue
            self.nonblank += 1
            got = parse_json_line(raw, where=self.where, line=self.line)
            if isinstance(got, InputError):
                _bad(self.on_bad_row, got)
            else:
                rows.append((self.line, got))
        return rows


class _Decoded:
    """Physical lines as text (line endings kept, as ``csv`` wants them), strictly UTF-8,
    counting the bytes handed out (for progress)."""

    __slots__ = ("f", "line", "nbytes", "where")

    def __init__(self, f: io.BufferedReader, where: str) -> None:
        self.f, self.where = f, where
        self.line = self.nbytes = 0

    def __iter__(self) -> _Decoded:
        return self

    def __next__(self) -> str:
        raw = self.f.readline()
        if not raw:
            raise StopIteration
        self.line += 1
        self.nbytes += len(raw)
        if self.line == 1:
            raw = raw.removeprefix(_BOM)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            bad = _not_utf8(raw, self.where, self.line)
            assert bad is not None
            raise bad from None


def _csv(f: io.BufferedReader, where: str, fmt: Format, block_bytes: int,
         on_bad_row: OnBadRow | None, allow_empty: bool) -> Iterator[RowBlock]:
    """CSV/TSV with a header row. A record starts on the line after the previous one ended
    (quoted fields may span lines). A UTF-8 error stops the file: records cannot be resynced."""
    head = f.peek(_HEAD)[:_HEAD]
    if not head:
        _empty(where, "empty file", allow_empty)
        return
    _check_head(head, where, fmt)
    counted = _Decoded(f, where)
    reader = csv.reader(counted, delimiter="\t" if fmt == "tsv" else ",")
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, Any]]] = []
    start_bytes = 0
    seen = 0
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as e:
            raise InputError(f"not valid {_NAMES[fmt]} ({e})", path=where,
                             line=reader.line_num) from None
        if record is None:
            break
        if not record:
            continue
        if header is None:
            header = _header(record, where)
            continue
        seen += 1
        if len(record) != len(header):
            _bad(on_bad_row, RowError(
                "bad_row", f"{len(record)} fields, the header has {len(header)}", path=where,
                line=start, hint="quote fields that hold the delimiter or a line break"))
            continue
        rows.append((start, dict(zip(header, record, strict=True))))
        if counted.nbytes - start_bytes >= block_bytes:
            yield RowBlock(rows, counted.nbytes - start_bytes)
            rows, start_bytes = [], counted.nbytes
    if rows:
        yield RowBlock(rows, counted.nbytes - start_bytes)
    if header is None:
        _empty(where, "no rows (only blank lines)", allow_empty)
    elif seen == 0:
        _empty(where, "no rows (only a header)", allow_empty)


def _header(record: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    for name in record:
        if name in seen:
            raise InputError(f"the header names column {name!r} twice", path=where, line=1,
                             field=name, hint="give every column its own name")
        seen.add(name)
    return record


def _parquet_size(path: Path, where: str) -> int:
    """The file's size once its parquet magic bytes are checked (0: an empty file)."""
    with _open(path, where) as f:
        try:
            head = f.read(4)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 4))
            tail = f.read(4)
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}", path=where) from None
    if size and (head != b"PAR1" or tail != b"PAR1"):
        raise InputError("not a parquet file" + _looks_like(path), path=where,
                         hint="give a parquet file, or name the file for what it holds")
    return size


def _unreadable_parquet(e: Exception, where: str) -> InputError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return InputError(f"not a readable parquet file ({first})", path=where,
                      hint="rewrite it with pyarrow, polars or pandas")


def _parquet_columns(path: Path, where: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not _parquet_size(path, where):
        return []
    try:
        return list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as e:
        raise _unreadable_parquet(e, where) from None


def _parquet(path: Path, where: str, allow_empty: bool) -> Iterator[RowBlock]:
    """Parquet in record batches; ``line`` is the 1-based row number."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = _parquet_size(path, where)
    if size == 0:
        _empty(where, "empty file", allow_empty)
        return
    try:
        pf = pq.ParquetFile(path)
        total = pf.metadata.num_rows
        if total == 0:
            _empty(where, "no rows", allow_empty)
            return
        n = 0
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
            rows = batch.to_pylist()
            yield RowBlock([(n + i + 1, r) for i, r in enumerate(rows)],
                           size * len(rows) // total)
            n += len(rows)
    except (pa.ArrowException, OSError) as e:
        raise _unreadable_parquet(e, where) from None


def _looks_like(path: Path) -> str:
    """What a fake parquet file seems to be, for the message."""
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return ""
    text = head.lstrip(_BOM).lstrip()
    if text.startswith(b"{"):
        return ": it looks like JSONL (name it .jsonl)"
    if head.startswith(b"\x1f\x8b"):
        return ": it is gzip-compressed"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # not merely a character cut by the read
                return ""
        return ": it looks like text (CSV? name it .csv)"
    return ""
