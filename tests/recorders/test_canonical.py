"""Keys name what was asked: canonical, normalised, free of secrets."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recorders import InvalidCallError, canonical_json, make_key, normalise_query, normalise_url


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=6))
def test_canonical_json_ignores_insertion_order(d: dict[str, int]) -> None:
    assert canonical_json(d) == canonical_json(dict(reversed(list(d.items()))))


def test_query_whitespace_is_collapsed_and_stripped() -> None:
    assert normalise_query("  who painted\tthe\n night   watch ") == "who painted the night watch"
    assert make_key("web_search", {"query": "a  b", "num_results": 5}) == make_key(
        "web_search", {"num_results": 5, "query": " a b"})


_WHITESPACE = st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u200a"
                              "\u2028\u2029\u202f\u205f\u3000\u200b\ufeff")


@given(st.lists(st.one_of(st.text(max_size=8), _WHITESPACE), max_size=12).map("".join))
def test_query_normalisation_is_the_regex_one(query: str) -> None:
    """Collapse runs of what ``\\s`` matches into one space, then strip (the rule keys were
    first made with: a change here would orphan recorded stores)."""
    assert normalise_query(query) == re.sub(r"\s+", " ", query).strip()


@given(st.text(st.characters(exclude_categories=())),  # surrogates too
       st.integers(min_value=1, max_value=10**30))
def test_the_search_key_is_the_sha256_of_the_canonical_document(query: str, num: int) -> None:
    """The search key is the sha256 of the canonical document, for every string (quotes,
    control characters, surrogates, non-ASCII): keys recorded before stay valid."""
    try:
        doc = canonical_json({"tool": "web_search",
                              "args": {"query": normalise_query(query), "num_results": num}})
    except UnicodeEncodeError:  # a lone surrogate: no key, a clear error
        with pytest.raises(InvalidCallError, match="lone surrogate"):
            make_key("web_search", {"query": query, "num_results": num})
        return
    assert make_key("web_search", {"query": query, "num_results": num})[0] == \
        hashlib.sha256(doc).hexdigest()


class _Str(str):
    pass


class _Int(int):
    pass


def test_subclassed_search_args_give_the_plain_key() -> None:
    """str and int subclasses give the key of the plain values."""
    plain = make_key("web_search", {"query": "night  watch ", "num_results": 3})
    assert make_key("web_search", {"query": _Str("night  watch "), "num_results": _Int(3)}) == plain
    assert make_key("web_search", {"query": "night watch"}) == \
        make_key("web_search", {"query": "night watch", "num_results": 5})


def test_num_results_is_part_of_the_key() -> None:
    k5, _ = make_key("web_search", {"query": "x", "num_results": 5})
    k3, _ = make_key("web_search", {"query": "x", "num_results": 3})
    assert k5 != k3


@pytest.mark.parametrize(("raw", "norm"), [
    ("HTTPS://En.Wikipedia.ORG/wiki/The_Night_Watch#History",
     "https://en.wikipedia.org/wiki/The_Night_Watch"),
    ("http://example.com:80/a?utm_source=x&b=2&a=1&fbclid=z", "http://example.com/a?a=1&b=2"),
    ("https://example.com:8443", "https://example.com:8443/"),
    ("example.com/page", "https://example.com/page"),
    ("https://api.example.com/v1?api_key=sk-123&q=1", "https://api.example.com/v1?api_key=REDACTED&q=1"),
    ("https://user:pw@example.com/", "https://REDACTED@example.com/"),
])
def test_url_normalisation(raw: str, norm: str) -> None:
    assert normalise_url(raw) == norm


def test_secret_in_a_visited_url_never_reaches_the_key_fields() -> None:
    _, args = make_key("web_visit", {"url": "https://x.org/p?token=SECRET-TOKEN-42"})
    assert "SECRET-TOKEN-42" not in canonical_json(args).decode()


@pytest.mark.parametrize("args", [{}, {"query": 3}, {"query": "x", "num_results": 0},
                                  {"query": "x", "num_results": True}])
def test_bad_search_args_are_rejected(args: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_key("web_search", args)


def test_unknown_tool_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="web_search, web_visit, completion, code_exec"):
        make_key("web_fetch", {"url": "x"})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(
        exclude_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_canonical_json_is_the_json_encoders_output(value: object) -> None:
    """canonical_json runs the standard library's encoder built once: the same bytes as
    ``JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` (keys made
    before depend on it)."""
    encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                               allow_nan=False)
    assert canonical_json(value) == encoder.encode(value).encode("utf-8")


def test_canonical_json_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        canonical_json({"x": {1}})
    with pytest.raises(UnicodeEncodeError):
        canonical_json("\ud800")
