"""cirkit.inputs: every shape of a user's file it accepts, and every way a file can be unusable.

The tables below are the spec. Question files in the publishers' own formats (SimpleQA's and
Frames' CSV/TSV, Search-R1's JSONL and parquet, verl parquet) are small fixtures written here
from a few of their rows; bad files each give one InputError naming the file, the line and
the field. ``cirkit validate`` and ``cirkit build sft`` read text-only traces through one
adapter, and the last test checks they agree on every row shape.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from cirkit.cir import TOOLS, wrap_observation
from cirkit.cli import cli
from cirkit.datasets import SFTOptions, build_sft
from cirkit.errors import InputError
from cirkit.inputs import (
    CALL_TOOL_NAMES,
    QUESTION_FIELDS,
    file_columns,
    iter_row_blocks,
    iter_rows,
    parse_trace,
    read_calls,
    read_questions,
    read_traces,
)
from cirkit.rollout import ChatTokenizer, load_questions

# -- fixtures in the publishers' formats ------------------------------------------------------

# SimpleQA: OpenAI, MIT license (github.com/openai/simple-evals). Two rows of
# simple_qa_test_set.csv; the original names the columns `metadata, problem, answer`, a
# widespread mirror `metadata, question, true_answer`.
SIMPLEQA = [
    ("{'topic': 'Science and technology', 'answer_type': 'Person', 'urls': "
     "['https://en.wikipedia.org/wiki/IEEE_Frank_Rosenblatt_Award', "
     "'https://ieeexplore.ieee.org/author/37271220500']}",
     "Who received the IEEE Frank Rosenblatt Award in 2010?", "Michio Sugeno"),
    ("{'topic': 'Science and technology', 'answer_type': 'Person', 'urls': "
     "['https://en.wikipedia.org/wiki/The_Oceanography_Society', "
     "'https://tos.org/jerlov-medal']}",
     "Who was awarded the Oceanography Society's Jerlov Award in 2018?", "Annick Bricaud"),
]
# Frames: Google, Apache-2.0 (huggingface.co/datasets/google/frames-benchmark). Two rows; the
# original is a TSV with an unnamed index column and `Prompt, Answer`, a mirror a CSV with
# `question, true_answer`.
FRAMES = [
    ("How many years earlier would Punxsutawney Phil have to be canonically alive to have "
     "made a Groundhog Day prediction in the same state as the US capitol?", "87",
     ["https://en.wikipedia.org/wiki/Punxsutawney_Phil",
      "https://en.wikipedia.org/wiki/United_States_Capitol"],
     "Numerical reasoning | Multiple constraints | Temporal reasoning"),
    ("As of August 1, 2024, which country were holders of the FIFA World Cup the last time "
     "the UEFA Champions League was won by a club from London?", "France",
     ["https://en.wikipedia.org/wiki/FIFA_World_Cup", "https://en.wikipedia.org/wiki/London"],
     "Tabular reasoning | Multiple constraints | Temporal reasoning"),
]
_LINKS = [f"wikipedia_link_{i}" for i in range(1, 11)] + ["wikipedia_link_11+"]


def _table(header: list[str], rows: list[list[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    w = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def simpleqa(question: str, answer: str) -> str:
    return _table(["metadata", question, answer], [list(r) for r in SIMPLEQA])


def frames(tsv: bool) -> str:
    rows = [[q, a, *(links + [""] * (11 - len(links))), kinds, repr(links)]
            for q, a, links, kinds in FRAMES]
    if tsv:
        return _table(["", "Prompt", "Answer", *_LINKS, "reasoning_types", "wiki_links"],
                      [[str(i), *r] for i, r in enumerate(rows)], "\t")
    return _table(["question", "true_answer", *_LINKS, "reasoning_types", "wiki_links"], rows)


def jsonl(*rows: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def parquet(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _empty_parquet() -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"question": pa.array([], pa.string())}), buf)
    return buf.getvalue()


EMPTY_PARQUET = _empty_parquet()


def write(tmp: Path, name: str, data: str | bytes | None) -> Path:
    path = tmp / name
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    elif isinstance(data, bytes):
        path.write_bytes(data)
    return path


# (file name, content, the questions read: (id or None for the text hash, question,
# ground truth, source, metadata))
SHAPES: list[Any] = [
    pytest.param("q.jsonl", jsonl(
        {"question_id": "a", "question": "Q1?", "ground_truth": "x", "source": "s"},
        {"id": 7, "prompt": "Q2?", "answer": ["y", "z"], "data_source": "d"},
        {"uid": "c", "problem": "Q3?", "gold": "w"},
        {"query": "Q4?", "target": "v"}), [
        ("a", "Q1?", "x", "s", {}), ("7", "Q2?", ["y", "z"], "d", {}),
        ("c", "Q3?", "w", "q", {}), (None, "Q4?", "v", "q", {})], id="cirkit-aliases"),
    pytest.param("nq.jsonl", jsonl(  # Search-R1's JSONL (NQ, HotpotQA...)
        {"id": "train_0", "question": "who sings does he love me", "golden_answers": [
            "Reba McEntire", "Linda Davis"]}), [
        ("train_0", "who sings does he love me", ["Reba McEntire", "Linda Davis"], "nq", {})],
        id="search-r1-jsonl"),
    pytest.param("simple_qa_test_set.csv", simpleqa("problem", "answer"), [
        (None, q, a, "simple_qa_test_set", {"topic": "Science and technology",
                                            "answer_type": "Person"}) for _, q, a in SIMPLEQA],
        id="simpleqa-original"),
    pytest.param("simple_qa_test_set.csv", simpleqa("question", "true_answer"), [
        (None, q, a, "simple_qa_test_set", {"topic": "Science and technology",
                                            "answer_type": "Person"}) for _, q, a in SIMPLEQA],
        id="simpleqa-mirror"),
    pytest.param("frames.tsv", frames(tsv=True), [
        (None, q, a, "frames", {"reasoning_types": k}) for q, a, _, k in FRAMES],
        id="frames-tsv"),
    pytest.param("frames.csv", frames(tsv=False), [
        (None, q, a, "frames", {"reasoning_types": k}) for q, a, _, k in FRAMES],
        id="frames-csv"),
    pytest.param("verl.parquet", parquet([
        {"data_source": "webwalker", "prompt": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Who wrote Hamlet?"}],
         "ability": "search", "reward_model": {
             "style": "rule", "ground_truth": "Shakespeare<|answer_split|>W. Shakespeare"},
         "extra_info": {"index": 0, "question_id": "h1"}},
        {"data_source": "webwalker", "prompt": [{"role": "user", "content": "Who wrote Faust?"}],
         "ability": "search", "reward_model": {"style": "rule", "ground_truth": "Goethe"},
         "extra_info": {"index": 1, "question_id": None}}]), [
        ("h1", "Who wrote Hamlet?", ["Shakespeare", "W. Shakespeare"], "webwalker", {}),
        ("1", "Who wrote Faust?", "Goethe", "webwalker", {})], id="verl-parquet"),
    pytest.param("nq_train.parquet", parquet([  # Search-R1's parquet keeps its own columns
        {"id": "train_0", "question": "who sings does he love me",
         "golden_answers": ["Reba McEntire"], "data_source": "nq",
         "prompt": [{"role": "user", "content": "Answer the given question. Question: who "
                                                "sings does he love me"}],
         "reward_model": {"style": "rule", "ground_truth": {"target": ["Reba McEntire"]}},
         "extra_info": {"index": 0, "split": "train"}}]), [
        ("train_0", "who sings does he love me", ["Reba McEntire"], "nq", {})],
        id="search-r1-parquet"),
    pytest.param("rl.parquet", parquet([  # verl rows without a top-level answer
        {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Capital of "},
                                                 {"type": "text", "text": "Peru?"}]}],
         "reward_model": {"ground_truth": {"target": ["Lima"]}}}]), [
        (None, "Capital of Peru?", ["Lima"], "rl", {})], id="verl-content-parts"),
]


@pytest.mark.parametrize(("name", "content", "expected"), SHAPES)
def test_every_published_shape_reads_as_questions(tmp_path: Path, name: str, content: Any,
                                                   expected: list[Any]) -> None:
    got = read_questions(write(tmp_path, name, content))
    assert [(q.question, q.ground_truth, q.source) for q in got] == [
        (e[1], e[2], e[3]) for e in expected]
    for q, e in zip(got, expected, strict=True):
        assert q.id == (e[0] if e[0] is not None else read_questions_id(q.question))
        assert {k: q.metadata[k] for k in e[4]} == e[4]
    assert load_questions(tmp_path / name) == got  # the rollout package's public alias


def read_questions_id(text: str) -> str:
    from cirkit.inputs import question_id

    return question_id(text)


def test_simpleqa_metadata_is_parsed_never_run(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", _table(["metadata", "problem", "answer"], [
        ["{'topic': 'Art', 'urls': ['https://x']}", "Q1?", "a"],
        ["__import__('os').system('false')", "Q2?", "b"],
        ["{'a': " * 1000 + "1" + "}" * 1000, "Q3?", "c"],
    ]))
    first, second, third = read_questions(path)
    assert first.metadata == {"topic": "Art", "urls": ["https://x"]}
    assert second.metadata == {"metadata": "__import__('os').system('false')"}
    assert third.metadata["metadata"].startswith("{'a': {'a':")  # nested too deeply: kept


def test_ids_hash_the_text_so_a_csv_and_a_tsv_agree(tmp_path: Path) -> None:
    tsv = read_questions(write(tmp_path, "frames.tsv", frames(tsv=True)))
    csv_ = read_questions(write(tmp_path, "frames.csv", frames(tsv=False)))
    assert [q.id for q in tsv] == [q.id for q in csv_]
    assert all(q.id.startswith("q-") and len(q.id) == 18 for q in tsv)


# -- bad files: one InputError each, naming file, line and field -----------------------------

DIR = object()
# (file name, content; None: no file, DIR: a directory), message, line, field
BAD: list[Any] = [
    pytest.param("q.jsonl", b'{"question": "ok"}\n{"question": "caf\xe9"}\n',
                 "not UTF-8 (byte 18)", 2, None, id="invalid-utf8"),
    pytest.param("q.csv", b"question,answer\nok,1\ncaf\xe9,2\n", "not UTF-8 (byte 4)", 3,
                 None, id="invalid-utf8-csv"),
    pytest.param("q.jsonl", b'{"question": "ok"}\n\x00\x01\x02\x03', "a binary file, not "
                 "JSONL text (a NUL byte at byte 20 of the file)", 2, None, id="binary"),
    pytest.param("q.jsonl", b'{"question": "ok"}\n{question: "no"}\n', "not valid JSON "
                 "(Expecting property name enclosed in double quotes at column 2)", 2, None,
                 id="non-json-line"),
    pytest.param("q.jsonl", b'{"question": "ok"}\n["question"]\n',
                 "expected a JSON object, got an array", 2, None, id="not-an-object"),
    pytest.param("q.json", b'[{"question": "ok"}]\n', "expected a JSON object, got an array",
                 1, None, id="json-array"),
    pytest.param("q.parquet", b'{"question": "ok"}\n', "not a parquet file: it looks like "
                 "JSONL (name it .jsonl)", None, None, id="fake-parquet"),
    pytest.param("q.parquet", b"PAR1 broken PAR1", "not a readable parquet file", None, None,
                 id="broken-parquet"),
    pytest.param("q.jsonl", b"PAR1\x00\x00\x00", "is a parquet file, not JSONL", None, None,
                 id="parquet-named-jsonl"),
    pytest.param("q.jsonl", b"\x1f\x8b\x08\x00\x00", "is gzip-compressed", None, None,
                 id="gzip"),
    pytest.param("q.jsonl", b"", "empty file", None, None, id="empty"),
    pytest.param("q.jsonl", b"\n \n", "no rows (only blank lines)", None, None, id="blank"),
    pytest.param("q.tsv", b"\tPrompt\tAnswer\n", "no rows (only a header)", None, None,
                 id="header-only"),
    pytest.param("q.parquet", EMPTY_PARQUET, "no rows",
                 None, None, id="empty-parquet"),
    pytest.param("q.jsonl", None, "no such file", None, None, id="missing"),
    pytest.param("q.jsonl", DIR, "is a directory, not a file", None, None, id="directory"),
    pytest.param("q.txt", "question\n", "unknown file type '.txt'", None, None,
                 id="unknown-suffix"),
    pytest.param("q.csv", "question,answer\nok,1,extra\n", "3 fields, the header has 2", 2,
                 None, id="csv-row-too-long"),
    pytest.param("q.csv", "question,question\na,b\n", "the header names column 'question' "
                 "twice", 1, "question", id="csv-duplicate-column"),
    pytest.param("q.csv", "id,answer\n1,x\n", "no question: none of the fields "
                 + ", ".join(QUESTION_FIELDS), 2, "question", id="no-question"),
    pytest.param("q.jsonl", jsonl({"question": 5}), "field 'question' is not text", 1,
                 "question", id="question-not-text"),
    pytest.param("q.parquet", parquet([{"prompt": [{"role": "system", "content": "s"}]}]),
                 "field 'prompt' holds no user message", 1, "prompt", id="verl-no-user"),
    pytest.param("q.jsonl", jsonl({"id": "a", "question": "x"}, {"id": "a", "question": "y"}),
                 "repeats question id 'a' of line 1", 2, "id", id="duplicate-id"),
]


def _bad_file(tmp: Path, name: str, content: Any) -> Path:
    if content is DIR:
        (tmp / name).mkdir()
        return tmp / name
    return write(tmp, name, content)


@pytest.mark.parametrize(("name", "content", "message", "line", "field"), BAD)
def test_a_bad_file_is_one_input_error(tmp_path: Path, name: str, content: Any, message: str,
                                       line: int | None, field: str | None) -> None:
    path = _bad_file(tmp_path, name, content)
    with pytest.raises(InputError) as e:
        read_questions(path)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert e.value.message.startswith(where + message), e.value.message
    assert (e.value.path, e.value.line, e.value.field) == (path, line, field)
    assert e.value.hint or message == "no such file"


FILE_LEVEL = [p for p in BAD if p.id in (
    "binary", "fake-parquet", "broken-parquet", "parquet-named-jsonl", "gzip", "empty",
    "blank", "missing", "directory")]


@pytest.mark.parametrize(("name", "content", "message", "line", "field"), FILE_LEVEL)
def test_every_reader_says_a_file_level_problem_the_same_way(
        tmp_path: Path, name: str, content: Any, message: str, line: int | None,
        field: str | None) -> None:
    path = _bad_file(tmp_path, name, content)
    for read in (lambda: read_calls(path, num_results=5), lambda: list(read_traces(path)),
                 lambda: list(iter_rows(path))):
        with pytest.raises(InputError, match=re.escape(message)):
            read()
    r = CliRunner().invoke(cli, ["validate", str(path)])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_row_problems_can_be_collected_instead(tmp_path: Path) -> None:
    path = write(tmp_path, "t.jsonl", b'{"a": 1}\n{oops\n\n"x"\n{"a": 2}\n{"a": "\xff"}\n')
    bad: list[InputError] = []
    rows = list(iter_rows(path, on_bad_row=bad.append))
    assert rows == [(1, {"a": 1}), (5, {"a": 2})]
    assert [(e.line, e.message.removeprefix(f"{path}:{e.line}: ")) for e in bad] == [
        (2, "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (4, "expected a JSON object, got a string"), (6, "not UTF-8 (byte 8)")]


def test_big_jsonl_streams_in_bounded_blocks(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    n = 20000
    path.write_text("".join(json.dumps({"i": i, "pad": "x" * (i % 50)}) + "\n"
                            for i in range(n)) + '{"i": "last, no newline"}', encoding="utf-8")
    blocks = list(iter_row_blocks(path, block_bytes=1 << 16))
    assert len(blocks) > 5
    assert max(b.nbytes for b in blocks) <= (1 << 16) + 100
    assert sum(b.nbytes for b in blocks) == path.stat().st_size
    rows = [r for b in blocks for r in b.rows]
    assert [line for line, _ in rows] == list(range(1, n + 2))
    assert rows[-1][1] == {"i": "last, no newline"}


def test_csv_streams_too_and_counts_lines_of_multiline_fields(tmp_path: Path) -> None:
    body = [["Q?\nsecond line", "a"]] + [[f"Q{i}?", str(i)] for i in range(3000)]
    path = write(tmp_path, "q.csv", _table(["question", "answer"], body))
    blocks = list(iter_row_blocks(path, block_bytes=4096))
    assert len(blocks) > 3
    rows = [r for b in blocks for r in b.rows]
    assert rows[0] == (2, {"question": "Q?\nsecond line", "answer": "a"})
    assert rows[1][0] == 4  # the first record took lines 2 and 3
    assert sum(b.nbytes for b in blocks) == path.stat().st_size


def test_file_columns_reads_no_further_than_it_must(tmp_path: Path) -> None:
    assert file_columns(write(tmp_path, "a.jsonl", '\n{oops\n{"x": 1, "y": 2}\n')) == ["x", "y"]
    assert file_columns(write(tmp_path, "a.parquet", parquet([{"p": 1}]))) == ["p"]
    assert file_columns(write(tmp_path, "a.tsv", "\tPrompt\n0\tq\n")) == ["", "Prompt"]
    with pytest.raises(InputError, match="not a parquet file"):
        file_columns(write(tmp_path, "b.parquet", "x,y\n"))


# -- calls files ----------------------------------------------------------------------------

def test_every_tool_spelling_of_the_table_is_a_call_name(tmp_path: Path) -> None:
    assert set(CALL_TOOL_NAMES) == {
        *(s for t in TOOLS.values() for s in t.spellings), "search", "visit"}
    rows = [{"tool": name, "url": "https://a.org/x"} if tool == "web_visit" else
            {"tool": name, "query": "q"} for name, tool in CALL_TOOL_NAMES.items()]
    got = read_calls(write(tmp_path, "c.jsonl", jsonl(*rows)), num_results=4)
    assert got == [(tool, {"url": "https://a.org/x"} if tool == "web_visit" else
                    {"query": "q", "num_results": 4}) for tool in CALL_TOOL_NAMES.values()]


@pytest.mark.parametrize("keyword", TOOLS["web_search"].params[1].keywords)
def test_every_count_spelling_is_read(tmp_path: Path, keyword: str) -> None:
    path = write(tmp_path, "c.jsonl", jsonl({"query": "q", keyword: 3}, {"query": "r"}))
    assert read_calls(path, num_results=5) == [
        ("web_search", {"query": "q", "num_results": 3}),
        ("web_search", {"query": "r", "num_results": 5})]


def test_every_bad_call_is_reported_and_none_returned(tmp_path: Path) -> None:
    path = write(tmp_path, "c.jsonl", b"".join(line + b"\n" for line in [
        b'{"query": "fine"}', b'{"quer": "typo"}', b"not json", b'{"tool": "browse", "url": "u"}',
        b'{"query": "q", "num_results": 0}', b'{"query": "q", "url": "u"}',
        b'{"tool": "visit", "query": "q"}', b'{"query": "q", "num_result": 2, "max_result": 3}',
        b"[1]"]))
    with pytest.raises(InputError) as e:
        read_calls(path, num_results=5)
    assert e.value.path == path and e.value.line is None
    assert e.value.message.splitlines() == [
        f"{path}: 8 bad line(s), nothing recorded:",
        "  line 2: needs a string 'query' (search) or 'url' (visit)",
        "  line 3: not valid JSON (Expecting value at column 1)",
        "  line 4: unknown tool 'browse': expected one of search, visit, visit_webpage, "
        "web_search, web_visit",
        "  line 5: result count must be a positive int, not 0",
        '  line 6: holds arguments of search and visit: say which with "tool"',
        "  line 7: needs a string 'url' (visit)",
        "  line 8: got more than one result count",
        "  line 9: expected a JSON object, got an array",
    ]


def test_the_demo_reads_calls_from_the_input_layer() -> None:
    import cirkit.demo

    assert cirkit.demo.read_calls is read_calls


# -- text-only traces: one adapter for `cirkit validate` and `cirkit build sft` ---------------

STEP = ("<start_code>\n```python\nprint(web_search('x', num_result=2))\n```<end_code>\n"
        + wrap_observation("hits") + "\n")
GOOD = "<think>\nSearch.\n" + STEP + "</think>\n\nParis."
SYS = {"role": "system", "content": "You answer."}
USER = {"role": "user", "content": "Where is Paris?"}
ASSISTANT = {"role": "assistant", "content": GOOD}

# (row or raw line, the reason `build sft` gives (None: usable), whether a trace is found)
TRACES: list[tuple[Any, str | None, bool]] = [
    ({"question": "Where is Paris?", "response": GOOD, "answer": "Paris"}, None, True),
    ({"prompt": "Where is Paris?", "completion": GOOD}, None, True),
    ({"question": "Where is Paris?", "response_text": GOOD}, None, True),
    ({"question": "Where is Paris?", "text": GOOD}, None, True),
    ({"messages": [SYS, USER, ASSISTANT]}, None, True),
    ({"messages": [USER, {"role": "assistant", "content": [{"type": "text", "text": GOOD}]}]},
     None, True),
    ({"prompt": [USER], "completion": [ASSISTANT]}, None, True),
    ({"prompt": [SYS, USER], "response": GOOD}, None, True),
    ({"text": GOOD}, "no_question", True),
    ({"response_text": GOOD, "question": ""}, "no_question", True),
    ({"messages": [SYS, ASSISTANT]}, "no_user_message", True),
    ({"prompt": [SYS], "response": GOOD}, "no_user_message", True),
    ({"prompt": "Where is Paris?", "question": "(prompt wins)", "completion": GOOD}, None, True),
    ({"prompt": [1, 2], "response": GOOD}, "messages_not_a_list", True),
    ({"question": "Where is Paris?"}, "no_trace", False),
    ({"other": 1}, "no_trace", False),
    ({"messages": "hi"}, "messages_not_a_list", False),
    ({"messages": [USER]}, "no_assistant_message", False),
    ({"messages": [USER, {"role": "assistant", "content": 5}]}, "message_content_not_text",
     False),
    ({"question": "q", "completion": [USER]}, "no_assistant_message", False),
    ({"question": "q", "response": 5}, "messages_not_a_list", False),
    ("{not json", "not_json", False),
    ("[1, 2]", "not_an_object", False),
]


def _trace_line(row: Any) -> str:
    return row if isinstance(row, str) else json.dumps(row)


@pytest.mark.parametrize(("row", "reason", "has_text"), TRACES)
def test_every_trace_shape(tmp_path: Path, row: Any, reason: str | None,
                           has_text: bool) -> None:
    first = _trace_line({"prompt": [USER], "completion": [ASSISTANT]})  # one readable line
    _, t = read_traces(write(tmp_path, "t.jsonl", first + "\n" + _trace_line(row) + "\n"))
    assert (t.reason, t.text is not None, t.line) == (reason, has_text, 2)
    t = replace(t, line=1)
    if has_text:
        assert t.text == GOOD
    if t.usable:
        assert t.question == "Where is Paris?"
    if isinstance(row, dict):
        assert parse_trace(row, line=1) == t


def test_validate_and_build_sft_agree_on_every_row(chat_tokenizer: ChatTokenizer,
                                                   tmp_path: Path) -> None:
    lines = [_trace_line({**r, "id": f"r{i}"} if isinstance(r, dict) else r)
             for i, (r, _, _) in enumerate(TRACES)]
    src = write(tmp_path, "teacher.jsonl", "\n".join(lines) + "\n")
    res = build_sft([src], tmp_path / "sft", tokenizer=chat_tokenizer.name,
                    options=SFTOptions(reject=tmp_path / "rejects.jsonl"))
    dropped = {r["trajectory_id"]: r["reason"] for r in map(
        json.loads, (tmp_path / "rejects.jsonl").read_text().splitlines())
        if r["filter"] == "well_formed"}
    runner = CliRunner()
    for i, (line, (_, reason, has_text)) in enumerate(zip(lines, TRACES, strict=True)):
        build_says = dropped.get(f"r{i}", dropped.get(str(i + 1)))
        # an unreadable line follows a readable one: a file of nothing else is refused whole
        text = line + "\n" if isinstance(TRACES[i][0], dict) else lines[0] + "\n" + line + "\n"
        one = write(tmp_path, f"row{i}.jsonl", text)
        out = runner.invoke(cli, ["validate", str(one), "--json"]).stdout
        as_json = json.loads(out.splitlines()[-1])
        human = runner.invoke(cli, ["validate", str(one)]).output
        if has_text:  # validate checks it, and says when build sft cannot use it
            assert "error" not in as_json and as_json["valid"], line
            found = re.search(r"not buildable\s*│\s*1 (\w+)", human)
            validate_says = found.group(1) if found else None
        else:
            validate_says = as_json["reason"]
            assert "malformed line" in human
        assert validate_says == build_says == reason, line
    assert res.report["funnel"]["rows_in"] == len(TRACES)
    usable = sum(1 for _, reason, _ in TRACES if reason is None)
    assert res.report["funnel"]["filters"][0]["removed"] == len(TRACES) - usable


def test_build_rl_takes_the_benchmarks_as_published(chat_tokenizer: ChatTokenizer,
                                                    tmp_path: Path) -> None:
    qa = write(tmp_path, "simple_qa_test_set.csv", simpleqa("problem", "answer"))
    tsv = write(tmp_path, "frames.tsv", frames(tsv=True))
    ev = write(tmp_path, "frames_test_set.csv", frames(tsv=False))
    r = CliRunner().invoke(cli, ["build", "rl", str(qa), str(tsv), "--tokenizer",
                                 chat_tokenizer.name, "--out", str(tmp_path / "rl"),
                                 "--exclude-eval", str(ev)])
    assert r.exit_code == 0, r.output
    rows = pq.read_table(tmp_path / "rl" / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert [(x["data_source"], x["reward_model"]["ground_truth"]) for x in rows] == [
        ("simple_qa_test_set", [a]) for _, _, a in SIMPLEQA]
    assert rows[0]["prompt"][-1]["content"] == SIMPLEQA[0][1]
    build = json.loads((tmp_path / "rl" / "build.json").read_text())
    assert build["funnel"]["rows_in"] == 4 and build["eval_sets"] == ["frames_test_set.csv"]


@pytest.mark.parametrize("content", [b"{not json\n", b'{"text": "caf\xe9"}\n', b"[1, 2]\n"])
def test_a_trace_file_without_one_readable_line_is_refused_whole(tmp_path: Path,
                                                                  content: bytes) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(content * 3)
    with pytest.raises(InputError, match=r"t\.jsonl: not one line can be read \(line 1: ") as e:
        list(read_traces(path))
    assert e.value.hint and e.value.path == path


def test_a_lone_surrogate_escape_is_a_bad_row_on_its_own_line(tmp_path: Path) -> None:
    """JSON allows ``"\\ud800"``; Unicode text does not (it can never be written as UTF-8).
    The line is refused with its code, on its line, never read as a string that breaks a
    later step; a pair (how ``ensure_ascii`` writes an emoji) is one character."""
    path = write(tmp_path, "t.jsonl", b'{"a": "\\ud83d\\ude00"}\n\n{"a": "x\\ud800"}\n'
                                      b'{"a": "\\\\ud800"}\n{"a": "\\udc00", "b": NaN}\n')
    bad: list[InputError] = []
    rows = list(iter_rows(path, on_bad_row=bad.append))
    assert rows == [(1, {"a": "\U0001f600"}), (4, {"a": "\\ud800"})]
    assert [(e.line, getattr(e, "code", None)) for e in bad] == [
        (3, "lone_surrogate"), (5, "lone_surrogate")]
    assert bad[0].message == (f"{path}:3: a lone surrogate escape \\ud800 at column 9: not "
                              "valid Unicode text")
    with pytest.raises(InputError, match=r"t\.jsonl:3: a lone surrogate escape"):
        list(iter_rows(path))
    traces = list(read_traces(path))
    assert [(t.line, t.reason) for t in traces] == [
        (1, "no_trace"), (3, "lone_surrogate"), (4, "no_trace"), (5, "lone_surrogate")]


def test_questions_read_for_a_build_report_bad_lines_instead(tmp_path: Path) -> None:
    path = write(tmp_path, "q.jsonl", b'{"question": "Q?"}\n[1]\n{"question": "R\\ud800"}\n')
    with pytest.raises(InputError, match=r"q\.jsonl:2: expected a JSON object, got an array"):
        read_questions(path)
    bad: list[InputError] = []
    assert [q.question for q in read_questions(path, on_bad_row=bad.append)] == ["Q?"]
    assert [e.line for e in bad] == [2, 3]
    empty = write(tmp_path, "e.jsonl", b"")
    assert read_questions(empty, allow_empty=True) == []
