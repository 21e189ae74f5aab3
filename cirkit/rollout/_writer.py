"""Rollout output: crash-safe parts while a run goes, deterministic shards at the end.

While running, each finished trajectory is appended (and flushed) to a part file, so a killed
run loses nothing it finished. ``finalize`` merges parts and earlier shards, keeps one record
per id (a finished record beats an errored one), sorts by question order and sample index, and
writes the shards and the manifest: the same rollouts give the same bytes, whatever order they
finished in. The file names are :class:`~cirkit.trajectory.RolloutDir`'s.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from cirkit.errors import InputError
from cirkit.trajectory import (
    ROLLOUT_FORMAT,
    ROLLOUT_FORMAT_VERSION,
    RolloutDir,
    ShardFormat,
    Trajectory,
    arrow_table,
)

__all__ = ["RolloutWriter", "read_trajectories"]


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def read_trajectories(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every trajectory record in an output directory: final shards, then unfinalized parts."""
    return RolloutDir(out).records()


class RolloutWriter:
    def __init__(self, out: str | Path, *, shard_size: int = 1000, fmt: str = "jsonl") -> None:
        if fmt not in ("jsonl", "parquet"):
            raise ValueError(f"unknown format {fmt!r}; valid formats: jsonl, parquet")
        self.dir = RolloutDir(out)
        self.out = self.dir.path
        self.shard_size = shard_size
        self.fmt = cast(ShardFormat, fmt)
        try:
            self.dir.parts_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot write rollouts to {self.out}: {e.strerror}",
                             hint="choose an output folder you can create and write to",
                             setting="out") from e
        self._part: IO[str] | None = None

    def done_ids(self) -> set[str]:
        """Ids already finished (errored ones are run again)."""
        return {r["id"] for r in self.dir.records() if r.get("finish_reason") != "error"}

    def write(self, trajectory: Trajectory) -> None:
        if self._part is None:
            part = self.dir.part(len(self.dir.parts()))
            self._part = part.open("a", encoding="utf-8")
        self._part.write(_dumps(trajectory.to_json()) + "\n")
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
        for r in self.dir.records():
            old = best.get(r["id"])
            if old is None or old.get("finish_reason") == "error":
                best[r["id"]] = r
        rows = sorted(best.values(), key=lambda r: (order.get(r["question_id"], len(order)),
                                                   r["question_id"], r["sample_index"]))
        n = max(1, -(-len(rows) // self.shard_size))
        old_shards = self.dir.shards()
        written: list[Path] = []
        for i in range(n):
            chunk = rows[i * self.shard_size:(i + 1) * self.shard_size]
            dest = self.dir.shard(i, n, self.fmt)
            tmp = dest.with_name("." + dest.name + ".tmp")
            if self.fmt == "jsonl":
                tmp.write_text("".join(_dumps(r) + "\n" for r in chunk), encoding="utf-8")
            else:
                import pyarrow.parquet as pq

                pq.write_table(arrow_table(chunk), tmp)
            os.replace(tmp, dest)
            written.append(dest)
        for p in old_shards:
            if p not in written:
                p.unlink()
        manifest = {
            "format": ROLLOUT_FORMAT,
            "version": ROLLOUT_FORMAT_VERSION,
            "trajectories": len(rows),
            "shards": [p.name for p in written],
            "finish_reasons": dict(sorted(Counter(r["finish_reason"] for r in rows).items())),
            "decode_mismatches": sum(1 for r in rows if not r.get("decode_ok", True)),
            "config": config,
        }
        self.dir.manifest_path.write_text(
            json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        for part in self.dir.parts():
            part.unlink()
        self.dir.parts_dir.rmdir()
        return manifest
