"""The trajectory record: one rollout, as written to disk and read by the dataset builders.

One field table (:data:`TRAJECTORY_FIELDS`) says what a record holds, in the order it is
written; the typed :class:`Trajectory`, the Arrow schema of parquet shards and the polars
schema a builder reads are all derived from it. :class:`RolloutDir` is the one place that
knows the names of a rollout directory's files.

A field whose JSON type varies (``ground_truth``: null, a string or a list; a tool call's
``args``) is held in columnar form (Arrow, polars) as text: a string as it is, any other value
as its JSON text; reading it back, a text that parses as a JSON array or object is taken for
one. pyarrow and polars are imported only when a schema is asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from .errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ANNOTATION_FIELDS",
    "FINISH_REASONS",
    "ROLLOUT_FORMAT",
    "ROLLOUT_FORMAT_VERSION",
    "TRAJECTORY_FIELDS",
    "CodeBlock",
    "FieldType",
    "FinishReason",
    "RolloutDir",
    "ShardFormat",
    "Trajectory",
    "TrajectoryField",
    "arrow_schema",
    "arrow_table",
    "polars_schema",
    "trajectory_id",
]

#: Why a rollout ended. "length": the server stopped at a request's own max_tokens.
FinishReason = Literal["answer", "max_code_blocks", "max_response_tokens", "max_total_tokens",
                       "length", "error"]
FINISH_REASONS: tuple[FinishReason, ...] = get_args(FinishReason)

#: Column types. ``json``: any JSON value (text in columnar form); ``ids``/``mask``: token
#: ids (int32) and mask values (int8); ``struct``/``structs``: one or a list of records of
#: the field's own ``fields``.
FieldType = Literal["string", "int", "float", "bool", "json", "ids", "mask", "strings",
                    "struct", "structs"]


@dataclass(slots=True, frozen=True)
class TrajectoryField:
    """One field of the record: its name, column type, whether it may be null, what it is."""

    name: str
    type: FieldType
    nullable: bool
    doc: str
    fields: tuple[TrajectoryField, ...] = ()


_F = TrajectoryField

_SAMPLING = (
    _F("temperature", "float", False, "sampling temperature"),
    _F("top_p", "float", False, "nucleus sampling mass"),
    _F("top_k", "int", False, "top-k cut (-1: none)"),
    _F("seed", "int", False, "this sample's seed, derived from the base seed"),
    _F("max_tokens", "int", False, "the per-request token budget asked for"),
    _F("base_seed", "int", False, "the run's seed"),
)
#: A tool call's fields in sorted order, as the store's canonical JSON has always given them.
_TOOL_CALL = (
    _F("args", "json", False, "the normalised arguments (keys sorted)"),
    _F("error", "string", True, "what the call raised, if it did"),
    _F("key", "string", True, "the store key of the call"),
    _F("tool", "string", False, "web_search or web_visit"),
)
_CODE_BLOCK = (
    _F("code", "string", False, "the block's Python ('' when no block was well-formed)"),
    _F("output", "string", False, "the observation's body (what the fence wraps)"),
    _F("error", "string", True, "the sandbox's error reason (timeout, exception...) or no_code"),
    _F("duration_ms", "float", False, "the run's wall time, as recorded"),
    _F("tool_calls", "structs", False, "the tools the block called", _TOOL_CALL),
)

#: Every field of a record, in the order a rollout writes them.
TRAJECTORY_FIELDS: tuple[TrajectoryField, ...] = (
    _F("id", "string", False, "sha256 of question id, sample index and base seed (24 hex)"),
    _F("question_id", "string", False, "the question's id"),
    _F("question", "string", False, "the question's text"),
    _F("ground_truth", "json", True, "the expected answer: null, a string or a list"),
    _F("source", "string", False, "where the question comes from"),
    _F("sample_index", "int", False, "0 ... samples - 1"),
    _F("model", "string", False, "the model name sent to the server"),
    _F("sampling", "struct", False, "the sampling parameters of this sample", _SAMPLING),
    _F("dialect", "string", False, "the prompt's tool dialect"),
    _F("prompt_template_sha256", "string", False, "sha256 of the system prompt template"),
    _F("date", "string", False, "the date the system prompt states"),
    _F("prompt_text", "string", False, "the full prompt (chat template + think prefix)"),
    _F("prompt_token_ids", "ids", False, "the prompt's ids"),
    _F("response_text", "string", False, "the continuation, observations included"),
    _F("response_token_ids", "ids", False, "the continuation's ids, as generated"),
    _F("response_mask", "mask", False, "per response id: 1 generated, 0 observation"),
    _F("code_blocks", "structs", False, "each code block run", _CODE_BLOCK),
    _F("final_answer", "string", True, "the text after </think> when the rollout answered"),
    _F("finish_reason", "string", False, "why the rollout ended (FinishReason)"),
    _F("num_code_blocks", "int", False, "len(code_blocks)"),
    _F("num_response_tokens", "int", False, "len(response_token_ids)"),
    _F("decode_ok", "bool", False, "the response ids decode to response_text"),
    _F("store_keys", "strings", False, "every store key used, in first-use order"),
    _F("error", "string", True, "what went wrong when finish_reason is error"),
)

#: Fields a later step may add to a record (a judge's verdict); a rollout never writes them.
ANNOTATION_FIELDS: tuple[TrajectoryField, ...] = (
    _F("judge", "json", True, "a judge's verdict (bool, 1/0, correct/incorrect, A/B/C)"),
    _F("correct", "json", True, "whether the answer is correct, as a judge said"),
)

_BY_NAME = {f.name: f for f in TRAJECTORY_FIELDS + ANNOTATION_FIELDS}


def trajectory_id(question_id: str, sample_index: int, base_seed: int) -> str:
    """The record's stable id: a rerun of the same sample finds it done."""
    h = hashlib.sha256(f"{question_id}\x00{sample_index}\x00{base_seed}".encode())
    return h.hexdigest()[:24]


