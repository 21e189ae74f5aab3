"""Reading trajectories in bounded chunks and writing deterministic parquet shards.

Trajectories are streamed in blocks of whole lines (or parquet batches), so memory stays bounded
whatever the number of trajectories. Output shards follow the layout ``datasets.push_to_hub``
writes, ``data/{split}-{i:05d}-of-{n:05d}.parquet``; the shard count is known only at the end,
so shards are written under temporary names and renamed. Row groups have a fixed number of
rows, so the bytes depend on the rows only, never on how the input happened to be chunked.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cirkit.errors import InputError
from cirkit.inputs import RowError, file_columns, parse_json_line
from cirkit.trajectory import RolloutDir, polars_schema

__all__ = [
    "TRAJECTORY_SCHEMA",
    "Frame",
    "InputFile",
    "ShardWriter",
    "check_not_empty",
    "discover_inputs",
    "fingerprint",
    "iter_frames",
    "prefetch",
    "sha256_file",
]

InputKind = Literal["trajectories", "text"]
T = TypeVar("T")

#: The trajectory fields a builder reads (the rest of a record is never parsed), typed by
#: the record's own field table. Fields whose JSON type varies (ground truth, judge verdicts)
#: are read as text: polars keeps a string as is and writes any other value as its JSON text.
TRAJECTORY_SCHEMA: dict[str, Any] = polars_schema((
    "id", "question_id", "question", "ground_truth", "source", "dialect", "date",
    "prompt_template_sha256", "prompt_text", "prompt_token_ids", "response_text",
    "response_token_ids", "response_mask", "finish_reason", "decode_ok", "judge", "correct"))
_BLOCK_BYTES = 32 << 20
#: A surrogate escape: polars reads a lone one as a NUL without a word, so a block holding any
#: is checked line by line first.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_PARQUET_BATCH = 1024


@dataclass(slots=True, frozen=True)
class InputFile:
    """One input file, what it holds, and the rollout manifest beside it (if any)."""

    path: Path
    kind: InputKind
    manifest: dict[str, Any] | None = None
    manifest_sha256: str | None = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _kind(path: Path) -> InputKind:
    """Trajectories have token ids; anything else is read as text-only traces."""
    cols = file_columns(path, fmt="parquet" if path.suffix == ".parquet" else "jsonl")
    return "trajectories" if "response_token_ids" in cols else "text"


def _files_in(directory: Path) -> list[Path]:
    shards = RolloutDir(directory).files()
    if shards:
        return shards
    return sorted(p for p in directory.iterdir()
                  if p.suffix in (".jsonl", ".json", ".parquet") and p.name != RolloutDir.MANIFEST)


def discover_inputs(paths: list[Path]) -> list[InputFile]:
    """Input files in a stable order: a rollout directory's shards (then unfinalized parts,
    as ``read_trajectories`` reads them) with its manifest, or JSONL/parquet files."""
    out: list[InputFile] = []
    for p in paths:
        if p.is_dir():
            rollouts = RolloutDir(p)
            manifest = rollouts.read_manifest()
            manifest_sha = None if manifest is None else sha256_file(rollouts.manifest_path)
            files = _files_in(p)
            if not files:
                raise InputError("holds no rollouts or JSONL/parquet files", path=p,
                                 hint="give a rollout folder, or trajectory/trace files")
            out += [InputFile(f, _kind(f), manifest, manifest_sha) for f in files]
        elif p.is_file():
            if p.suffix not in (".jsonl", ".json", ".parquet"):
                raise InputError(f"unknown input type {p.suffix!r}", path=p,
                                 hint="give .jsonl or .parquet files, or a rollout dir")
            out.append(InputFile(p, _kind(p)))
        else:
            raise InputError("no such file or folder", path=p,
                             hint="check the path of the input")
    return out


def check_not_empty(path: Path, *, allow_empty: bool, hint: str) -> None:
    """An input file the user named that holds no row (empty, blank lines only, a parquet
    file of no rows) is refused before anything is written, unless ``allow_empty``."""
    if allow_empty:
        return
    size = path.stat().st_size
    if path.suffix == ".parquet":
        empty = size == 0 or _parquet_rows(path) == 0
    else:
        empty = size == 0 or (size <= 1 << 16 and not path.read_bytes().strip())
    if empty:
        raise InputError("holds no rows (an empty file)", path=path, hint=hint)


def _parquet_rows(path: Path) -> int | None:
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowException, OSError):
        return None  # not parquet after all: the reader says so


def _line_blocks(path: Path, block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines; a last line without a newline is kept."""
    with path.open("rb") as f:
        rest = b""
        while buf := f.read(block_bytes):
            buf = rest + buf
            cut = buf.rfind(b"\n") + 1
            if cut:
                yield buf[:cut]
            rest = buf[cut:]
        if rest.strip():
            yield rest + b"\n"


