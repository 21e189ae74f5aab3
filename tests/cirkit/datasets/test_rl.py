"""RL rows: exactly verl's columns and types, eval questions excluded and counted."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cirkit.cir import render_messages
from cirkit.datasets import BuildTokenizer, RLOptions, build_rl, rl_schema
from cirkit.rollout import ChatTokenizer

from .conftest import DATE, write_jsonl
from .verl_like import verl_rows

QUESTIONS: list[dict[str, Any]] = [
    {"id": "a", "question": "What is the capital of France?", "answer": "Paris",
     "source": "geo"},
    {"id": "b", "question": "Who painted The Night Watch?", "answer": "Rembrandt"},
    {"id": "c", "question": "Which river flows through Paris?"},
    {"id": "d", "question": "what is the capital of France", "answer": "Paris"},
    {"id": "e", "question": "How tall is Mount Everest?", "answer": "8849 m"},
    {"id": "f", "question": "Describe " + "the city of Paris and its history " * 80,
     "answer": "long"},
]


def _eval_csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["metadata", "problem", "answer"])
        w.writeheader()
        w.writerow({"metadata": "{}", "problem": "How tall is mount Everest", "answer": "x"})
        w.writerow({"metadata": "{}", "problem": "How tall is mount Everest", "answer": "x"})
        w.writerow({"metadata": "{}", "problem": "Unrelated?", "answer": "y"})
    return path


def _build(tok: BuildTokenizer, tmp: Path, rows: list[dict[str, Any]] = QUESTIONS,
           **opts: Any) -> Any:
    q = write_jsonl(tmp / "questions.jsonl", rows)
    options = RLOptions(exclude_eval=(_eval_csv(tmp / "simpleqa.csv"),),
                        max_prompt_tokens=1500, reject=tmp / "rejects.jsonl", **opts)
    return build_rl(q, tmp / "rl", tokenizer=tok, options=options)


def test_rows_have_exactly_verls_columns_and_types(
        build_tokenizer: BuildTokenizer, chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    res = _build(build_tokenizer, tmp_path)
    (shard,) = res.shards
    assert shard.name == "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    assert table.schema.remove_metadata() == rl_schema("list")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model",
                                  "extra_info", "agent_name"]
    assert table.schema.field("reward_model").type == pa.struct(
        [("style", pa.string()), ("ground_truth", pa.list_(pa.string()))])
    rows = table.to_pylist()
    assert [r["extra_info"]["question_id"] for r in rows] == ["a", "b"]
    a = rows[0]
    messages = render_messages(QUESTIONS[0]["question"], date=DATE, dialect="card",
                               max_code_blocks=32)
    assert a["prompt"] == messages
    assert a["data_source"] == "geo" and rows[1]["data_source"] == "questions"
    assert a["ability"] == "search"
    assert a["reward_model"] == {"style": "rule", "ground_truth": ["Paris"]}
    assert [r["agent_name"] for r in rows] == ["cir_agent", "cir_agent"]
    assert a["extra_info"] == {
        "index": 0, "split": "train", "question_id": "a", "question": QUESTIONS[0]["question"],
        "num_prompt_tokens": len(chat_tokenizer.encode(chat_tokenizer.chat_prompt(messages)))}
    assert rows[1]["extra_info"]["index"] == 1


def test_funnel_counts_eval_exclusion_and_long_prompts(
        build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    res = _build(build_tokenizer, tmp_path)
    funnel = res.report["funnel"]
    assert {f["name"]: f["reasons"] for f in funnel["filters"]} == {
        "well_formed": {}, "control_tokens": {}, "has_ground_truth": {"no_ground_truth": 1},
        "eval_overlap": {"in_eval_set": 1},
        "duplicate": {"duplicate_question": 1}, "prompt_too_long": {"prompt_too_long": 1}}
    assert (funnel["rows_in"], funnel["rows_out"]) == (6, 2)
    assert res.report["eval_excluded"] == 1
    rejects = [json.loads(x) for x in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["question_id"], r["reason"]) for r in rejects] == [
        ("c", "no_ground_truth"), ("d", "duplicate_question"), ("e", "in_eval_set"),
        ("f", "prompt_too_long")]
    build = json.loads((tmp_path / "rl" / "build.json").read_text())
    assert build["limits"] == {"max_prompt_tokens": 1500, "max_response_tokens": 16384,
                               "max_total_tokens": 32768, "max_code_blocks": 32}
    assert build["eval_sets"] == ["simpleqa.csv"]
    readme = (tmp_path / "rl" / "README.md").read_text()
    assert "max_response_tokens 16384" in readme and "max_total_tokens 32768" in readme
    assert "data.max_prompt_length=1500" in readme


def test_ground_truth_is_a_list_whatever_the_answers_so_builds_concatenate(
        build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    one = _build(build_tokenizer, tmp_path / "one", [{"id": "a", "question": "Q1?",
                                                      "answer": "x"}])
    several = _build(build_tokenizer, tmp_path / "several",
                     [{"id": "b", "question": "Q2?", "answer": ["y", "z"]}])
    tables = [pq.read_table(r.shards[0]) for r in (one, several)]
    assert tables[0].schema.remove_metadata() == tables[1].schema.remove_metadata()
    both = pa.concat_tables(tables)
    assert [r["ground_truth"] for r in both.column("reward_model").to_pylist()] == [
        ["x"], ["y", "z"]]
    assert one.manifest["ground_truth_type"] == several.manifest["ground_truth_type"] == "list"


def test_target_format_data_source_and_agent_name_options(
        build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"id": "a", "question": "Q1?", "answer": "x"},
                                  {"id": "b", "question": "Q2?", "answer": ["y", "z"]}]
    res = _build(build_tokenizer, tmp_path, rows, ground_truth_format="target",
                 data_source="nq", agent_name="my_loop")
    table = pq.read_table(res.shards[0])
    assert table.schema.remove_metadata() == rl_schema("target")
    got = table.to_pylist()
    assert [r["reward_model"]["ground_truth"] for r in got] == [{"target": ["x"]},
                                                               {"target": ["y", "z"]}]
    assert {r["data_source"] for r in got} == {"nq"}
    assert {r["agent_name"] for r in got} == {"my_loop"}
    assert res.manifest["ground_truth_type"] == "target"


def test_search_r1_rows_keep_their_golden_answers(build_tokenizer: BuildTokenizer,
                                                  tmp_path: Path) -> None:
    """Search-R1's files: ``golden_answers`` in its JSONL, ``{"target": [...]}`` in its
    parquet's ``reward_model``; both are ground truths, never ``no_ground_truth``."""
    jsonl = [{"id": "train_0", "question": "who wrote hamlet?",
              "golden_answers": ["Shakespeare", "William Shakespeare"], "data_source": "nq"}]
    res = _build(build_tokenizer, tmp_path / "j", jsonl)
    assert res.rows_out == 1
    (row,) = pq.read_table(res.shards[0]).to_pylist()
    assert row["reward_model"]["ground_truth"] == ["Shakespeare", "William Shakespeare"]
    assert row["data_source"] == "nq"
    parquet = tmp_path / "search_r1.parquet"
    pq.write_table(pa.Table.from_pylist([{
        "id": "train_1", "question": "capital of peru?", "data_source": "hotpotqa",
        "reward_model": {"style": "rule", "ground_truth": {"target": ["Lima"]}}}]), parquet)
    res = build_rl(parquet, tmp_path / "p", tokenizer=build_tokenizer,
                   options=RLOptions(max_prompt_tokens=1500))
    assert res.rows_out == 1
    (row,) = pq.read_table(res.shards[0]).to_pylist()
    assert row["reward_model"]["ground_truth"] == ["Lima"]


