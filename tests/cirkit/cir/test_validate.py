"""The validator: one minimal trace per problem code, every problem reported, dialects."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit.cir import (
    PROBLEM_CODES,
    Problem,
    continuation,
    detect_dialect,
    is_valid,
    validate,
    wrap_observation,
)


def code(body: str) -> str:
    return "<start_code>\n```python\n" + body + "\n```<end_code>"


def step(body: str = "print(1)", obs: str = "1") -> str:
    """A code block followed by its observation, exactly as a rollout appends it."""
    return code(body) + "\n" + wrap_observation(obs) + "\n"


END = "</think>\n\nThe answer is 1."
GOOD = "<think>\nLet me check.\n" + step() + END

# code -> (trace, validate() keyword arguments)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "unclosed_code": (step() + "<start_code>\n```python\nprint(2)\n" + END, {}),
    "missing_python_fence": ("<start_code>\nprint(1)\n<end_code>\n```output\n1\n```\n" + END,
                             {}),
    "missing_closing_fence": (
        "<start_code>\n```python\nprint(1)\n<end_code>\n```output\n1\n```\n" + END, {}),
    "stray_end_code": ("Done <end_code>\n" + step() + END, {}),
    "empty_code": ("<start_code>\n```python\n```<end_code>\n```output\n\n```\n" + END, {}),
    "syntax_error": (step("print(1") + END, {}),
    "code_without_output": (code("print(1)") + "\n" + END, {}),
    "output_without_code": ("Text.\n" + wrap_observation("1") + "\n" + step() + END, {}),
    "unclosed_output": (code("print(1)") + "\n```output\n1\n" + END, {}),
    "code_after_think": (step() + END + "\n" + code("print(2)"), {}),
    "unclosed_think": (step() + "I stop here.", {}),
    "no_final_answer": (step() + "</think>\n \n", {}),
    "unexpected_think_tag": ("<think>\n<think>\n" + step() + END, {}),
    "too_many_code_blocks": (step() * 3 + END, {"max_code_blocks": 2}),
    "no_code": ("<think>\nI know this.\n</think>\nParis", {}),
    "output_separator": (code("print(1)") + "\n\n" + wrap_observation("1") + "\n" + END, {}),
    "unknown_tool_call": (step("print(google_search('x'))") + END, {}),
    "unknown_tool_argument": (step("print(web_search('x', limit=3))") + END, {}),
    "mixed_dialect": (step("print(web_visit('u'))") + step("print(visit_webpage('u'))") + END,
                      {}),
    "dialect_mismatch": (step("print(visit_webpage('u'))") + END, {"dialect": "card"}),
}


def codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in problems]


def test_good_trace_has_no_problem() -> None:
    assert validate(GOOD) == []
    assert is_valid(validate(GOOD))


def test_every_code_has_a_case() -> None:
    assert set(CASES) == set(PROBLEM_CODES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_problem_code(name: str) -> None:
    trace, kwargs = CASES[name]
    problems = validate(trace, **kwargs)
    assert codes(problems) == [name], problems  # exactly this problem, reported once
    severity = PROBLEM_CODES[name][0]
    assert problems[0].severity == severity
    assert is_valid(problems) == (severity == "warning")


def test_all_problems_reported_with_offsets() -> None:
    a = "<start_code>\n```python\nx = 1\nprint(x +)\n```<end_code>"   # syntax error, no output
    b = "\n<start_code>\nprint(2)\n<end_code>"                          # no python fence
    c = "\n" + step("   ")                                              # empty code
    text = a + b + c + "</think>\n"                                     # no final answer
    problems = validate(text)
    got = [(p.code, p.offset, p.line, p.col) for p in problems]
    syntax_at = text.index("x +)") + 3
    assert got == [
        ("syntax_error", syntax_at, 4, 10),
        ("code_without_output", len(a), 5, 14),
        ("missing_python_fence", len(a) + 1, 6, 1),
        ("empty_code", len(a + b) + 1, 9, 1),
        ("no_final_answer", len(text) - 1, 16, 9),
    ]
    assert all(p.message for p in problems)
    assert problems[0].to_json()["code"] == "syntax_error"


def test_syntax_error_line_is_the_trace_line() -> None:
    text = "<think>\nfirst\nsecond\n" + step("a = 1\nb = 2\nif b\n    print(b)") + END
    (p,) = validate(text)
    assert p.code == "syntax_error" and p.line == 8
    assert text.splitlines()[p.line - 1] == "if b"


def test_unicode_columns_are_characters() -> None:
    (p,) = validate(step("é = 1\nunknown_tool(é)") + END)
    assert p.code == "unknown_tool_call" and (p.line, p.col) == (4, 1)
    (p,) = validate(step("é = 'ü'; unknown_tool(é)") + END)
    assert p.col == len("é = 'ü'; ") + 1


def test_unfinished_traces() -> None:
    partial = "<think>\nSearch.\n" + step() + "Now more.\n" + code("print(2)")
    assert validate(partial, finished=False) == []
    assert set(codes(validate(partial))) == {"code_without_output", "unclosed_think"}
    mid_block = "<think>\n" + step() + "<start_code>\n```python\nprint("
    assert validate(mid_block, finished=False) == []
    assert validate("<think>\nHmm <start_code>\n``", finished=False) == []
    # an earlier broken block is still an error in an unfinished trace
    broken = "<start_code>\n```python\nprint(1)\n" + step()
    assert codes(validate(broken, finished=False)) == ["unclosed_code"]


def test_defined_names_are_not_tool_calls() -> None:
    body = ("import json\nfrom math import sqrt as s\ndef f(a):\n    return helper(a)\n"
            "print(f(1), s(4), json.dumps({}), len([]))\nclass K: pass\nK()")
    assert codes(validate(step(body) + END)) == ["unknown_tool_call"]  # only helper()


def test_both_closing_forms_are_valid() -> None:
    own_line = "<start_code>\n```python\nprint(1)\n```\n<end_code>\n" + wrap_observation("1")
    assert validate(own_line + "\n" + END) == []


def test_max_code_blocks_boundary() -> None:
    text = step() * 2 + END
    assert validate(text, max_code_blocks=2) == []
    (p,) = validate(text, max_code_blocks=1)
    assert p.offset == len(step()) and "2 code blocks" in p.message


@pytest.mark.parametrize(("body", "expected"), [
    ("print(web_search('q', num_result=3))", "card"),
    ("print(web_visit('https://example.org'))", "card"),
    ("print(web_search('q', max_result=5))", "demo"),
    ("print(visit_webpage('https://example.org'))", "demo"),
    ("print(web_search('q', 3))", None),
    ("print(1)", None),
    ("print(visit_webpage('u'))\nprint(web_search('q', num_result=2))", "mixed"),
    ("visit_webpage('u'", None),  # code that does not parse says nothing
])
def test_detect_dialect(body: str, expected: str | None) -> None:
    assert detect_dialect(step(body) + END) == expected


def test_detect_dialect_ignores_the_answer() -> None:
    assert detect_dialect(step() + "</think>\n" + code("web_visit('u')")) is None


def test_dialect_is_checked_by_name() -> None:
    text = step("print(web_search('q', max_result=5))") + END
    assert validate(text, dialect="demo") == []
    assert codes(validate(text, dialect="card")) == ["dialect_mismatch"]
    with pytest.raises(ValueError, match="unknown dialect"):
        validate(text, dialect="other")


_bodies = st.sampled_from(["print(1)", "print(web_search('q', num_result=2))",
                           "x = [i for i in range(3)]\nprint(x)"])
_texts = st.text(alphabet=st.sampled_from("ab .\n0é"), max_size=30)


@settings(max_examples=200)
@given(st.lists(st.tuples(_texts, _bodies, _texts), min_size=1, max_size=6), _texts)
def test_generated_well_formed_traces_are_valid(
        blocks: list[tuple[str, str, str]], tail: str) -> None:
    text = "<think>\n"
    for prose, body, obs in blocks:
        text = continuation(text + prose + code(body), obs) + "\n"
    text += "</think>\n" + tail + "Answer."
    assert validate(text) == []
    assert detect_dialect(text) in (None, "card")


@settings(max_examples=300)
@given(st.lists(st.sampled_from(["<start_code>", "<end_code>", "```python\n", "\n",
                                 "```output\n", "\n```", "</think>", "<think>", "x", "print(",
                                 ")", " "])).map("".join))
def test_validate_never_crashes(text: str) -> None:
    for p in validate(text) + validate(text, finished=False):
        assert 0 <= p.offset <= len(text) and p.code in PROBLEM_CODES
