"""Empty and odd inputs: a build of no row is an error (unless asked for), a line that holds
no JSON object or a lone surrogate escape is dropped by ``well_formed`` on its own file line,
never a crash, a silent skip, or a whole build lost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cirkit.datasets import BuildTokenizer, RLOptions, SFTOptions, build_rl, build_sft
from cirkit.errors import InputError
from cirkit.rollout import ChatTokenizer

from .conftest import ANSWER, CODE, OBS, cir_text, trajectory
from .test_sft import rows_of

#: Lines that are JSON but no object, and a lone surrogate escape (valid JSON, not Unicode).
ODD = ["[1, 2]", '"x"', "3", "null", '{"question": "Q\\ud800?", "response": "x"}']
ODD_REASONS = {"not_an_object": 4, "lone_surrogate": 1}


def _lines(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _well_formed(res: Any) -> dict[str, int]:
    return res.report["funnel"]["filters"][0]["reasons"]


def _reject_lines(path: Path) -> dict[int, str]:
    return {r["line"]: r["reason"] for r in map(json.loads, path.read_text().splitlines())
            if "line" in r}


def test_odd_lines_in_text_traces_are_counted_on_their_lines(
        build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    good = {"question": "Q?", "response": cir_text([CODE, ANSWER], [OBS])}
    src = _lines(tmp_path / "t.jsonl", [good, *ODD[:2], "", *ODD[2:]])
    res = build_sft([src], tmp_path / "out", tokenizer=build_tokenizer,
                    options=SFTOptions(reject=tmp_path / "rej.jsonl"))
    assert res.rows_out == 1 and res.rows_in == 6
    assert _well_formed(res) == ODD_REASONS
    assert _reject_lines(tmp_path / "rej.jsonl") == {
        2: "not_an_object", 3: "not_an_object", 5: "not_an_object", 6: "not_an_object",
        7: "lone_surrogate"}


def test_odd_lines_in_trajectories_are_counted_not_fatal(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    recs = [trajectory(chat_tokenizer, f"Q{i}?", [CODE, ANSWER], [OBS], qid=f"q{i}")
            for i in range(2)]
    lone = json.dumps(recs[1]).replace('"q1"', '"q1\\udc00"', 1)
    src = _lines(tmp_path / "roll" / "rollouts-00000-of-00001.jsonl",
                 [recs[0], *ODD[:4], "", lone, recs[1]])
    for block in (1 << 20, 1):  # one block, or a block per line: the same lines, the same count
        res = build_sft([src.parent], tmp_path / f"out-{block}", tokenizer=build_tokenizer,
                        options=SFTOptions(reject=tmp_path / "rej.jsonl", block_bytes=block))
        assert [r["question_id"] for r in rows_of(res)] == ["q0", "q1"]
        assert _well_formed(res) == ODD_REASONS
        assert _reject_lines(tmp_path / "rej.jsonl") == {
            2: "not_an_object", 3: "not_an_object", 4: "not_an_object", 5: "not_an_object",
            7: "lone_surrogate"}


def test_escaped_surrogate_pairs_read_the_same_as_utf8(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    rec = trajectory(chat_tokenizer, "Où est Zürich? 😀", [CODE, ANSWER], [OBS])
    a = tmp_path / "a" / "rollouts-00000-of-00001.jsonl"
    b = tmp_path / "b" / "rollouts-00000-of-00001.jsonl"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    b.write_text(json.dumps(rec, ensure_ascii=True) + "\n", encoding="utf-8")  # \ud83d\ude00
    ra = build_sft([a.parent], tmp_path / "out-a", tokenizer=build_tokenizer)
    rb = build_sft([b.parent], tmp_path / "out-b", tokenizer=build_tokenizer)
    assert ra.rows_out == rb.rows_out == 1
    assert ra.fingerprint == rb.fingerprint


@pytest.mark.parametrize("content", ["", "\n\n  \n"], ids=["empty", "blank-lines"])
def test_an_empty_input_file_is_refused_unless_allowed(
        build_tokenizer: BuildTokenizer, tmp_path: Path, content: str) -> None:
    src = tmp_path / "t.jsonl"
    src.write_text(content)
    for build in (build_sft, build_rl):
        out = tmp_path / f"out-{build.__name__}"
        with pytest.raises(InputError, match=r"t\.jsonl: holds no rows") as e:
            build([src], out, tokenizer=build_tokenizer)
        assert "--allow-empty" in (e.value.hint or "")
        assert not out.exists()
    res = build_sft([src], tmp_path / "sft", tokenizer=build_tokenizer,
                    options=SFTOptions(allow_empty=True))
    assert res.rows_out == 0 and len(res.shards) == 1
    res = build_rl([src], tmp_path / "rl", tokenizer=build_tokenizer,
                   options=RLOptions(allow_empty=True))
    assert res.rows_out == 0 and len(res.shards) == 1


def test_a_parquet_file_of_no_rows_is_refused(build_tokenizer: BuildTokenizer,
                                              tmp_path: Path) -> None:
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"question": pa.array([], pa.string()),
                             "response": pa.array([], pa.string())}), src)
    with pytest.raises(InputError, match=r"t\.parquet: holds no rows"):
        build_sft([src], tmp_path / "out", tokenizer=build_tokenizer)


def test_a_build_that_keeps_no_row_is_refused_and_writes_nothing(
        chat_tokenizer: ChatTokenizer, build_tokenizer: BuildTokenizer, tmp_path: Path) -> None:
    src = _lines(tmp_path / "t.jsonl", [{"question": "Q?", "text": "no think"}, *ODD])
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"no row left: all 6 input rows were dropped "
                                         r"\(4 well_formed: not_an_object, ") as e:
        build_sft([src], out, tokenizer=build_tokenizer,
                  options=SFTOptions(reject=tmp_path / "rej.jsonl"))
    assert "t.jsonl:2: expected a JSON object, got an array" in str(e.value)
    assert "--reject" in (e.value.hint or "") and "--allow-empty" in (e.value.hint or "")
    assert not out.exists()
    assert len((tmp_path / "rej.jsonl").read_text().splitlines()) == 6  # why, row by row
    res = build_sft([src], out, tokenizer=build_tokenizer, options=SFTOptions(allow_empty=True))
    assert res.rows_in == 6 and res.rows_out == 0


def test_rl_counts_odd_lines_and_refuses_a_build_of_none(build_tokenizer: BuildTokenizer,
                                                         tmp_path: Path) -> None:
    q = _lines(tmp_path / "q.jsonl", [{"question": "Q?", "answer": "A"}, *ODD[:4],
                                      '{"question": "Q\\ud800?", "answer": "B"}'])
    res = build_rl(q, tmp_path / "rl", tokenizer=build_tokenizer,
                   options=RLOptions(reject=tmp_path / "rej.jsonl"))
    assert res.rows_out == 1 and res.rows_in == 6
    assert _well_formed(res) == ODD_REASONS
    assert _reject_lines(tmp_path / "rej.jsonl")[6] == "lone_surrogate"
    none = _lines(tmp_path / "none.jsonl", [{"question": "Q?"}, {"question": "R?"}])
    with pytest.raises(InputError, match=r"all 2 input rows were dropped \(2 has_ground_truth"):
        build_rl(none, tmp_path / "rl-none", tokenizer=build_tokenizer)
    assert not (tmp_path / "rl-none").exists()