def test_an_unknown_ground_truth_format_is_refused_before_writing(
        build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    import pytest

    from cirkit.errors import CirkitError

    with pytest.raises(CirkitError, match="ground truth format") as e:
        _build(build_tokenizer, tmp_path, ground_truth_format="string")
    assert e.value.hint and "list, target" in e.value.hint
    assert not (tmp_path / "rl").exists()


def test_verl_reads_the_rows_as_they_are(build_tokenizer: BuildTokenizer,
                                         chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    res = _build(build_tokenizer, tmp_path)
    hf = AutoTokenizer.from_pretrained(chat_tokenizer.name, local_files_only=True)
    rows = verl_rows(res.shards, hf, cache_dir=tmp_path / "cache", max_prompt_length=1500)
    assert len(rows) == res.rows_out == 2
    for row in rows:
        assert row["raw_prompt"][0]["role"] == "system"
        assert len(row["input_ids"]) == row["extra_info"]["num_prompt_tokens"]
        assert row["reward_model"]["style"] == "rule" and row["data_source"]
    assert [r["index"] for r in rows] == [0, 1]
    # verl's own overlong filter at the same limit keeps every row the build kept
    assert len(verl_rows(res.shards, hf, cache_dir=tmp_path / "cache",
                         max_prompt_length=max(r["extra_info"]["num_prompt_tokens"]
                                               for r in rows))) == 2
