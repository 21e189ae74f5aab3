"""Rollout output: crash-safe parts while a run goes, deterministic shards at the end.

While running, each finished trajectory is appended (and flushed) to ``_parts/part-N.jsonl``,
so a killed run loses nothing it finished. ``finalize`` merges parts and earlier shards, keeps
one record per id (a finished record beats an errored one), sorts by question order and
sample index, and writes ``rollouts-{i:05d}-of-{n:05d}.jsonl`` (or ``.parquet``) and a
``manifest.json``: the same rollouts give the same bytes, whatever order they finished in.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from recorders import RecordersError

__all__ = ["ROLLOUT_FORMAT_VERSION", "RolloutWriter", "read_trajectories"]

ROLLOUT_FORMAT_VERSION = 1
_PARTS = "_parts"


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):  # a line cut short by a kill is skipped: it reruns
                yield json.loads(line)


def read_trajectories(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every trajectory in an output directory: final shards, then unfinalized parts."""
    out = Path(out)
    for shard in sorted(out.glob("rollouts-*.jsonl")):
        yield from _read_jsonl(shard)
    for shard in sorted(out.glob("rollouts-*.parquet")):
        import pyarrow.parquet as pq

        yield from pq.read_table(shard).to_pylist()
    for part in sorted((out / _PARTS).glob("part-*.jsonl")):
        yield from _read_jsonl(part)


class RolloutWriter:
    def __init__(self, out: str | Path, *, shard_size: int = 1000, fmt: str = "jsonl") -> None:
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"unknown format {fmt!r}; valid formats: jsonl, parquet")
        self.out = Path(out)
        self.shard_size = shard_size
        self.fmt = fmt
        try:
            (self.out / _PARTS).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RecordersError(f"cannot write rollouts to {self.out}: {e.strerror}") from e
        self._part: IO[str] | None = None

    def done_ids(self) -> set[str]:
        """Ids already finished (errored ones are run again)."""
        return {r["id"] for r in read_trajectories(self.out) if r.get("finish_reason") != "error"}

    def write(self, record: dict[str, Any]) -> None:
        if self._part is None:
            n = len(list((self.out / _PARTS).glob("part-*.jsonl")))
            self._part = (self.out / _PARTS / f"part-{n:05d}.jsonl").open("a", encoding="utf-8")
        self._part.write(_dumps(record) + "\n")
        self._part.flush()

    def close(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None

    def finalize(self, order: dict[str, int], *, config: dict[str, Any]) -> dict[str, Any]:
        """Write the sorted shards and the manifest; remove the parts. ``order`` maps
        question id to its position in the question file."""
        self.close()
        best: dict[str, dict[str, Any]] = {}
        for r in read_trajectories(self.out):
            old = best.get(r["id"])
            if old is None or old.get("finish_reason") == "error":
                best[r["id"]] = r
        rows = sorted(best.values(), key=lambda r: (order.get(r["question_id"], len(order)),
                                                   r["question_id"], r["sample_index"]))
        n = max(1, -(-len(rows) // self.shard_size))
        old_shards = sorted(self.out.glob("rollouts-*.*"))
        written: list[Path] = []
        for i in range(n):
            chunk = rows[i * self.shard_size:(i + 1) * self.shard_size]
            dest = self.out / f"rollouts-{i:05d}-of-{n:05d}.{self.fmt}"
            tmp = dest.with_name("." + dest.name + ".tmp")
            if self.fmt == "jsonl":
                tmp.write_text("".join(_dumps(r) + "\n" for r in chunk), encoding="utf-8")
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                pq.write_table(pa.Table.from_pylist(chunk), tmp)
            os.replace(tmp, dest)
            written.append(dest)
        for p in old_shards:
            if p not in written:
                p.unlink()
        manifest = {
            "format": "cirkit-rollouts",
            "version": ROLLOUT_FORMAT_VERSION,
            "trajectories": len(rows),
            "shards": [p.name for p in written],
            "finish_reasons": dict(sorted(Counter(r["finish_reason"] for r in rows).items())),
            "decode_mismatches": sum(1 for r in rows if not r.get("decode_ok", True)),
            "config": config,
        }
        (self.out / "manifest.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        for part in (self.out / _PARTS).glob("part-*.jsonl"):
            part.unlink()
        (self.out / _PARTS).rmdir()
        return manifest