def _need(d: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return d[name]
    except KeyError:
        raise InputError(f"a {what} without the field {name!r}", field=name,
                         hint="give records as cirkit rollout writes them") from None
    except TypeError:
        raise InputError(f"a {what} is not a JSON object",
                         hint="give records as cirkit rollout writes them") from None


@dataclass(slots=True)
class CodeBlock:
    """One code block's run, as the record keeps it. ``tool_calls`` are the sandbox's tool
    calls in the form :meth:`tool_call` gives."""

    code: str
    output: str
    error: str | None
    duration_ms: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in _CODE_BLOCK}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CodeBlock:
        return cls(*(_need(d, f.name, "code block") for f in _CODE_BLOCK))

    @staticmethod
    def tool_call(tool: str, args: Mapping[str, Any], key: str | None,
                  error: str | None) -> dict[str, Any]:
        """A tool call as a record holds it: keys and args sorted, as the store's canonical
        JSON gives them, so a record is the same bytes whichever mode ran the block."""
        return {"args": dict(sorted(args.items())), "error": error, "key": key, "tool": tool}


@dataclass(slots=True, kw_only=True)
class Trajectory:
    """One rollout. ``to_json`` gives the record in :data:`TRAJECTORY_FIELDS` order;
    ``num_code_blocks`` and ``num_response_tokens`` are counted, never stored."""

    id: str
    question_id: str
    question: str
    ground_truth: Any
    source: str
    sample_index: int
    model: str
    sampling: dict[str, Any]
    dialect: str
    prompt_template_sha256: str
    date: str
    prompt_text: str
    prompt_token_ids: list[int]
    response_text: str
    response_token_ids: list[int]
    response_mask: list[int]
    code_blocks: list[CodeBlock]
    final_answer: str | None
    finish_reason: FinishReason
    decode_ok: bool
    store_keys: list[str]
    error: str | None

    @property
    def num_code_blocks(self) -> int:
        return len(self.code_blocks)

    @property
    def num_response_tokens(self) -> int:
        return len(self.response_token_ids)

    @property
    def generated_tokens(self) -> int:
        """Response tokens the model generated (mask 1)."""
        return sum(self.response_mask)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in TRAJECTORY_FIELDS}
        out["code_blocks"] = [b.to_json() for b in self.code_blocks]
        return out

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Trajectory:
        """A record as written (extra fields, such as a judge's, are left out)."""
        values = {f.name: _need(d, f.name, "trajectory record") for f in fields(cls)}
        values["code_blocks"] = [CodeBlock.from_json(b) for b in values["code_blocks"]]
        if values["finish_reason"] not in FINISH_REASONS:
            raise InputError(f"unknown finish_reason {values['finish_reason']!r}",
                             field="finish_reason",
                             hint=f"one of: {', '.join(FINISH_REASONS)}")
        return cls(**values)


# -- columnar schemas ----------------------------------------------------------------------


def _arrow_type(f: TrajectoryField) -> pa.DataType:
    import pyarrow as pa

    scalar = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(),
              "bool": pa.bool_(), "json": pa.string(), "ids": pa.list_(pa.int32()),
              "mask": pa.list_(pa.int8()), "strings": pa.list_(pa.string())}
    if f.type in scalar:
        return scalar[f.type]
    struct = pa.struct([pa.field(c.name, _arrow_type(c), nullable=c.nullable)
                        for c in f.fields])
    return struct if f.type == "struct" else pa.list_(struct)


def arrow_schema() -> pa.Schema:
    """The Arrow schema of a record (parquet rollout shards are written with it)."""
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _arrow_type(f), nullable=f.nullable)
                      for f in TRAJECTORY_FIELDS])


