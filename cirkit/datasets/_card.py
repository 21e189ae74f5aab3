"""The dataset card (``README.md`` with the Hub's YAML front matter) and ``build.json``.

``cirkit push`` uploads the output folder as it is, so the card must already say everything a
reader of the Hub page needs: how to load the data, where it came from (cirkit version,
tokenizer and its sha256, prompt template, filters and limits, the rollouts' manifest hash)
and what the funnel removed. Nothing here holds a date or a path of the machine that built it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ._report import md_cell

__all__ = ["arrow_features", "size_category", "write_build_manifest", "write_card"]

_DTYPES = {
    pa.string(): "string", pa.large_string(): "large_string", pa.bool_(): "bool",
    pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64",
    pa.float32(): "float32", pa.float64(): "float64",
}


def _feature(t: pa.DataType) -> Any:
    """The Hub's YAML for one Arrow type (the shape ``datasets`` writes)."""
    if t in _DTYPES:
        return _DTYPES[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {"list": _feature(t.value_type)}
    if pa.types.is_struct(t):
        return {"struct": [_field(t.field(i)) for i in range(t.num_fields)]}
    raise ValueError(f"no card feature for {t}")


def _field(f: pa.Field) -> dict[str, Any]:
    feat = _feature(f.type)
    if isinstance(feat, str):
        return {"name": f.name, "dtype": feat}
    if "list" in feat and isinstance(feat["list"], dict) and "struct" in feat["list"]:
        return {"name": f.name, "list": feat["list"]["struct"]}
    return {"name": f.name, **feat}


def arrow_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """``dataset_info.features`` for a card, from the shards' Arrow schema."""
    return [_field(schema.field(i)) for i in range(len(schema))]


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "10M<n<100M"


def _shard_info(shards: list[Path], out: Path) -> list[dict[str, Any]]:
    import hashlib

    info = []
    for p in shards:
        md = pq.ParquetFile(p).metadata
        info.append({
            "name": p.relative_to(out).as_posix(), "rows": md.num_rows,
            "bytes": p.stat().st_size,
            "uncompressed_bytes": sum(md.row_group(i).total_byte_size
                                      for i in range(md.num_row_groups)),
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest()})
    return info


def write_build_manifest(out: Path, shards: list[Path], manifest: dict[str, Any]
                         ) -> dict[str, Any]:
    """``build.json``: the shards (rows, bytes, sha256), the fingerprint and the settings."""
    full = {**manifest, "shards": _shard_info(shards, out)}
    full["rows"] = sum(s["rows"] for s in full["shards"])
    (out / "build.json").write_text(json.dumps(full, indent=2, sort_keys=True,
                                               ensure_ascii=False) + "\n", encoding="utf-8")
    return full


def _front_matter(m: dict[str, Any], schema: pa.Schema) -> str:
    import yaml

    split = m["split"]
    nbytes = sum(s["uncompressed_bytes"] for s in m["shards"])
    meta: dict[str, Any] = {
        "license": m["license"],
        "pretty_name": m["title"],
        "tags": m["tags"],
        "task_categories": ["text-generation"],
        "size_categories": [size_category(m["rows"])],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": split, "path": f"data/{split}-*"}]}],
        "dataset_info": {
            "features": arrow_features(schema),
            "splits": [{"name": split, "num_bytes": nbytes, "num_examples": m["rows"]}],
            "download_size": sum(s["bytes"] for s in m["shards"]),
            "dataset_size": nbytes,
        },
    }
    body = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{body}---\n"


def _provenance(m: dict[str, Any]) -> list[str]:
    tok = m["tokenizer"]
    rows = [("cirkit version", m["cirkit_version"]),
            ("fingerprint (sha256 of the shards)", f"`{m['fingerprint']}`"),
            ("tokenizer", f"{tok['name']} (tokenizer.json sha256 `{tok['sha256']}`)"),
            ("chat template sha256", f"`{tok['chat_template_sha256']}`")]
    if m["kind"] == "sft" and tok.get("turn_end"):
        rows.append(("end of turn", f"`{tok['turn_end']}` appended, trainable, to text-only "
                                    "traces (trajectories keep their ids as generated)"))
    p = m.get("prompt", {})
    if p:
        rows.append(("system prompt", f"template {p['template']} (sha256 "
                                      f"`{p['template_sha256']}`), dialect {p['dialect']}, "
                                      f"date {p['date']}"))
    for i in m.get("inputs", []):
        extra = [f"{k} `{v}`" for k, v in sorted(i.items()) if k.endswith("sha256") and v]
        rows.append((f"input {i['name']}", f"{i['kind']}, rows: {i['rows']}"
                     + (f"; {', '.join(extra)}" if extra else "")))
    lines = ["## Provenance", "", "| | |", "| --- | --- |"]
    lines += [f"| {md_cell(a)} | {md_cell(b)} |" for a, b in rows]
    lines += ["", "### Filters and limits", ""]
    for f in m["filters"]:
        cfg = ", ".join(f"{k}={v}" for k, v in f["config"].items())
        lines.append(f"- `{f['name']}`: {f['description']}" + (f" ({cfg})" if cfg else ""))
    lines += ["", "Limits: " + ", ".join(f"{k} {v}" for k, v in m["limits"].items()), ""]
    return lines


def write_card(out: Path, m: dict[str, Any], schema: pa.Schema, *, usage: str,
               report_markdown: str) -> None:
    """``README.md``: YAML front matter, usage, provenance, then the build report."""
    parts = [_front_matter(m, schema), f"# {m['title']}", "", m["description"], "",
             "## Use", "", usage.strip(), "", *_provenance(m), report_markdown.strip(), ""]
    (out / "README.md").write_text("\n".join(parts), encoding="utf-8")
