"""The Recorder's modes, replay misses, single-flight and secret scrubbing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from recorders import (
    InMemoryBackend,
    Mode,
    PackError,
    Recorder,
    RecordersError,
    RenderOptions,
    ReplayMissError,
    Response,
    Store,
    StoreError,
    merge_stores,
    pack,
    pack_renderer,
    read_manifest,
    unpack,
)


def search_answer(args: Mapping[str, Any]) -> dict[str, Any]:
    q = args["query"]
    return {"results": [{"title": f"T {q}", "url": f"https://e.org/{i}", "snippet": f"S{i}"}
                        for i in range(args["num_results"])], "raw": {"q": q}}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def rec(store: Store | None, mode: str, backend: InMemoryBackend | None = None) -> Recorder:
    return Recorder(store, search=backend or InMemoryBackend("web_search", search_answer),
                    mode=mode, clock=lambda: 0.0)


async def test_auto_records_then_replays(store: Store) -> None:
    b = InMemoryBackend("web_search", search_answer)
    r = rec(store, "auto", b)
    first = await r.web_search("night watch", num_results=2)
    again = await r.web_search("  night   watch ", num_results=2)
    assert b.calls == 1 and not first.from_store and again.from_store
    assert first.text == again.text == (
        "\nIndex: 0\nURL: https://e.org/0\nTitle: T night watch\nPreview: S0\n"
        "\nIndex: 1\nURL: https://e.org/1\nTitle: T night watch\nPreview: S1\n")
    assert r.keys_used == [first.key]
    third = await r.web_search("rembrandt")
    await r.web_search("night watch", num_results=2)
    assert r.keys_used == [first.key, third.key]  # first-use order, each key once
    r.keys_used.clear()  # a copy: the provenance cannot be changed from outside
    assert len(r.keys_used) == 2


def test_a_recorders_mode_is_fixed(store: Store) -> None:
    r = rec(store, "replay")
    with pytest.raises(AttributeError):
        r.mode = "auto"  # type: ignore[misc]
    assert r.mode is Mode.REPLAY


async def test_record_always_asks_and_overwrites(store: Store) -> None:
    n = {"v": 0}

    def changing(args: Mapping[str, Any]) -> dict[str, Any]:
        n["v"] += 1
        return {"results": [{"title": f"v{n['v']}", "url": "u", "snippet": ""}]}

    r = Recorder(store, search=InMemoryBackend("web_search", changing), mode="record")
    await r.web_search("q")
    await r.web_search("q")
    assert n["v"] == 2
    replayed = await rec(store, "replay").web_search("q")
    assert "Title: v2" in replayed.text


async def test_rewrite_rerecords_once_per_session(store: Store) -> None:
    await rec(store, "auto").web_search("q")
    b = InMemoryBackend("web_search", search_answer)
    r = rec(store, "rewrite", b)
    await r.web_search("q")
    await r.web_search("q")
    assert b.calls == 1


async def test_off_never_touches_the_store(store: Store) -> None:
    r = Recorder(None, search=InMemoryBackend("web_search", search_answer), mode="off")
    res = await r.web_search("q")
    assert not res.from_store and "Index: 0" in res.text
    assert len(store) == 0
    with pytest.raises(RecordersError, match="needs a store"):
        Recorder(None, mode="auto")


async def test_replay_needs_no_backend_and_never_calls_one(store: Store) -> None:
    await rec(store, "auto").web_search("q")
    r = Recorder(store, mode=Mode.REPLAY)
    assert (await r.web_search("q")).from_store


async def test_strict_miss_names_the_fields_and_three_nearest(store: Store) -> None:
    r = rec(store, "auto")
    for q in ("who painted the night watch", "night watch painter", "rembrandt", "mona lisa"):
        await r.web_search(q, num_results=5)
    with pytest.raises(ReplayMissError) as ei:
        await rec(store, "replay").web_search("who painted the night watch?", num_results=3)
    msg = str(ei.value)
    assert '"query": "who painted the night watch?"' in msg and '"num_results": 3' in msg
    assert ei.value.key in msg
    assert len(ei.value.nearest) == 3
    nearest_line = msg.splitlines()[4]
    assert '"who painted the night watch"' in nearest_line
    assert "differs in: num_results, query" in nearest_line
    assert "hint:" in msg


async def test_miss_in_an_empty_store_says_so(store: Store) -> None:
    with pytest.raises(ReplayMissError, match="no web_visit call is recorded"):
        await Recorder(store, mode="replay").web_visit("https://x.org")


async def test_concurrent_calls_share_one_backend_request(store: Store) -> None:
    class Slow(InMemoryBackend):
        async def handle(self, args: Mapping[str, Any]) -> Response:
            await asyncio.sleep(0.05)
            return await super().handle(args)

    b = Slow("web_search", search_answer)
    r = rec(store, "auto", b)
    results = await asyncio.gather(*(r.web_search("same") for _ in range(10)))
    assert b.calls == 1 and len({x.text for x in results}) == 1


async def test_backend_error_records_nothing(store: Store) -> None:
    def boom(args: Mapping[str, Any]) -> dict[str, Any]:
        raise RecordersError("provider down")

    with pytest.raises(RecordersError, match="provider down"):
        await Recorder(store, search=InMemoryBackend("web_search", boom)).web_search("q")
    assert len(store) == 0


async def test_echoed_secrets_are_scrubbed_before_storing(store: Store, tmp_path: Path) -> None:
    secret = "sk-live-ECHOED-0123456789"

    class Echo(InMemoryBackend):
        @property
        def secrets(self) -> tuple[str, ...]:
            return (secret,)

        async def handle(self, args: Mapping[str, Any]) -> Response:
            return Response({"results": [], "raw": {"echo": f"key={secret}"}},
                            extra_blobs=[f"raw {secret}".encode()])

    await Recorder(store, search=Echo("web_search", {})).web_search("q")
    store.close()
    for f in (tmp_path / "store").rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


async def test_backend_for_the_wrong_tool_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="answers web_visit"):
        Recorder(store, search=InMemoryBackend("web_visit", {}))  # type: ignore[arg-type]


async def test_memo_records_any_call_named_by_its_args(store: Store) -> None:
    """Model completions go through the same store and modes; a hash stands for the prompt."""
    asked = {"n": 0}

    async def fetch() -> Response:
        asked["n"] += 1
        return Response({"text": " Paris.", "token_ids": [11, 12], "finish_reason": "stop"})

    args = {"model": "tiny", "prompt_sha256": "ab" * 32, "sampling": {"seed": 3}}
    live = await rec(store, "auto").memo("completion", args, fetch, backend="vllm")
    again = await rec(store, "replay").memo("completion", dict(reversed(args.items())), fetch,
                                            backend="vllm")
    assert asked["n"] == 1 and not live.from_store and again.from_store
    assert again.text == " Paris." and again.data["token_ids"] == [11, 12]
    with pytest.raises(ReplayMissError, match="differs in: sampling"):
        await rec(store, "replay").memo("completion", {**args, "sampling": {"seed": 4}}, fetch,
                                        backend="vllm")
    with pytest.raises(ValueError, match="unknown tool"):
        await rec(store, "auto").call("completion", args)


# What cirkit wrote as store.json before the renderer had a second version.
_OLD_MARKER = b'{"format":"cirkit-store","version":1}'


def _hf_first(args: Mapping[str, Any]) -> dict[str, Any]:
    hits = [{"title": "Model card", "url": "https://huggingface.co/m", "snippet": "card"}]
    hits += [{"title": f"T{i}", "url": f"https://e.org/{i}", "snippet": f"S{i}"} for i in (1, 2)]
    return {"results": hits, "raw": {"q": args["query"]}}


async def test_a_store_replays_under_the_renderer_version_it_was_recorded_under(
        tmp_path: Path) -> None:
    """A store of the previous renderer (no version in store.json) shows the model the bytes
    it always did: numbered from 1 and renumbered past a dropped Hugging Face hit."""
    old = Store(tmp_path / "old")
    (tmp_path / "old" / "store.json").write_bytes(_OLD_MARKER)
    old = Store(tmp_path / "old")
    assert old.renderer == 1
    await Recorder(old, search=InMemoryBackend("web_search", _hf_first)).web_search("q", 2)
    v1 = ("\nIndex: 1\nURL: https://e.org/1\nTitle: T1\nPreview: S1\n"
          "\nIndex: 2\nURL: https://e.org/2\nTitle: T2\nPreview: S2\n")
    replayed = await Recorder(Store(tmp_path / "old", readonly=True),
                              mode="replay").web_search("q", 2)
    assert replayed.from_store and replayed.text == v1
    assert (tmp_path / "old" / "store.json").read_bytes() == _OLD_MARKER  # left as it was
    # A new store is rendered under today's version and says so.
    new = Store(tmp_path / "new")
    assert new.renderer == 2 and b'"renderer":2' in (tmp_path / "new" / "store.json").read_bytes()
    got = await Recorder(new, search=InMemoryBackend("web_search", _hf_first)).web_search("q", 2)
    # (the same two hits: they keep their places 1 and 2 in the provider's list, 0 dropped)
    assert got.text == v1 and got.data == replayed.data
    one = await Recorder(new, search=InMemoryBackend("web_search", _hf_first)).web_search("q", 1)
    assert one.text == "\nIndex: 1\nURL: https://e.org/1\nTitle: T1\nPreview: S1\n"
    # Asking for another rendering is always possible.
    asked = await Recorder(old, mode="replay",
                           render_options=RenderOptions()).web_search("q", 2)
    assert asked.text == got.text


async def test_the_renderer_version_travels_with_packs_and_merges(tmp_path: Path) -> None:
    old = Store(tmp_path / "old")
    (tmp_path / "old" / "store.json").write_bytes(_OLD_MARKER)
    old = Store(tmp_path / "old")
    await Recorder(old, search=InMemoryBackend("web_search", _hf_first)).web_search("q", 2)
    pack(old, tmp_path / "old.cirpack")
    manifest = read_manifest(tmp_path / "old.cirpack")
    assert "renderer" not in manifest and pack_renderer(manifest) == 1  # bytes as before
    copy = Store(tmp_path / "copy", renderer=pack_renderer(manifest))
    unpack(tmp_path / "old.cirpack", copy)
    assert (await Recorder(copy, mode="replay").web_search("q", 2)).text.startswith(
        "\nIndex: 1\nURL: https://e.org/1\n")
    fresh = Store(tmp_path / "fresh")  # empty: it takes the pack's version
    unpack(tmp_path / "old.cirpack", fresh)
    assert fresh.renderer == Store(tmp_path / "fresh").renderer == 1
    busy = Store(tmp_path / "busy")
    await Recorder(busy, search=InMemoryBackend("web_search", _hf_first)).web_search("b", 2)
    with pytest.raises(PackError, match=r"renderer version 1, but the store .* version 2"):
        unpack(tmp_path / "old.cirpack", busy)
    assert len(busy) == 1 and busy.renderer == 2
    new = Store(tmp_path / "new2")
    await Recorder(new, search=InMemoryBackend("web_search", _hf_first)).web_search("r", 2)
    pack(new, tmp_path / "new.cirpack")
    assert pack_renderer(read_manifest(tmp_path / "new.cirpack")) == 2
    merged = merge_stores([tmp_path / "old", tmp_path / "copy"], tmp_path / "merged")
    assert merged.entries == 1 and Store(tmp_path / "merged").renderer == 1
    with pytest.raises(StoreError, match="different renderer versions"):
        merge_stores([tmp_path / "old", tmp_path / "new2"], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()


_DATA = Path(__file__).parent / "data"


async def test_a_pack_made_by_the_renderer_1_cirkit_replays_byte_for_byte(tmp_path: Path) -> None:
    """tests/recorders/data/renderer-v1.cirpack was packed, and renderer-v1-observations.json
    written, by cirkit before renderer version 2 (commit 802a8da): searches with a dropped
    Hugging Face hit, a 6000-word page with a title line, a 404, a Hugging Face visit. Unpacked
    and replayed today, every call has the same key and shows the same bytes."""
    calls = json.loads((_DATA / "renderer-v1-observations.json").read_text("utf-8"))
    manifest = read_manifest(_DATA / "renderer-v1.cirpack")
    assert "renderer" not in manifest
    store = Store(tmp_path / "store")  # made by today's cirkit; it takes the pack's version
    unpack(_DATA / "renderer-v1.cirpack", store)
    assert store.renderer == 1
    replay = Recorder(Store(tmp_path / "store", readonly=True), mode="replay")
    for call in calls:
        got = await replay.call(call["tool"], call["args"])
        assert (got.key, got.text) == (call["key"], call["text"]), call["args"]
    # Today's rendering of the same answers differs (that is what the version keeps apart).
    today = Recorder(store, mode="replay", render_options=RenderOptions())
    assert (await today.call(calls[0]["tool"], calls[0]["args"])).text.startswith("\nIndex: 0")
