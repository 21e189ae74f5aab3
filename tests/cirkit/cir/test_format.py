"""The CIR format: exact delimiters, lossless parsing, offsets, the continuation rule."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cirkit import cir as fmt
from cirkit.cir import (
    END_CODE,
    OUTPUT_CLOSE,
    OUTPUT_OPEN,
    START_CODE,
    Segment,
    continuation,
    final_answer,
    parse,
    pending_code,
    render,
    wrap_observation,
)


def code(body: str, *, own_line: bool = False) -> str:
    close = "\n```\n<end_code>" if own_line else "\n```<end_code>"
    return "<start_code>\n```python\n" + body + close


def kinds(text: str) -> list[str]:
    return [s.kind for s in parse(text)]


def test_exact_strings() -> None:
    assert fmt.START_CODE == "<start_code>"
    assert fmt.END_CODE == "<end_code>"
    assert fmt.PYTHON_FENCE == "```python"
    assert fmt.OUTPUT_OPEN == "```output\n"
    assert fmt.OUTPUT_CLOSE == "\n```"
    assert fmt.THINK_OPEN == "<think>"
    assert fmt.THINK_CLOSE == "</think>"
    assert fmt.STOP == ["<end_code>"]
    assert fmt.CODE_OPEN == "<start_code>\n```python\n"
    assert fmt.CODE_CLOSE == "\n```<end_code>"
    assert set(fmt.__all__) <= set(dir(fmt))


def test_wrap_observation_bytes() -> None:
    assert wrap_observation("hits") == "```output\nhits\n```"
    assert wrap_observation("") == "```output\n\n```"
    assert wrap_observation("é").encode() == b"```output\n\xc3\xa9\n```"


def test_continuation_follows_the_reference() -> None:
    gen = "Let me look.\n" + code("print(1)")[: -len(END_CODE)]
    # The API strips the stop string: it is put back, then "\n" and the wrapped observation.
    assert continuation(gen, "1\n") == gen + "<end_code>\n```output\n1\n\n```"
    # A generation that kept the stop string is not doubled.
    assert continuation(gen + END_CODE, "1") == gen + "<end_code>\n```output\n1\n```"
    trace = "<think>\n" + continuation(gen, "1")
    assert kinds(trace) == ["think_open", "text", "code", "text", "output"]


def test_segments_and_offsets() -> None:
    c = code('print(web_search("x", num_result=3))')
    text = "<think>\nSearch.\n" + c + "\n" + wrap_observation("hits") + "\nDone.\n</think>\n\nA."
    segs = parse(text)
    assert [s.kind for s in segs] == [
        "think_open", "text", "code", "text", "output", "text", "think_close", "answer"]
    think, prose, block, sep, out, _, close, answer = segs
    assert (think.start, think.end) == (0, 7)
    assert prose.raw == "\nSearch.\n" and prose.start == 7
    assert block.start == text.index(START_CODE) and block.raw == c
    assert block.code == 'print(web_search("x", num_result=3))'
    assert text[block.body_start:block.body_start + len(block.body)] == block.body
    assert block.end == text.index(END_CODE) + len(END_CODE)
    assert sep.raw == "\n"
    assert out.body == "hits" and out.raw == "```output\nhits\n```"
    assert out.body_start == out.start + len(OUTPUT_OPEN)
    assert prose.code is None and out.code is None
    assert close.raw == "</think>" and answer.raw == "\n\nA." and answer.end == len(text)
    assert final_answer(text) == "A."
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start


@pytest.mark.parametrize("own_line", [False, True], ids=["demo-one-line", "card-own-line"])
def test_both_closing_fence_forms(own_line: bool) -> None:
    text = code("x = 1\nprint(x)", own_line=own_line)
    (seg,) = parse(text)
    assert seg.kind == "code" and seg.code == "x = 1\nprint(x)" and seg.end == len(text)


def test_empty_code_block_is_still_a_block() -> None:
    (seg,) = parse("<start_code>\n```python\n```<end_code>")
    assert seg.kind == "code" and seg.code == ""


@pytest.mark.parametrize("broken", [
    "<start_code>\nprint(1)\n<end_code>",             # no python fence
    "<start_code>\n```python\nprint(1)\n<end_code>",  # no closing fence
    "<start_code>\n```python\nprint(1)\n```",         # no <end_code>
    "```output\nno close",                            # observation never closed
    "inline ```output\nx\n```",                       # output fence not at a line start
])
def test_broken_pieces_become_text(broken: str) -> None:
    segs = parse(broken)
    assert all(s.kind == "text" for s in segs)
    assert render(segs) == broken


def test_unclosed_block_does_not_swallow_the_next() -> None:
    text = "<start_code>\n```python\nprint(1)\n" + code("print(2)")
    segs = parse(text)
    assert kinds(text) == ["text", "code"] and segs[1].code == "print(2)"


def test_observation_with_nested_fences() -> None:
    page = "Docs:\n```python\nprint('hi')\n```\nend of page"
    text = code("print(1)") + "\n" + wrap_observation(page) + "\nNext."
    segs = parse(text)
    assert [s.kind for s in segs] == ["code", "text", "output", "text"]
    assert segs[2].body == page


def test_observation_opening_with_a_fence() -> None:
    page = "```json\n{\"a\": 1}\n```\nafter"
    segs = parse(wrap_observation(page) + "\nNext.")
    assert [s.kind for s in segs] == ["output", "text"] and segs[0].body == page


def test_observation_cut_inside_a_fence() -> None:
    cut = "Docs:\n```python\nprint('unfinished"  # truncated mid-fence: never balances
    text = (code("print(1)") + "\n" + wrap_observation(cut) + "\nNext.\n"
            + code("print(2)") + "\n" + wrap_observation("x\n```\n") + "\n</think>\nA")
    segs = parse(text)
    assert [s.kind for s in segs] == [
        "code", "text", "output", "text", "code", "text", "output", "text", "think_close",
        "answer"]
    assert segs[2].body == cut and segs[4].code == "print(2)"


def test_delimiters_inside_code_and_output_are_content() -> None:
    body = 'print("</think> and <start_code>")'
    obs = "a page quoting </think> and <start_code>"
    text = code(body) + "\n" + wrap_observation(obs) + "\n</think>\nA"
    segs = parse(text)
    assert [s.kind for s in segs] == ["code", "text", "output", "text", "think_close", "answer"]
    assert segs[0].code == body and segs[2].body == obs


def test_everything_after_think_close_is_answer() -> None:
    text = "</think>\nAnswer with " + code("print(1)") + " inside"
    assert kinds(text) == ["think_close", "answer"]
    assert final_answer("no close") is None
    assert final_answer("x</think>") == ""


def test_pending_code() -> None:
    gen = "Reason.\n" + code("print(2)")
    assert pending_code(gen) == "print(2)"
    assert pending_code(gen[: -len(END_CODE)]) == "print(2)"
    assert pending_code("no code here") is None
    assert pending_code(gen + "\nmore text") is None


def test_segments_are_frozen_slotted() -> None:
    seg = parse("x")[0]
    assert isinstance(seg, Segment) and not hasattr(seg, "__dict__")
    with pytest.raises(AttributeError):
        seg.start = 3  # type: ignore[misc]


# --- property-based -------------------------------------------------------------------------

_PIECES = [START_CODE, END_CODE, "```python\n", "```python", OUTPUT_OPEN, OUTPUT_CLOSE, "```",
           "<think>", "</think>", "\n", " ", "x", "`", "print(1)", "é", "😀", "\r\n", "<"]
_fragments = st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=5)), max_size=30)


def _check_invariants(text: str) -> list[Segment]:
    segs = parse(text)
    assert render(segs) == text
    pos = 0
    for s in segs:
        assert s.start == pos and s.end > s.start and s.raw == text[s.start:s.end]
        assert text[s.body_start:s.body_start + len(s.body)] == s.body
        pos = s.end
    assert pos == len(text)
    assert sum(s.kind == "think_close" for s in segs) <= 1
    return segs


@settings(max_examples=300)
@given(st.text())
def test_round_trip_random_text(text: str) -> None:
    _check_invariants(text)


@settings(max_examples=500)
@given(_fragments.map("".join))
def test_round_trip_delimiter_soup(text: str) -> None:
    _check_invariants(text)


_prose = st.text(alphabet=st.sampled_from("abc xyz.,;:!?()\n\t0123456789é東"), max_size=40)
_snippets = st.sampled_from([
    "print(1)", 'print(web_search("capital of France", num_result=3))',
    'r = web_visit("https://example.org")\nprint(r[:200])',
    "for i in range(3):\n    print(i)", "x = {'a': 1}\nprint(x)", "",
])
_observations = st.text(alphabet=st.sampled_from("abc xyz.:/\n01é"), max_size=60)


@st.composite
def traces(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]], str]:
    blocks = draw(st.lists(st.tuples(_prose, _snippets, _observations, st.booleans()),
                           max_size=5))
    answer = draw(_prose)
    text = "<think>\n"
    for prose, body, obs, own_line in blocks:
        text = continuation(text + prose + code(body, own_line=own_line), obs) + "\n"
    text += draw(_prose) + "</think>\n" + answer
    return text, [(b, o) for _, b, o, _ in blocks], answer


@settings(max_examples=300)
@given(traces())
def test_round_trip_well_formed(trace: tuple[str, list[tuple[str, str]], str]) -> None:
    text, blocks, answer = trace
    segs = _check_invariants(text)
    assert [s.code for s in segs if s.kind == "code"] == [b for b, _ in blocks]
    assert [s.body for s in segs if s.kind == "output"] == [o for _, o in blocks]
    assert final_answer(text) == answer.strip()
    assert segs[0].kind == "think_open"
