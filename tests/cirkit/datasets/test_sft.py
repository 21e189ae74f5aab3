"""SFT rows: token ids kept as generated, labels -100 exactly on prompt and observation tokens."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cirkit.cir import parse, render_messages
from cirkit.datasets import (
    IGNORE_INDEX,
    SFT_SCHEMA,
    BuildResult,
    BuildTokenizer,
    SFTOptions,
    build_sft,
)
from cirkit.rollout import ChatTokenizer

from .conftest import (
    ANSWER,
    CODE,
    CODE2,
    DATE,
    OBS,
    OBS2,
    THINK,
    cir_text,
    trajectory,
    write_jsonl,
)

Q = "What is the capital of France?"


def rows_of(result: BuildResult) -> list[dict[str, Any]]:
    return [r for s in result.shards for r in pq.read_table(s).to_pylist()]


def _records(tok: ChatTokenizer) -> list[dict[str, Any]]:
    return [trajectory(tok, Q, [CODE, ANSWER], [OBS]),
            trajectory(tok, Q, [CODE, CODE2, ANSWER], [OBS, OBS2], sample=1)]


def test_trajectory_ids_are_kept_and_labels_mask_prompt_and_observations(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    recs = _records(chat_tokenizer)
    src = write_jsonl(tmp_path / "roll" / "rollouts-00000-of-00001.jsonl", recs)
    res = build_sft([src.parent], tmp_path / "out", tokenizer=build_tokenizer)
    rows = rows_of(res)
    assert pq.read_schema(res.shards[0]).remove_metadata() == SFT_SCHEMA
    assert len(rows) == 2
    (end_code,) = chat_tokenizer.encode("<end_code>")
    for rec, row in zip(recs, rows, strict=True):
        p, r, m = rec["prompt_token_ids"], rec["response_token_ids"], rec["response_mask"]
        assert row["input_ids"] == p + r
        assert row["labels"] == [IGNORE_INDEX] * len(p) + [
            t if k else IGNORE_INDEX for t, k in zip(r, m, strict=True)]
        assert row["num_tokens"] == len(p) + len(r)
        assert row["num_code_blocks"] == rec["num_code_blocks"]
        ends = [i for i, t in enumerate(row["input_ids"]) if t == end_code and i >= len(p)]
        assert len(ends) == rec["num_code_blocks"]
        assert all(row["labels"][i] == end_code for i in ends)  # generated: trainable
        masked = [t for t, lab in zip(r, row["labels"][len(p):], strict=True)
                  if lab == IGNORE_INDEX]
        assert masked == [t for t, k in zip(r, m, strict=True) if not k]
        assert chat_tokenizer.decode(masked) == "".join(
            "\n```output\n" + b["output"] + "\n```" for b in rec["code_blocks"])
        system_user = render_messages(Q, date=DATE)
        assert row["messages"] == [*system_user,
                                   {"role": "assistant", "content": THINK + rec["response_text"]}]
        assert chat_tokenizer.chat_prompt(system_user) + THINK == rec["prompt_text"]
        assert (row["trajectory_id"], row["question_id"], row["source"]) == (
            rec["id"], "q1", "unit")
    masks = res.report["masks"]
    assert masks["observation_tokens"] == sum(rec["response_mask"].count(0) for rec in recs)
    assert masks["trainable_tokens"] == sum(sum(rec["response_mask"]) for rec in recs)
    assert masks["prompt_tokens"] == sum(len(rec["prompt_token_ids"]) for rec in recs)


def test_train_on_observations_keeps_every_response_token(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    recs = _records(chat_tokenizer)
    src = write_jsonl(tmp_path / "r.jsonl", recs)
    res = build_sft([src], tmp_path / "out", tokenizer=build_tokenizer,
                    options=SFTOptions(train_on_observations=True))
    for rec, row in zip(recs, rows_of(res), strict=True):
        n = len(rec["prompt_token_ids"])
        assert row["labels"][:n] == [IGNORE_INDEX] * n
        assert row["labels"][n:] == rec["response_token_ids"]
    assert res.report["masks"]["observations_trained"] is True


def _spans(ids: list[int], labels: list[int]) -> list[tuple[bool, list[int]]]:
    """Runs of masked / trainable tokens."""
    pairs = zip(ids, labels, strict=True)
    return [(masked, [t for t, _ in run])
            for masked, run in groupby(pairs, key=lambda p: p[1] == IGNORE_INDEX)]


def test_text_only_traces_tokenized_piece_by_piece(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    one = cir_text([CODE, ANSWER], [OBS])
    two = cir_text([CODE, CODE2, ANSWER], [OBS, OBS2])
    system = render_messages(Q, date=DATE)[0]
    src = write_jsonl(tmp_path / "teacher.jsonl", [
        {"messages": [system, {"role": "user", "content": Q},
                      {"role": "assistant", "content": two}], "id": "m1"},
        {"question": "Where is Paris?", "response": one, "source": "teacher"},
        {"prompt": [{"role": "user", "content": "Paris?"}],
         "completion": [{"role": "assistant", "content": one}]},
    ])
    res = build_sft([src], tmp_path / "out", tokenizer=build_tokenizer)
    rows = rows_of(res)
    assert res.report["decode_mismatches"] == 0
    assert build_tokenizer.turn_end == "<|im_end|>"
    (end_code,) = chat_tokenizer.encode("<end_code>")
    for row in rows:
        prompt_msgs, assistant = row["messages"][:-1], row["messages"][-1]["content"]
        prompt_ids = chat_tokenizer.encode(chat_tokenizer.chat_prompt(prompt_msgs))
        n = len(prompt_ids)
        assert row["input_ids"][:n] == prompt_ids
        assert row["labels"][:n] == [IGNORE_INDEX] * n
        response = row["input_ids"][n:]
        assert chat_tokenizer.decode(response) == assistant + "<|im_end|>"
        observations = [s for s in parse(assistant) if s.kind == "output"]
        masked = [chat_tokenizer.decode(ids)
                  for masked, ids in _spans(response, row["labels"][n:]) if masked]
        assert masked == ["\n" + s.raw for s in observations]
        for t, lab in zip(response, row["labels"][n:], strict=True):
            assert lab in (IGNORE_INDEX, t)
        assert [lab for t, lab in zip(response, row["labels"][n:], strict=True)
                if t == end_code] == [end_code] * len(observations)
    assert rows[0]["trajectory_id"] == "m1"
    assert rows[1]["messages"][:2] == render_messages("Where is Paris?", date=DATE)
    assert rows[1]["source"] == "teacher" and rows[2]["source"] == "teacher"  # file stem
    assert rows[2]["messages"][0] == {"role": "user", "content": "Paris?"}


def test_load_dataset_reads_the_folder(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import datasets

    recs = _records(chat_tokenizer)
    src = write_jsonl(tmp_path / "r.jsonl", recs)
    out = tmp_path / "out"
    build_sft([src], out, tokenizer=build_tokenizer)
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["train"]
    train = ds["train"]
    assert train.column_names == SFT_SCHEMA.names
    assert train[0]["input_ids"] == recs[0]["prompt_token_ids"] + recs[0]["response_token_ids"]
    plain = datasets.load_dataset("parquet", data_files=str(out / "data" / "train-*.parquet"),
                                  split="train", cache_dir=str(tmp_path / "cache"))
    assert plain["labels"] == train["labels"]


def test_card_front_matter_matches_the_shards(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import datasets
    import yaml

    src = write_jsonl(tmp_path / "r.jsonl", _records(chat_tokenizer))
    out = tmp_path / "out"
    res = build_sft([src], out, tokenizer=build_tokenizer,
                    options=SFTOptions(license="cc-by-4.0"))
    text = (out / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-4.0"
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}]}]
    schema = pq.read_schema(res.shards[0])
    assert datasets.Features._from_yaml_list(meta["dataset_info"]["features"]) == \
        datasets.Features.from_arrow_schema(schema)
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 2
    assert res.fingerprint in body and build_tokenizer.sha256 in body
    assert "![Tokens per row](plots/num_tokens.png)" in body
    for name in ("build.json", "report.json", "plots/num_tokens.png", "plots/code_blocks.png"):
        assert (out / name).is_file()
    assert str(tmp_path) not in text + (out / "build.json").read_text()
    assert res.manifest["fingerprint"] == res.fingerprint


def test_shards_are_named_like_push_to_hub_and_stale_ones_go(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    recs = [trajectory(chat_tokenizer, f"Question {i}?", [CODE, ANSWER], [OBS], qid=f"q{i}")
            for i in range(5)]
    src = write_jsonl(tmp_path / "r.jsonl", recs)
    out = tmp_path / "out"
    res = build_sft([src], out, tokenizer=build_tokenizer, options=SFTOptions(shard_rows=2))
    assert [p.name for p in res.shards] == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]
    assert [pq.ParquetFile(p).metadata.num_rows for p in res.shards] == [2, 2, 1]
    res = build_sft([src], out, tokenizer=build_tokenizer, options=SFTOptions(shard_rows=4))
    assert sorted(p.name for p in (out / "data").iterdir()) == [
        "train-00000-of-00002.parquet", "train-00001-of-00002.parquet"]
    assert [r["question_id"] for r in rows_of(res)] == [f"q{i}" for i in range(5)]


def test_parquet_rollouts_give_the_same_shards_as_jsonl(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import pyarrow as pa

    recs = _records(chat_tokenizer)
    a = write_jsonl(tmp_path / "a" / "rollouts-00000-of-00001.jsonl", recs).parent
    b = tmp_path / "b"
    b.mkdir()
    pq.write_table(pa.Table.from_pylist(recs), b / "rollouts-00000-of-00001.parquet")
    ra = build_sft([a], tmp_path / "out-a", tokenizer=build_tokenizer)
    rb = build_sft([b], tmp_path / "out-b", tokenizer=build_tokenizer)
    assert ra.rows_out == rb.rows_out == 2
    assert ra.fingerprint == rb.fingerprint


def test_rollout_manifest_hash_is_in_the_provenance(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import hashlib
    import json

    d = write_jsonl(tmp_path / "run" / "rollouts-00000-of-00001.jsonl",
                    _records(chat_tokenizer)).parent
    manifest = {"format": "cirkit-rollouts", "trajectories": 2, "config": {
        "limits": {"max_code_blocks": 32}, "store_manifest_sha256": "ab" * 32}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    res = build_sft([d], tmp_path / "out", tokenizer=build_tokenizer)
    (entry,) = res.manifest["inputs"]
    assert entry["name"] == "run" and entry["rows"] == 2 and entry["kind"] == "trajectories"
    assert entry["rollouts_manifest_sha256"] == hashlib.sha256(
        (d / "manifest.json").read_bytes()).hexdigest()
    assert entry["store_manifest_sha256"] == "ab" * 32
    assert "ab" * 32 in (tmp_path / "out" / "README.md").read_text()


def test_a_failed_build_leaves_no_temporary_shard(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import pytest

    from cirkit.errors import InputError

    src = write_jsonl(tmp_path / "r.jsonl", _records(chat_tokenizer))
    with src.open("a") as f:  # a record, but not one a rollout writes
        f.write('{"id": "broken", "response_token_ids": "not ids"}\n')
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"r\.jsonl:3: cannot read a trajectory record"):
        build_sft([src], out, tokenizer=build_tokenizer,
                  options=SFTOptions(block_bytes=1, row_group_rows=1))
    assert list((out / "data").iterdir()) == []
