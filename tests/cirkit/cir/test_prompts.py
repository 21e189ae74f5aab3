"""Prompts: the date rule, templates from files, the sha256 that trajectories record."""

from __future__ import annotations

import datetime as dt
import hashlib
import inspect
from pathlib import Path

import pytest

from cirkit import cir as _prompts
from cirkit.cir import (
    BUILTIN_TEMPLATE,
    CODE_OPEN,
    END_CODE,
    TEMPLATE_FIELDS,
    THINK_CLOSE,
    PromptTemplate,
    PromptTemplateError,
    format_date,
    render_messages,
)

#: Changing the built-in prompt changes every trajectory's provenance: do it on purpose.
BUILTIN_SHA256 = "bc1226f35bf905345206b4b26a8d55e6b3a420f38f88f7bbe00ebfd47aba9e2a"


@pytest.mark.parametrize(("value", "expected"), [
    (dt.date(2025, 8, 1), "Fri, 01 Aug 2025 00:00:00 GMT"),
    (dt.datetime(2024, 2, 29, 13, 5, 9), "Thu, 29 Feb 2024 13:05:09 GMT"),
    (dt.datetime(2025, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "Tue, 31 Dec 2024 23:30:00 GMT"),
    ("2025-08-01", "Fri, 01 Aug 2025 00:00:00 GMT"),
    ("2025-08-01T12:00:00Z", "Fri, 01 Aug 2025 12:00:00 GMT"),
    ("Sun, 07 Sep 2025 08:00:00 GMT", "Sun, 07 Sep 2025 08:00:00 GMT"),
])
def test_format_date(value: _prompts.DateLike, expected: str) -> None:
    assert format_date(value) == expected
    # the same as strftime with the reference's format, in the C locale
    parsed = dt.datetime.strptime(expected, "%a, %d %b %Y %H:%M:%S GMT")
    assert parsed.strftime(_prompts.DATE_FORMAT) == expected


def test_bad_date_is_a_clear_error() -> None:
    with pytest.raises(PromptTemplateError, match="cannot read the date") as e:
        format_date("next tuesday")
    assert e.value.hint and "ISO 8601" in e.value.hint


def test_the_clock_is_never_read() -> None:
    source = inspect.getsource(_prompts)
    for call in ("now(", "today(", "utcnow(", "time.time(", "localtime("):
        assert call not in source
    first = render_messages("q", date=dt.date(2025, 8, 1))
    assert first == render_messages("q", date="2025-08-01")


def test_render_messages_card() -> None:
    msgs = render_messages("What is the capital of France?", date=dt.date(2025, 8, 1))
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[1]["content"] == "What is the capital of France?"
    system = msgs[0]["content"]
    assert "Fri, 01 Aug 2025 00:00:00 GMT" in system
    assert "web_search(query: str, num_result: int)" in system
    assert "web_visit(url: str)" in system and "visit_webpage" not in system
    assert CODE_OPEN in system and "```" + END_CODE in system
    assert "print" in system and THINK_CLOSE in system and "32" in system
    assert "{" not in system  # every placeholder was filled


def test_render_messages_demo() -> None:
    (system, _) = render_messages("q", date="2025-08-01", dialect="demo", max_code_blocks=8)
    text = system["content"]
    assert "visit_webpage(url: str)" in text and "max_result" in text
    assert "web_visit" not in text and "num_result" not in text and "up to 8 code" in text
    with pytest.raises(ValueError, match="unknown dialect"):
        render_messages("q", date="2025-08-01", dialect="openai")


def test_builtin_sha256_is_stable() -> None:
    assert BUILTIN_TEMPLATE.sha256 == BUILTIN_SHA256
    assert BUILTIN_TEMPLATE.sha256 == hashlib.sha256(
        BUILTIN_TEMPLATE.text.encode("utf-8")).hexdigest()
    assert BUILTIN_TEMPLATE.fields == TEMPLATE_FIELDS - {"search_tool", "visit_tool"}


def test_template_from_file_is_byte_exact(tmp_path: Path) -> None:
    raw = ("Date: {date}\r\nTools:\n{tools}\nCall {search_tool} then {visit_tool}.\n"
           'Example args: {"query": "x"} and {unknown}. Café ✓\n').encode()
    path = tmp_path / "trained.txt"
    path.write_bytes(raw)
    tpl = PromptTemplate.from_file(path)
    assert tpl.name == "trained.txt"
    assert tpl.sha256 == hashlib.sha256(raw).hexdigest()
    assert tpl.fields == {"date", "tools", "search_tool", "visit_tool"}
    assert tpl.unknown_placeholders == {"unknown"}
    out = tpl.render(date=dt.date(2025, 8, 1), dialect="demo")
    assert out.startswith("Date: Fri, 01 Aug 2025 00:00:00 GMT\r\nTools:\n- web_search(")
    assert "Call web_search then visit_webpage." in out
    assert 'Example args: {"query": "x"} and {unknown}. Café ✓\n' in out
    (system, _) = render_messages("q", template=tpl, date="2025-08-01")
    assert system["content"] == tpl.render(date="2025-08-01")


def test_template_file_errors(tmp_path: Path) -> None:
    with pytest.raises(PromptTemplateError, match="cannot read the prompt template"):
        PromptTemplate.from_file(tmp_path / "missing.txt")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 {date}".encode("latin-1"))
    with pytest.raises(PromptTemplateError, match="not UTF-8"):
        PromptTemplate.from_file(bad)
