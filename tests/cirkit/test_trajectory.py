"""The trajectory record: one field table, the typed record, its schemas, and the rollout
directory's layout."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cirkit.errors import InputError
from cirkit.llm import Sampling
from cirkit.trajectory import (
    ANNOTATION_FIELDS,
    FINISH_REASONS,
    ROLLOUT_FORMAT,
    ROLLOUT_FORMAT_VERSION,
    TRAJECTORY_FIELDS,
    CodeBlock,
    RolloutDir,
    Trajectory,
    arrow_schema,
    arrow_table,
    polars_schema,
    trajectory_id,
)

NAMES = [f.name for f in TRAJECTORY_FIELDS]


def _record(i: int = 0, *, ground_truth: Any = "Rembrandt", finish: str = "answer",
            blocks: int = 1) -> dict[str, Any]:
    """A record in the shape (and key order) run_rollout writes."""
    call = CodeBlock.tool_call("web_search", {"query": "night watch", "num_results": 1},
                               "k" * 64, None)
    code_blocks = [CodeBlock("print(1)", "1\n", None, 12.5, [call]).to_json()
                   for _ in range(blocks)]
    return {
        "id": trajectory_id(f"q{i}", 0, 7), "question_id": f"q{i}", "question": "Who?",
        "ground_truth": ground_truth, "source": "unit", "sample_index": 0, "model": "m",
        "sampling": {**Sampling(seed=7).to_json(), "seed": 123, "base_seed": 7},
        "dialect": "card", "prompt_template_sha256": "ab" * 32, "date": "2025-08-01",
        "prompt_text": "<think>\n", "prompt_token_ids": [1, 2], "response_text": "Zürich 東京",
        "response_token_ids": [3, 4, 5], "response_mask": [1, 0, 1], "code_blocks": code_blocks,
        "final_answer": "Rembrandt" if finish == "answer" else None, "finish_reason": finish,
        "num_code_blocks": blocks, "num_response_tokens": 3, "decode_ok": True,
        "store_keys": ["k" * 64], "error": None if finish != "error" else "ConnectionError",
    }


def _dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, ensure_ascii=False, separators=(",", ":"))


def test_round_trip_keeps_every_byte() -> None:
    for rec in (_record(), _record(ground_truth=["a", "b"], finish="error", blocks=0),
                _record(ground_truth=None, finish="max_code_blocks", blocks=3)):
        t = Trajectory.from_json(rec)
        assert t.num_code_blocks == len(rec["code_blocks"]) and t.generated_tokens == 2
        assert all(isinstance(b, CodeBlock) for b in t.code_blocks)
        assert _dumps(t.to_json()) == _dumps(rec)
        assert Trajectory.from_json(json.loads(_dumps(rec))) == t


def test_extra_fields_are_left_out_and_missing_ones_named() -> None:
    assert Trajectory.from_json({**_record(), "judge": "A"}).to_json() == _record()
    rec = _record()
    del rec["decode_ok"]
    with pytest.raises(InputError, match="decode_ok") as e:
        Trajectory.from_json(rec)
    assert e.value.field == "decode_ok" and e.value.hint
    with pytest.raises(InputError, match="finish_reason"):
        Trajectory.from_json({**_record(), "finish_reason": "tired"})
    with pytest.raises(InputError, match="code block"):
        Trajectory.from_json({**_record(), "code_blocks": [{"code": "x"}]})


def test_one_table_names_every_field_in_order() -> None:
    fields = [f.name for f in dataclasses.fields(Trajectory)]
    derived = ["num_code_blocks", "num_response_tokens"]
    assert [n for n in NAMES if n not in derived] == fields
    assert all(isinstance(getattr(Trajectory, n), property) for n in derived)
    assert list(_record()) == NAMES == list(Trajectory.from_json(_record()).to_json())
    assert arrow_schema().names == NAMES
    assert list(polars_schema()) == NAMES
    assert set(FINISH_REASONS) == {"answer", "max_code_blocks", "max_response_tokens",
                                   "max_total_tokens", "length", "error"}
    for f in TRAJECTORY_FIELDS + ANNOTATION_FIELDS:
        assert f.doc and f.name.isidentifier()


def test_nested_fields_follow_the_record() -> None:
    schema = arrow_schema()
    rec = _record()
    sampling = schema.field("sampling").type
    assert [sampling.field(i).name for i in range(sampling.num_fields)] == list(rec["sampling"])
    block = schema.field("code_blocks").type.value_type
    assert [block.field(i).name for i in range(block.num_fields)] == list(rec["code_blocks"][0])
    call = block.field("tool_calls").type.value_type
    assert [call.field(i).name for i in range(call.num_fields)] == list(
        rec["code_blocks"][0]["tool_calls"][0])
    assert schema.field("prompt_token_ids").type == pa.list_(pa.int32())
    assert schema.field("response_mask").type == pa.list_(pa.int8())
    assert not schema.field("id").nullable and schema.field("ground_truth").nullable


def test_a_tool_call_is_sorted_as_the_store_gives_it() -> None:
    call = CodeBlock.tool_call("web_visit", {"url": "u", "a": 1}, None, "boom")
    assert _dumps(call) == '{"args":{"a":1,"url":"u"},"error":"boom","key":null,' \
        '"tool":"web_visit"}'


def test_the_builders_read_a_typed_subset() -> None:
    from cirkit.datasets import TRAJECTORY_SCHEMA

    assert polars_schema(TRAJECTORY_SCHEMA) == TRAJECTORY_SCHEMA
    assert TRAJECTORY_SCHEMA["ground_truth"] == pl.String  # varying JSON type: text
    assert TRAJECTORY_SCHEMA["response_mask"] == pl.List(pl.Int8)
    assert {"judge", "correct"} <= set(TRAJECTORY_SCHEMA)
    with pytest.raises(KeyError, match="not a trajectory field"):
        polars_schema(["nope"])


def test_parquet_shards_hold_mixed_ground_truths(tmp_path: Path) -> None:
    """A string, a list and null in one shard (Arrow's own inference refuses the mix)."""
    recs = [_record(0), _record(1, ground_truth=["a", "b"]), _record(2, ground_truth=None)]
    d = RolloutDir(tmp_path)
    pq.write_table(arrow_table(recs), d.shard(0, 1, "parquet"))
    assert pq.read_schema(d.shard(0, 1, "parquet")).names == NAMES
    assert list(d.records()) == recs
    frame = pl.read_parquet(d.shard(0, 1, "parquet"))
    assert frame["ground_truth"].to_list() == ["Rembrandt", '["a","b"]', None]


def test_the_layout_is_named_in_one_place(tmp_path: Path) -> None:
    d = RolloutDir(tmp_path / "run")
    assert d.part(3) == tmp_path / "run" / "_parts" / "part-00003.jsonl"
    assert d.shard(1, 12, "jsonl").name == "rollouts-00001-of-00012.jsonl"
    assert d.shard(0, 1, "parquet").name == "rollouts-00000-of-00001.parquet"
    assert d.manifest_path.name == "manifest.json" and d.read_manifest() is None
    assert d.files() == [] and list(d.records()) == []
    d.parts_dir.mkdir(parents=True)
    d.part(0).write_text(_dumps(_record(5)) + "\n" + _dumps(_record(6))[:20])  # cut by a kill
    d.shard(0, 1, "jsonl").write_text(_dumps(_record(1)) + "\n")
    pq.write_table(arrow_table([_record(2)]), d.shard(0, 1, "parquet"))
    assert [p.name for p in d.files()] == [
        "rollouts-00000-of-00001.jsonl", "rollouts-00000-of-00001.parquet", "part-00000.jsonl"]
    assert [r["question_id"] for r in d.records()] == ["q1", "q2", "q5"]


def test_writer_and_builders_use_the_layout(tmp_path: Path) -> None:
    from cirkit.datasets import discover_inputs
    from cirkit.rollout import RolloutWriter, read_trajectories

    w = RolloutWriter(tmp_path / "run", shard_size=2)
    for i in (2, 0, 1):
        w.write(Trajectory.from_json(_record(i)))
    w.close()
    d = RolloutDir(tmp_path / "run")
    assert d.parts() == [d.part(0)]
    assert [f.path for f in discover_inputs([d.path])] == d.files()
    manifest = w.finalize({"q0": 0, "q1": 1, "q2": 2}, config={"model": "m"})
    assert d.shards() == [d.shard(0, 2, "jsonl"), d.shard(1, 2, "jsonl")]
    assert not d.parts_dir.exists()
    assert manifest["shards"] == [p.name for p in d.shards()]
    assert d.read_manifest() == manifest
    assert (manifest["format"], manifest["version"]) == (ROLLOUT_FORMAT, ROLLOUT_FORMAT_VERSION)
    assert list(read_trajectories(d.path)) == [_record(0), _record(1), _record(2)]
    assert d.shard(0, 2, "jsonl").read_text() == "".join(
        _dumps(_record(i)) + "\n" for i in (0, 1))
    found = discover_inputs([d.path])
    assert [f.path for f in found] == d.shards() and found[0].manifest == manifest


def test_a_manifest_of_another_version_is_refused(tmp_path: Path) -> None:
    d = RolloutDir(tmp_path)
    d.manifest_path.write_text("{oops")
    with pytest.raises(InputError, match="not JSON"):
        d.read_manifest()
    d.manifest_path.write_text(json.dumps({"format": ROLLOUT_FORMAT, "version": 99}))
    with pytest.raises(InputError, match="version 99"):
        d.read_manifest()
    d.manifest_path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not a cirkit-rollouts manifest"):
        d.read_manifest()
