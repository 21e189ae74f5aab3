"""`cirkit validate` as a user runs it on a JSONL file of traces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cirkit.cir import wrap_observation
from cirkit.cli import validate

STEP = "<start_code>\n```python\nprint(web_search('x', num_result=2))\n```<end_code>\n" + \
    wrap_observation("hits") + "\n"
GOOD = "<think>\nSearch.\n" + STEP + "</think>\n\nParis."
BAD = "<think>\n<start_code>\n```python\nprint(1\n```<end_code>\n</think>\n"


def write(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(validate, [str(a) for a in args])


def test_all_good(tmp_path: Path) -> None:
    path = write(tmp_path, [
        {"id": "t1", "text": GOOD},
        {"id": "t2", "response_text": GOOD},
        {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                      {"role": "assistant", "content": GOOD}]},
    ])
    r = run(path)
    assert r.exit_code == 0, r.output
    assert "traces" in r.output and "3" in r.output and "invalid" in r.output


def test_bad_trace_is_reported_with_positions(tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "t1", "text": GOOD}, {"id": "t2", "text": BAD}])
    r = run(path)
    assert r.exit_code == 1
    lines = [x for x in r.output.splitlines() if "[t2]" in x]
    assert f"{path}:2 [t2] 4:6 error syntax_error:" in lines[0]
    assert any("code_without_output" in x for x in lines)
    assert any("no_final_answer" in x for x in lines)
    assert "[t1]" not in r.output
    assert "problems" in r.output and "syntax_error" in r.output.split("problems")[-1]


def test_malformed_lines_do_not_stop_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, [
        "{not json", {"id": "a", "text": GOOD}, [1, 2], {"id": "b", "other": 1}, "",
        {"id": "c", "text": BAD},
    ])
    r = run(path)
    assert r.exit_code == 1
    assert f"{path}:1: malformed line: not valid JSON" in r.output
    assert f"{path}:3: malformed line: expected a JSON object" in r.output
    assert f"{path}:4: malformed line: no trace" in r.output
    assert f"{path}:6 [c]" in r.output and "malformed lines" in r.output
    assert "Traceback" not in r.output


def test_json_output(tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "a", "text": GOOD}, "oops", {"id": "b", "text": BAD}])
    r = run(path, "--json")
    assert r.exit_code == 1
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows[0] == {"line": 1, "id": "a", "valid": True, "problems": []}
    assert rows[1]["line"] == 2 and "not valid JSON" in rows[1]["error"]
    assert rows[2]["valid"] is False
    first = rows[2]["problems"][0]
    assert (first["code"], first["line"], first["col"]) == ("syntax_error", 4, 6)


def test_field_and_limits(tmp_path: Path) -> None:
    path = write(tmp_path, [{"id": "a", "text": GOOD, "messages": []}])
    assert run(path, "--field", "text").exit_code == 0
    r = run(path, "--field", "messages")
    assert r.exit_code == 1 and "no assistant message" in r.output
    many = write(tmp_path, [{"text": "<think>\n" + STEP * 3 + "</think>\nA"}])
    assert run(many, "--max-code-blocks", "3").exit_code == 0
    r = run(many, "--max-code-blocks", "2")
    assert r.exit_code == 1 and "too_many_code_blocks" in r.output


def test_unfinished_and_dialect(tmp_path: Path) -> None:
    partial = write(tmp_path, [{"text": "<think>\n" + STEP + "Now visit."}])
    assert run(partial).exit_code == 1
    assert run(partial, "--unfinished").exit_code == 0
    r = run(partial, "--unfinished", "--dialect", "demo")
    assert r.exit_code == 0  # a warning only
    assert "4:7 warning dialect_mismatch: web_search()" in r.output


@pytest.mark.parametrize("args", [["missing.jsonl"], ["x.jsonl", "--field", "nope"]])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str]) -> None:
    r = CliRunner().invoke(validate, args)
    assert r.exit_code == 2 and "Traceback" not in r.output and "Error" in r.output


def test_odd_lines_are_reported_on_their_lines(tmp_path: Path) -> None:
    """Lines that are JSON but no object, and a lone surrogate escape (which JSON allows and
    Unicode does not), are each a malformed line with its file line, and the exit is 1."""
    path = write(tmp_path, [{"text": GOOD}, "[1, 2]", '"x"', "", "3",
                            '{"text": "<think>\\ud800</think>\\n\\nA"}', {"text": GOOD}])
    r = run(path, "--json")
    assert r.exit_code == 1
    lines = [json.loads(x) for x in r.output.splitlines()]
    assert [(x["line"], x.get("reason")) for x in lines if "error" in x] == [
        (2, "not_an_object"), (3, "not_an_object"), (5, "not_an_object"),
        (6, "lone_surrogate")]
    assert [x["line"] for x in lines if x.get("valid")] == [1, 7]
