"""Bounds on input: query and URL lengths are capped with a clear error, and a replay miss
compares and prints a bounded amount whatever the store holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorders import (
    EXECUTION,
    MAX_QUERY_CHARS,
    MAX_URL_CHARS,
    InMemoryBackend,
    InvalidCallError,
    Recorder,
    ReplayMissError,
    Response,
    Store,
    make_key,
)


def test_a_query_over_the_limit_is_a_clear_error() -> None:
    make_key("web_search", {"query": "q" * MAX_QUERY_CHARS})
    with pytest.raises(InvalidCallError, match="MAX_QUERY_CHARS") as e:
        make_key("web_search", {"query": "q" * (MAX_QUERY_CHARS + 1)})
    assert e.value.hint and len(str(e.value)) < 400


def test_a_url_over_the_limit_is_a_clear_error() -> None:
    base = "https://example.org/"
    make_key("web_visit", {"url": base + "a" * (MAX_URL_CHARS - len(base))})
    with pytest.raises(InvalidCallError, match="MAX_URL_CHARS") as e:
        make_key("web_visit", {"url": base + "a" * MAX_URL_CHARS})
    assert e.value.hint and len(str(e.value)) < 400


def test_the_recorder_refuses_a_long_query_before_any_request(tmp_path: Path) -> None:
    backend = InMemoryBackend("web_search", lambda a: {"results": []})
    with Store(tmp_path / "s") as st:
        with pytest.raises(InvalidCallError, match="limit"):
            Recorder(st, search=backend).call_sync("web_search", {"query": "x" * 50_000})
        assert backend.calls == 0 and len(st) == 0


async def test_a_replay_miss_prints_a_bounded_message(tmp_path: Path) -> None:
    big = "print('x')\n" * 2_000  # a recorded 22 kB code block
    with Store(tmp_path / "s") as st:
        rec = Recorder(st, mode="auto")

        async def run() -> Response:
            return Response({"text": "x"})

        for n in range(3):
            await rec.memo(EXECUTION, {"code": big + str(n)}, run, backend="sandbox")
    with Store(tmp_path / "s", readonly=True) as st, pytest.raises(ReplayMissError) as e:
        await Recorder(st, mode="replay").memo(EXECUTION, {"code": big + "?"}, run,
                                               backend="sandbox")
    message = str(e.value)
    assert len(message) < 4_000, len(message)
    assert "characters in all" in message and len(e.value.nearest) == 3
