"""Observations: token-exact truncation with a real (tiny) tokenizer, wrapping, errors.

Loading a tokenizer is tested in test_tokenizer.py."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cirkit.cir import (
    DEMO_ERROR_HINT,
    TRUNCATION_NOTE,
    Observation,
    Tokenizer,
    make_observation,
    parse,
    wrap_observation,
)

LONG = "Index: 1\nURL: https://example.org/page\nTitle: Example\nPreview: a page\n" * 200


def test_no_special_tokens_are_added(tiny_tokenizer: Tokenizer) -> None:
    assert tiny_tokenizer.encode("") == []
    ids = tiny_tokenizer.encode("<end_code>")
    assert len(ids) == 1 and tiny_tokenizer.decode(ids) == "<end_code>"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_encode_decode_round_trip(tiny_tokenizer: Tokenizer, text: str) -> None:
    assert tiny_tokenizer.decode(tiny_tokenizer.encode(text)) == text


def test_short_output_is_kept_whole(tiny_tokenizer: Tokenizer) -> None:
    obs = make_observation("hits\n", "", error=None, tokenizer=tiny_tokenizer)
    assert obs == Observation("```output\nhits\n\n```", False,
                              len(tiny_tokenizer.encode("hits\n")), "hits\n", False)
    assert str(obs) == obs.text and obs.to_json()["truncated"] is False


def test_truncation_at_exactly_max_tokens(tiny_tokenizer: Tokenizer) -> None:
    ids = tiny_tokenizer.encode(LONG)
    n = len(ids)
    assert n > 300
    exact = make_observation(LONG, "", error=None, tokenizer=tiny_tokenizer, max_tokens=n)
    assert not exact.truncated and exact.body == LONG and exact.num_tokens == n
    obs = make_observation(LONG, "", error=None, tokenizer=tiny_tokenizer, max_tokens=n - 1)
    assert obs.truncated and obs.num_tokens == n
    obs = make_observation(LONG, "", error=None, tokenizer=tiny_tokenizer, max_tokens=100)
    cut = tiny_tokenizer.decode(ids[:100])
    assert obs.body == cut + TRUNCATION_NOTE.format(kept=100, total=n)
    assert obs.text == wrap_observation(obs.body)
    assert LONG.startswith(cut) and tiny_tokenizer.encode(cut) == ids[:100]
    bare = make_observation(LONG, "", error=None, tokenizer=tiny_tokenizer, max_tokens=100,
                            truncation_note=None)
    assert bare.body == cut


def test_default_budget_is_3000_tokens(tiny_tokenizer: Tokenizer) -> None:
    big = LONG * 10
    obs = make_observation(big, "", error=None, tokenizer=tiny_tokenizer)
    assert obs.truncated and obs.num_tokens == len(tiny_tokenizer.encode(big))
    assert obs.body.endswith(TRUNCATION_NOTE.format(kept=3000, total=obs.num_tokens))


def test_cut_never_splits_a_character(tiny_tokenizer: Tokenizer) -> None:
    text = "a" + "😀" * 20  # four bytes each, unknown to the tiny vocabulary
    ids = tiny_tokenizer.encode(text)
    assert len(ids) > 20
    for n in range(1, 12):
        obs = make_observation(text, "", error=None, tokenizer=tiny_tokenizer, max_tokens=n,
                               truncation_note=None)
        assert "\ufffd" not in obs.body and text.startswith(obs.body)
        assert len(tiny_tokenizer.encode(obs.body)) <= n


def test_real_error_text_is_kept(tiny_tokenizer: Tokenizer) -> None:
    err = "Traceback (most recent call last):\nNameError: name 'x' is not defined\n"
    obs = make_observation("partial\n", err, error=None, tokenizer=tiny_tokenizer)
    assert obs.body == "partial\n" + err and obs.is_error
    timeout = make_observation("partial", "", error="TimeoutError: killed after 10 s",
                               tokenizer=tiny_tokenizer)
    assert timeout.body == "partial\nTimeoutError: killed after 10 s" and timeout.is_error
    dup = make_observation("", err, error="NameError: name 'x' is not defined",
                           tokenizer=tiny_tokenizer)
    assert dup.body == err


def test_demo_error_hint(tiny_tokenizer: Tokenizer) -> None:
    obs = make_observation("partial\n", "NameError: x\n", error=None,
                           tokenizer=tiny_tokenizer, demo_error_hint=True)
    assert obs.body == DEMO_ERROR_HINT and obs.text == wrap_observation(DEMO_ERROR_HINT)
    fine = make_observation("ok\n", "", error=None, tokenizer=tiny_tokenizer,
                            demo_error_hint=True)
    assert fine.body == "ok\n" and not fine.is_error


def test_wrapping_bytes(tiny_tokenizer: Tokenizer) -> None:
    obs = make_observation("Zürich\n", "", error=None, tokenizer=tiny_tokenizer)
    assert obs.text.encode("utf-8") == b"```output\nZ\xc3\xbcrich\n\n```"
    (seg,) = parse(obs.text)
    assert seg.kind == "output" and seg.body == obs.body
    with pytest.raises(ValueError):
        make_observation("x", "", error=None, tokenizer=tiny_tokenizer, max_tokens=0)