def _polars_type(f: TrajectoryField) -> Any:
    import polars as pl

    scalar = {"string": pl.String, "int": pl.Int64, "float": pl.Float64,
              "bool": pl.Boolean, "json": pl.String, "ids": pl.List(pl.Int32),
              "mask": pl.List(pl.Int8), "strings": pl.List(pl.String)}
    if f.type in scalar:
        return scalar[f.type]
    struct = pl.Struct({c.name: _polars_type(c) for c in f.fields})
    return struct if f.type == "struct" else pl.List(struct)


def polars_schema(names: Iterable[str] | None = None) -> dict[str, Any]:
    """The polars schema of the named fields (record fields or annotations), in the order
    given; every record field when ``names`` is None."""
    chosen = [f.name for f in TRAJECTORY_FIELDS] if names is None else list(names)
    unknown = [n for n in chosen if n not in _BY_NAME]
    if unknown:
        raise KeyError(f"not a trajectory field: {', '.join(unknown)}")
    return {n: _polars_type(_BY_NAME[n]) for n in chosen}


def _to_columns(value: Any, f: TrajectoryField) -> Any:
    if value is None:
        return None
    if f.type == "json":
        return value if isinstance(value, str) else json.dumps(
            value, ensure_ascii=False, separators=(",", ":"))
    if f.type == "struct":
        return {c.name: _to_columns(value.get(c.name), c) for c in f.fields}
    if f.type == "structs":
        return [{c.name: _to_columns(v.get(c.name), c) for c in f.fields} for v in value]
    return value


def _from_columns(value: Any, f: TrajectoryField) -> Any:
    if value is None:
        return None
    if f.type == "json":
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    if f.type == "struct":
        return {c.name: _from_columns(value.get(c.name), c) for c in f.fields}
    if f.type == "structs":
        return [{c.name: _from_columns(v.get(c.name), c) for c in f.fields} for v in value]
    return value


def arrow_table(records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Records as an Arrow table of :func:`arrow_schema` (varying types as JSON text)."""
    import pyarrow as pa

    rows = [{f.name: _to_columns(r.get(f.name), f) for f in TRAJECTORY_FIELDS} for r in records]
    return pa.Table.from_pylist(rows, schema=arrow_schema())


def _records_from_arrow(table: pa.Table) -> Iterator[dict[str, Any]]:
    by_name = {f.name: f for f in TRAJECTORY_FIELDS}
    for row in table.to_pylist():
        yield {k: _from_columns(v, by_name[k]) if k in by_name else v for k, v in row.items()}


# -- the rollout directory -----------------------------------------------------------------

ROLLOUT_FORMAT = "cirkit-rollouts"
ROLLOUT_FORMAT_VERSION = 1
ShardFormat = Literal["jsonl", "parquet"]


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):  # a line cut short by a kill is skipped: it reruns
                yield json.loads(line)


class RolloutDir:
    """A rollout run's directory: ``_parts/part-NNNNN.jsonl`` while it runs (appended as
    rollouts finish), then ``rollouts-{i:05d}-of-{n:05d}.jsonl`` (or ``.parquet``) shards and
    ``manifest.json``. Readers take shards first, then unfinalized parts."""

    __slots__ = ("path",)
    PARTS = "_parts"
    MANIFEST = "manifest.json"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RolloutDir({str(self.path)!r})"

    @property
    def parts_dir(self) -> Path:
        return self.path / self.PARTS

    @property
    def manifest_path(self) -> Path:
        return self.path / self.MANIFEST

    def part(self, n: int) -> Path:
        return self.parts_dir / f"part-{n:05d}.jsonl"

    def parts(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.jsonl"))

    def shard(self, i: int, n: int, fmt: ShardFormat) -> Path:
        return self.path / f"rollouts-{i:05d}-of-{n:05d}.{fmt}"

    def shards(self) -> list[Path]:
        """Finished shards: the JSONL ones, then the parquet ones."""
        return sorted(self.path.glob("rollouts-*.jsonl")) + sorted(
            self.path.glob("rollouts-*.parquet"))

    def files(self) -> list[Path]:
        """Every file holding records, in reading order."""
        return self.shards() + self.parts()

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record, as written: shards, then unfinalized parts."""
        for path in self.files():
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                yield from _records_from_arrow(pq.read_table(path))
            else:
                yield from _read_jsonl(path)

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None before the run is finalized."""
        try:
            data = self.manifest_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            manifest = json.loads(data)
        except ValueError:
            raise InputError("not JSON", path=self.manifest_path,
                             hint="rerun the rollout into this directory to rewrite it"
                             ) from None
        if not isinstance(manifest, dict) or manifest.get("format") != ROLLOUT_FORMAT:
            raise InputError(f"not a {ROLLOUT_FORMAT} manifest", path=self.manifest_path)
        version = manifest.get("version", ROLLOUT_FORMAT_VERSION)
        if version != ROLLOUT_FORMAT_VERSION:
            raise InputError(
                f"rollout format version {version!r}; this cirkit reads "
                f"version {ROLLOUT_FORMAT_VERSION}", path=self.manifest_path,
                hint="use the cirkit version that wrote it")
        return manifest
