"""``/get_observation`` (verl-tool's protocol, the ``cir`` tool): a real server with a real
sandbox and store, against what ``cirkit rollout`` itself appended after the same blocks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from click.testing import CliRunner

from cirkit.cir import CODE_CLOSE, CODE_OPEN, END_CODE, make_observation, wrap_observation
from cirkit.cli import cli
from cirkit.rollout import ChatTokenizer
from cirkit.toolserver import BackgroundServer, ToolService
from recorders import Recorder, Store
from recorders.backends import LocalSearch, LocalVisit
from tests.servers.fake_vllm import MODEL, FakeVLLM

from .conftest import QUERIES, TOPK

MakeServer = Callable[[ToolService], BackgroundServer]


def _service(store: Path, tok: ChatTokenizer, *, mode: str = "replay",
             fallback: Recorder | None = None, **kw: Any) -> ToolService:
    rec = Recorder(Store(store, readonly=mode == "replay"), mode=mode, track_keys=False)
    return ToolService(rec, fallback=fallback, tokenizer=tok, workers=2, **kw)


def _observe(url: str, actions: list[str], **extra: Any) -> dict[str, Any]:
    body = {"trajectory_ids": [f"t{i}" for i in range(len(actions))], "actions": actions,
            "extra_fields": [{} for _ in actions], **extra}
    r = httpx.post(url + "/get_observation", json=body, timeout=120)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def _block(code: str) -> str:
    return "Let me look it up.\n" + CODE_OPEN + code + CODE_CLOSE


@pytest.mark.slow
def test_observations_equal_what_cirkit_rollout_appended(
        fake_vllm: FakeVLLM, chat_tokenizer: ChatTokenizer, corpus: Path, tmp_path: Path,
        make_toolserver: MakeServer) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i}?"}) + "\n"
                          for i in range(3)))
    store = tmp_path / "store"
    r = CliRunner().invoke(cli, [
        "rollout", str(qs), "--out", str(tmp_path / "out"), "--model", MODEL,
        "--base-url", fake_vllm.url, "--tokenizer", chat_tokenizer.name, "--store", str(store),
        "--corpus", str(corpus), "--max-tokens", "200", "--samples", "2", "--seed", "5"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in
            (tmp_path / "out" / "rollouts-00000-of-00001.jsonl").read_text().splitlines()]
    # Each turn that ran a block, as verl-tool sends it: the turn's own text; and what the
    # rollout appended after it.
    actions, appended, calls = [], [], []
    for row in rows:
        text, start = row["response_text"], 0
        for block in row["code_blocks"]:
            obs = "\n" + wrap_observation(block["output"])
            at = text.index(END_CODE + obs, start) + len(END_CODE)
            actions.append(text[start:at])
            appended.append(text[at:at + len(obs)])
            calls.append(block["tool_calls"])
            start = at + len(obs)
    assert len(actions) >= 4 and all(c for c in calls)
    server = make_toolserver(_service(store, chat_tokenizer))
    got = _observe(server.url, actions)
    assert got["observations"] == appended
    assert got["dones"] == [False] * len(actions) and got["valids"] == [True] * len(actions)
    assert [[{k: v for k, v in c.items() if k != "answered_locally"} for c in cs]
            for cs in got["tool_calls"]] == calls


def test_a_new_block_runs_in_the_sandbox_with_its_search_replayed(
        recorded: Path, chat_tokenizer: ChatTokenizer, make_toolserver: MakeServer) -> None:
    server = make_toolserver(_service(recorded, chat_tokenizer))
    with Store(recorded, readonly=True) as st:
        hit = Recorder(st, mode="replay").call_sync(
            "web_search", {"query": QUERIES[0], "num_results": TOPK})
    code = f"r = web_search({QUERIES[0]!r}, num_result={TOPK})\nprint(r)"
    want = "\n" + make_observation(hit.text + "\n", "", error=None,
                                   tokenizer=chat_tokenizer).text
    got = _observe(server.url, [_block(code), _block(code)[: -len(END_CODE)]])
    # the marker kept or dropped by the client: the rollout's text either way
    assert got["observations"] == [want, END_CODE + want]
    assert got["tool_calls"][0] == [{"args": {"num_results": TOPK, "query": QUERIES[0]},
                                     "error": None, "key": hit.key, "tool": "web_search",
                                     "answered_locally": False}]
    metrics = httpx.get(server.url + "/metrics").text
    assert 'cirkit_tools_live_calls_total{tool="code_exec"} 2' in metrics
    # the two identical blocks, sent at once, shared one sandbox run (single-flight)
    assert 'cirkit_tools_store_hits_total{tool="web_search"} 1' in metrics


def test_finish_answers_and_broken_blocks(recorded: Path, chat_tokenizer: ChatTokenizer,
                                          make_toolserver: MakeServer) -> None:
    server = make_toolserver(_service(recorded, chat_tokenizer))
    actions = [_block("print(6 * 7)"), "The answer is 42.", "no block here" + END_CODE,
               _block("print(1)"), _block("1 / 0")]
    got = _observe(server.url, actions, finish=[False, False, False, True, False],
                   is_last_step=[True, False, False, False, False])
    obs = got["observations"]
    assert obs[0] == "\n" + wrap_observation("42\n")
    assert obs[1] == "" and obs[3] == ""
    assert obs[2].startswith("\n```output\nError: no well-formed code block was found.")
    assert "ZeroDivisionError" in obs[4]
    assert got["dones"] == [True, True, False, True, False]
    assert got["valids"] == [True, False, False, True, True]
    # msgpack bodies too
    r = httpx.post(server.url + "/get_observation", timeout=60,
                   content=msgpack.packb({"trajectory_ids": ["a"], "actions": [actions[0]]}),
                   headers={"content-type": "application/msgpack"})
    assert msgpack.unpackb(r.content)["observations"] == [obs[0]]


def test_a_search_the_store_lacks_shows_the_miss_or_the_local_answer(
        recorded: Path, corpus: Path, chat_tokenizer: ChatTokenizer,
        make_toolserver: MakeServer) -> None:
    code = "print(web_search('kilo mountain', num_result=3))"
    strict = make_toolserver(_service(recorded, chat_tokenizer))
    got = _observe(strict.url, [_block(code)])
    assert "strict replay: web_search was never recorded" in got["observations"][0]
    assert got["tool_calls"][0][0]["error"] and got["tool_calls"][0][0]["key"] is None
    fallback = Recorder(None, mode="off", search=LocalSearch(corpus=corpus),
                        visit=LocalVisit(corpus=corpus))
    lenient = make_toolserver(_service(recorded, chat_tokenizer, fallback=fallback))
    got = _observe(lenient.url, [_block(code)])
    assert "Title: Doc 10" in got["observations"][0]
    assert got["tool_calls"][0][0]["answered_locally"] is True


def test_auto_mode_records_blocks_and_searches_as_the_rollout_does(
        corpus: Path, chat_tokenizer: ChatTokenizer, tmp_path: Path,
        make_toolserver: MakeServer) -> None:
    store = tmp_path / "grown"
    rec = Recorder(Store(store), search=LocalSearch(corpus=corpus),
                   visit=LocalVisit(corpus=corpus), mode="auto", track_keys=False)
    server = make_toolserver(ToolService(rec, tokenizer=chat_tokenizer, workers=2))
    action = _block("print(web_search('lima mountain', num_result=2))")
    first = _observe(server.url, [action])
    server.close()
    rec.store.close()  # type: ignore[union-attr]
    replay = make_toolserver(_service(store, chat_tokenizer))
    assert _observe(replay.url, [action])["observations"] == first["observations"]
    metrics = httpx.get(replay.url + "/metrics").text
    assert 'cirkit_tools_store_hits_total{tool="code_exec"} 1' in metrics


def test_without_a_tokenizer_the_cir_tool_is_off(recorded: Path,
                                                 make_toolserver: MakeServer) -> None:
    rec = Recorder(Store(recorded, readonly=True), mode="replay")
    server = make_toolserver(ToolService(rec))
    r = httpx.post(server.url + "/get_observation",
                   json={"trajectory_ids": ["a"], "actions": [_block("print(1)")]})
    assert r.status_code == 501 and "tokenizer" in r.json()["error"]