def _conform(df: pl.DataFrame) -> pl.DataFrame:
    """A parquet batch in the shape of TRAJECTORY_SCHEMA (missing columns null, varying
    types as JSON text)."""
    cols: list[pl.Expr | pl.Series] = []
    for name, dtype in TRAJECTORY_SCHEMA.items():
        if name not in df.columns:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
        elif dtype == pl.String and df.schema[name] != pl.String:
            text = [None if v is None else orjson.dumps(v).decode()
                    for v in df[name].to_list()]
            cols.append(pl.Series(name, text, dtype=pl.String))
        else:
            cols.append(pl.col(name).cast(dtype))
    return df.select(cols)


@dataclass(slots=True)
class Frame:
    """Trajectory records read together: the frame, the input bytes it covers (for a progress
    bar), and the lines that hold no record (not JSON, not an object, a lone surrogate), each
    with its file line."""

    df: pl.DataFrame
    nbytes: int
    bad: list[RowError] = field(default_factory=list)


def _polars_error(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _read_lines(src: InputFile, block: bytes, first_line: int) -> Frame:
    """A block read line by line: lines that are not JSON objects set aside (counted by the
    build), the rest read by polars; a record polars cannot read stops the build at its line."""
    where = str(src.path)
    good: list[bytes] = []
    lines: list[int] = []
    bad: list[RowError] = []
    for k, raw in enumerate(block.split(b"\n")):
        if not raw.strip():
            continue
        got = parse_json_line(raw, where=where, line=first_line + k)
        if isinstance(got, RowError):
            bad.append(got)
        else:
            good.append(raw)
            lines.append(first_line + k)
    try:
        frame = pl.read_ndjson(io.BytesIO(b"\n".join(good) + b"\n"), schema=TRAJECTORY_SCHEMA)
    except pl.exceptions.PolarsError as e:
        at = next((n for raw, n in zip(good, lines, strict=True) if not _readable(raw)), None)
        raise InputError(f"cannot read a trajectory record: {_polars_error(e)}", path=where,
                         line=at, hint="give trajectory records as JSONL, one per line, with "
                                       "the fields a rollout writes") from e
    return Frame(frame, len(block), bad)


def _readable(raw: bytes) -> bool:
    try:
        pl.read_ndjson(io.BytesIO(raw + b"\n"), schema=TRAJECTORY_SCHEMA)
    except pl.exceptions.PolarsError:
        return False
    return True


def iter_frames(src: InputFile, block_bytes: int = _BLOCK_BYTES) -> Iterator[Frame]:
    """Trajectory records as polars frames of TRAJECTORY_SCHEMA, block by block. A block
    polars reads at once is taken as it is; one it refuses (or that holds a surrogate escape)
    is read line by line, so a bad line is reported on its own file line and the rest kept."""
    if src.path.suffix == ".parquet":
        pf = pq.ParquetFile(src.path)
        size = src.path.stat().st_size
        rows = max(pf.metadata.num_rows, 1)
        for batch in pf.iter_batches(batch_size=_PARQUET_BATCH):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            yield Frame(_conform(frame), size * batch.num_rows // rows)
        return
    line = 1
    for block in _line_blocks(src.path, block_bytes):
        if _SURROGATE_ESCAPE.search(block):
            yield _read_lines(src, block, line)
        else:
            try:
                yield Frame(pl.read_ndjson(io.BytesIO(block), schema=TRAJECTORY_SCHEMA),
                            len(block))
            except pl.exceptions.PolarsError:
                yield _read_lines(src, block, line)
        line += block.count(b"\n")


@dataclass(slots=True)
class _Shard:
    tmp: Path
    rows: int = 0


@dataclass(slots=True)
class ShardWriter:
    """Parquet shards of at most ``shard_rows`` rows, row groups of ``row_group_rows``."""

    out: Path
    split: str
    schema: pa.Schema
    shard_rows: int = 50_000
    row_group_rows: int = 1000
    _pending: list[pa.Table] = field(default_factory=list)
    _pending_rows: int = 0
    _writer: pq.ParquetWriter | None = None
    _shards: list[_Shard] = field(default_factory=list)

    _created: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.row_group_rows = max(1, min(self.row_group_rows, self.shard_rows))
        data = self.out / "data"
        self._created = [d for d in (data, *data.parents) if not d.exists()][::-1]
        data.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._pending.append(table.cast(self.schema))
            self._pending_rows += table.num_rows
        while self._pending_rows >= self.row_group_rows:
            self._flush(self.row_group_rows)

    def _take(self, n: int) -> pa.Table:
        """The first ``n`` pending rows (slices are zero-copy; only the group is copied)."""
        parts: list[pa.Table] = []
        need = n
        while need:
            t = self._pending[0]
            if t.num_rows <= need:
                parts.append(self._pending.pop(0))
                need -= t.num_rows
            else:
                parts.append(t.slice(0, need))
                self._pending[0] = t.slice(need)
                need = 0
        self._pending_rows -= n
        return pa.concat_tables(parts).combine_chunks()

    def _flush(self, n: int) -> None:
        if self._writer is None or self._shards[-1].rows >= self.shard_rows:
            self._open()
        assert self._writer is not None
        n = min(n, self.shard_rows - self._shards[-1].rows)
        self._writer.write_table(self._take(n), row_group_size=n)
        self._shards[-1].rows += n

    def _open(self) -> None:
        if self._writer is not None:
            self._writer.close()
        tmp = self.out / "data" / f".{self.split}-{len(self._shards):05d}.parquet.tmp"
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd",
                                        compression_level=3)
        self._shards.append(_Shard(tmp))

    def abort(self) -> None:
        """A failed build leaves no temporary shard behind, nor a folder it created (finished
        shards stay as they were)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        wrote = bool(self._shards)
        for s in self._shards:
            s.tmp.unlink(missing_ok=True)
        self._shards.clear()
        for d in reversed(self._created if not wrote else []):  # failed before any row
            with contextlib.suppress(OSError):
                d.rmdir()

    def close(self) -> list[Path]:
        """Flush, rename to the final names, drop this split's stale shards; the shard paths."""
        while self._pending_rows:
            self._flush(min(self._pending_rows, self.row_group_rows))
        if not self._shards:
            self._open()
        assert self._writer is not None
        self._writer.close()
        n = len(self._shards)
        final = [self.out / "data" / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
                 for i in range(n)]
        for s, dest in zip(self._shards, final, strict=True):
            os.replace(s.tmp, dest)
        for old in (self.out / "data").glob(f"{self.split}-*-of-*.parquet"):
            if old not in final:
                old.unlink()
        return final


def prefetch(items: Iterator[T]) -> Iterator[T]:
    """``items``, with the next one produced in a thread while the caller works on this one
    (polars parses JSON without the GIL)."""
    end = object()
    with ThreadPoolExecutor(1, thread_name_prefix="cirkit-read") as pool:
        fut = pool.submit(next, items, end)
        while (item := fut.result()) is not end:
            fut = pool.submit(next, items, end)
            yield cast(T, item)


def fingerprint(shards: list[Path]) -> str:
    """sha256 over the shards' bytes, in shard order: same rows, same fingerprint."""
    h = hashlib.sha256()
    for p in shards:
        with p.open("rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
