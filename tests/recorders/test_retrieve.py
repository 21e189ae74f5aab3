"""Search-R1's /retrieve shape, defined once in recorders: the request a body asks for, and
recorded search answers of any backend as Search-R1 documents."""

from __future__ import annotations

import pytest

from recorders import (
    InvalidCallError,
    RetrieveRequest,
    parse_retrieve,
    retrieve_answer,
    stored_search_documents,
)


def test_a_request_takes_queries_or_one_query_with_search_r1s_defaults() -> None:
    assert parse_retrieve({"queries": ["a", "b"], "topk": 5, "return_scores": True}) == \
        RetrieveRequest(("a", "b"), 5, True)
    assert parse_retrieve({"query": "a"}) == RetrieveRequest(("a",), 3, False)
    assert parse_retrieve({"queries": [], "topk": None}) == RetrieveRequest((), 3, False)


@pytest.mark.parametrize(("body", "why"), [
    ([], "must be an object"),
    ({}, "give 'queries'"),
    ({"queries": "a"}, "list of strings"),
    ({"queries": [1]}, "list of strings"),
    ({"queries": ["a"], "topk": True}, "'topk'"),
    ({"queries": ["a"], "topk": 1001}, "'topk'"),
    ({"queries": ["a"], "return_scores": "yes"}, "'return_scores'"),
])
def test_a_bad_request_names_its_field(body: object, why: str) -> None:
    with pytest.raises(InvalidCallError, match=why):
        parse_retrieve(body)


def test_local_hits_keep_their_corpus_ids_and_scores() -> None:
    data = {"results": [{"title": "Everest", "url": "https://w/Everest", "snippet": "tallest",
                         "score": 2.5, "position": 1},
                        {"title": "K2", "url": "https://w/K2", "snippet": "second",
                         "score": 1.25, "position": 2}],
            "raw": {"corpus": "abc", "hits": [["everest", 2.5], ["k2", 1.25]]}}
    docs = stored_search_documents(data, 5)
    assert docs == [
        ({"id": "everest", "contents": '"Everest"\ntallest', "url": "https://w/Everest"}, 2.5),
        ({"id": "k2", "contents": '"K2"\nsecond', "url": "https://w/K2"}, 1.25)]
    assert stored_search_documents(data, 1) == docs[:1]


def test_provider_hits_without_scores_rank_by_position() -> None:
    """Serper records no score: 1/position stands in, so a ranking is still there."""
    data = {"results": [{"title": "A", "url": "https://a", "snippet": "sa", "position": 1},
                        {"title": "B", "url": "https://b", "snippet": "sb", "position": 2,
                         "date": "2024-01-01"}],
            "raw": {"organic": []}}
    docs = stored_search_documents(data, 3)
    assert [(d["id"], d["contents"], s) for d, s in docs] == [
        ("https://a", '"A"\nsa', 1.0), ("https://b", '"B"\nsb', 0.5)]


def test_a_recorded_failure_retrieves_nothing() -> None:
    assert stored_search_documents({"error": "HTTP 500", "results": []}, 3) == []
    assert stored_search_documents({"error": "no results key"}, 3) == []


def test_the_answer_has_scores_only_when_asked() -> None:
    docs = [[({"id": "1", "contents": '"T"\nx', "url": "u"}, 0.5)], []]
    assert retrieve_answer(docs, return_scores=True) == {
        "result": [[{"document": {"id": "1", "contents": '"T"\nx', "url": "u"}, "score": 0.5}],
                   []]}
    assert retrieve_answer(docs, return_scores=False) == {
        "result": [[{"id": "1", "contents": '"T"\nx', "url": "u"}], []]}
