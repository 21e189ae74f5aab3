"""The Recorder: a backend per tool, wrapped in a record mode over a Store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._canonical import SEARCH, VISIT, json_loads, make_key, sha256_hex
from ._errors import InvalidCallError, RecordersError, ReplayMissError, StoreError
from ._modes import Mode
from ._payload import encode_payload
from ._redact import redact_data, scrub_bytes, url_secrets
from ._render import RenderOptions, render
from ._store import Entry, Store
from .backends import POLICY_REFUSAL, Backend, Response

__all__ = ["MISS_ARGS_CHARS", "Fetch", "Recorder", "ToolResult"]

Fetch = Callable[[], Awaitable[Response]]


@dataclass(slots=True)
class ToolResult:
    """One answered call: the model-facing ``text`` and where it came from."""

    tool: str
    args: dict[str, Any]
    key: str
    text: str
    data: dict[str, Any]
    status: str
    backend: str
    from_store: bool


class Recorder:
    """Serves ``web_search``/``web_visit`` through a store in a mode.

    ``await rec.call("web_search", {"query": ..., "num_results": 5})`` returns a ToolResult.
    Concurrent calls of the same key share one backend request (single-flight).
    ``keys_used`` lists every key served, in first-use order (a rollout's provenance).
    """

    def __init__(
        self,
        store: Store | None,
        *,
        search: Backend | None = None,
        visit: Backend | None = None,
        mode: Mode | str = Mode.AUTO,
        render_options: RenderOptions | None = None,
        clock: Callable[[], float] = time.time,
        track_keys: bool = True,
    ) -> None:
        """``track_keys=False``: no ``keys_used`` list (a long-lived server would grow it
        without end)."""
        self._track_keys = track_keys
        self._mode = mode = Mode.parse(mode)
        if store is None and mode is not Mode.OFF:
            raise RecordersError(f"mode {mode} needs a store", hint="pass a Store or use off",
                                 setting="store")
        if store is not None and store.readonly and mode in (Mode.RECORD, Mode.AUTO,
                                                             Mode.REWRITE):
            raise RecordersError(f"mode {mode} records, but the store {store.path} was "
                                 "opened read-only", hint="use replay, or open it writable",
                                 setting="mode")
        self._store_first = mode is Mode.REPLAY or mode is Mode.AUTO
        self.store = store
        self.backends: dict[str, Backend | None] = {SEARCH: search, VISIT: visit}
        for tool, b in self.backends.items():
            if b is not None and b.tool != tool:
                raise ValueError(f"backend {b.name!r} answers {b.tool}, not {tool}")
        # A store replays under the renderer version it was recorded under, unless the caller
        # asks for another rendering.
        if render_options is None:
            render_options = RenderOptions(store.renderer) if store is not None else RenderOptions()
        self.render_options = render_options
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[ToolResult]] = {}
        self._rewritten: set[str] = set()
        self._used: dict[str, None] = {}  # keys in first-use order (a dict keeps it)
        self.counts = {"replayed": 0, "recorded": 0, "live": 0}

    # -- public ----------------------------------------------------------------------------
    @property
    def mode(self) -> Mode:
        """Fixed for the Recorder's life: make another Recorder for another mode."""
        return self._mode

    @property
    def keys_used(self) -> list[str]:
        """Every key served so far, in first-use order (a rollout's provenance)."""
        return list(self._used)

    async def web_search(self, query: str, num_results: int = 5) -> ToolResult:
        return await self.call(SEARCH, {"query": query, "num_results": num_results})

    async def web_visit(self, url: str) -> ToolResult:
        return await self.call(VISIT, {"url": url})

    def call_sync(self, tool: str, args: Mapping[str, Any]) -> ToolResult:
        """A thin sync wrapper for scripts; use ``call`` inside an event loop."""
        return asyncio.run(self.call(tool, args))

    async def call(self, tool: str, args: Mapping[str, Any]) -> ToolResult:
        """A web tool call, answered by the store or by the tool's backend."""
        if tool not in self.backends:
            raise InvalidCallError(f"unknown tool {tool!r}; valid tools: {SEARCH}, {VISIT}",
                                   hint="answer other calls through Recorder.memo")
        key, norm = make_key(tool, args)
        hit = self._track(tool, key, norm)
        if hit is not None:
            return hit
        backend = self.backends[tool]

        async def fetch() -> Response:
            if backend is None:
                raise RecordersError(
                    f"no {tool} backend is configured and the store cannot answer this call",
                    hint=f"pass a {tool} backend (e.g. the local one), or record the call first",
                    setting="backend",
                )
            # The backend gets the caller's arguments (a URL with its own query intact), only
            # stripped; the key and the stored args are the normalised ones.
            live_args = dict(norm)
            if tool == VISIT:
                live_args["url"] = str(args["url"]).strip()
            return await backend.handle(live_args)

        name = backend.name if backend is not None else "none"
        secrets = backend.secrets if backend is not None else ()
        if tool == VISIT:  # the URL's own credentials, as given (the key has them redacted)
            secrets = (*secrets, *url_secrets(str(args["url"])))
        return await self._fetch_once(tool, key, norm, fetch, name, secrets)

    async def memo(
        self, tool: str, args: Mapping[str, Any], fetch: Fetch, *, backend: str,
        secrets: tuple[str, ...] = (),
    ) -> ToolResult:
        """Any other outside call through the same store and mode (a model completion):
        ``args`` name it and make its key, ``fetch`` answers it live. Put a hash in ``args``
        for inputs too big for a key (a prompt's token ids)."""
        key, norm = make_key(tool, args)
        hit = self._track(tool, key, norm)
        if hit is not None:
            return hit
        return await self._fetch_once(tool, key, norm, fetch, backend, secrets)

    def _track(self, tool: str, key: str, norm: dict[str, Any]) -> ToolResult | None:
        """Note the key as used; the stored answer if the mode reads the store first (replay,
        auto, and rewrite for a key already rewritten) and it has one. Every stored answer is
        served here, at once: no await, no closure, no single-flight; except, in auto mode, a
        refusal by cirkit's own policy, which is asked again (see ``POLICY_REFUSAL``)."""
        if self._track_keys:
            self._used.setdefault(key)
        if self._store_first or key in self._rewritten:
            hit = self._replay(tool, key, norm, count=False)
            if hit is None or (hit.status == POLICY_REFUSAL and self._reasks(tool)):
                return None
            self.counts["replayed"] += 1
            return hit
        return None

    def _reasks(self, tool: str) -> bool:
        """Whether a stored refusal by cirkit's own policy is asked again: in auto mode, with
        a backend to ask (the policy may have changed since; strict replay shows it as is)."""
        return self._mode is Mode.AUTO and self.backends.get(tool) is not None

    async def _fetch_once(
        self, tool: str, key: str, norm: dict[str, Any], fetch: Fetch, backend: str,
        secrets: tuple[str, ...],
    ) -> ToolResult:
        """Serve a call the store did not answer (``_track`` looked, and nothing awaited
        since); concurrent calls of one key share it."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[ToolResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._serve(tool, key, norm, fetch, backend, secrets)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            del self._inflight[key]

    # -- internals -------------------------------------------------------------------------
    async def _serve(
        self, tool: str, key: str, norm: dict[str, Any], fetch: Fetch, backend: str,
        secrets: tuple[str, ...],
    ) -> ToolResult:
        mode = self._mode
        if mode is Mode.REPLAY:
            raise self._miss(tool, key, norm)
        started = time.perf_counter()
        resp = await fetch()
        latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
        if mode is Mode.OFF:
            self.counts["live"] += 1
            return self._result(tool, key, norm, resp.data, resp.status, backend, False)
        assert self.store is not None
        if mode is Mode.AUTO and resp.status == POLICY_REFUSAL:
            stored = self._replay(tool, key, norm)  # still refused: the store stays as it was
            if stored is not None and stored.status == POLICY_REFUSAL:
                return stored
        self._record(key, tool, norm, resp, backend, secrets, latency_ms)
        if mode is Mode.REWRITE:
            self._rewritten.add(key)
        self.counts["recorded"] += 1
        # Serve what was stored, so record and replay render from the very same bytes.
        hit = self._replay(tool, key, norm, count=False)
        assert hit is not None
        return ToolResult(hit.tool, hit.args, hit.key, hit.text, hit.data, hit.status,
                          hit.backend, from_store=False)

    def _record(
        self, key: str, tool: str, norm: dict[str, Any], resp: Response, backend: str,
        secrets: tuple[str, ...], latency_ms: float,
    ) -> None:
        """Store the answer, redacted: every secret the backend holds or the visited URL
        carries, and (for web answers) every URL's credentials, on decoded values."""
        assert self.store is not None
        web = tool in (SEARCH, VISIT)
        refs: list[str] = []
        renamed: dict[str, str] = {}  # a raw blob's name before and after its scrub
        for b in resp.extra_blobs:
            clean = scrub_bytes(b, secrets)
            refs.append(self.store.blobs.put(clean))
            if clean is not b:
                renamed[sha256_hex(b)] = refs[-1]
        data = redact_data(resp.data, secrets, urls=web)
        if renamed and data.get("raw_blob") in renamed:
            data = {**data, "raw_blob": renamed[data["raw_blob"]]}
        payload = encode_payload(tool, norm, data, backend=backend, status=resp.status,
                                 refs=refs)
        blob = self.store.blobs.put(payload)  # (args hold no secret: the key rules redact)
        at = round(self._clock(), 3)
        entry = Entry(blob=blob, tool=tool, args=norm, backend=backend, recorded_at=at,
                      latency_ms=latency_ms, status=resp.status, refs=tuple(refs))
        self.store.put_entry(key, entry)
        for url, page in resp.documents.items():
            # The documents a corpus search returned, as the answers to visits of their
            # corpus:// URLs: web_visit resolves them through the store, in any mode.
            doc_key, doc_norm = make_key(VISIT, {"url": url})
            if doc_key in self.store:
                continue
            doc_blob = self.store.blobs.put(encode_payload(
                VISIT, doc_norm, redact_data(page, secrets, urls=True), backend=backend,
                status="ok", refs=()))
            self.store.put_entry(doc_key, Entry(blob=doc_blob, tool=VISIT, args=doc_norm,
                                                backend=backend, recorded_at=at, latency_ms=0.0))

    def _replay(
        self, tool: str, key: str, norm: dict[str, Any], *, count: bool = True
    ) -> ToolResult | None:
        assert self.store is not None
        loaded = self.store.load(key)
        if loaded is None:
            return None
        entry, blob = loaded
        try:
            data = json_loads(blob)["data"]
            if type(data) is not dict:
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise StoreError(
                f"index entry {key} names the blob {entry.blob}, which holds no recorded answer",
                hint="re-record the call (mode record), or restore the store from a copy or a "
                     "pack", setting="mode") from None
        if count:
            self.counts["replayed"] += 1
        return self._result(tool, key, norm, data, entry.status, entry.backend, True)

    def _result(
        self, tool: str, key: str, norm: dict[str, Any], data: dict[str, Any], status: str,
        backend: str, from_store: bool,
    ) -> ToolResult:
        if tool in (SEARCH, VISIT):
            text = render(tool, data, norm, self.render_options)
        else:
            text = str(data.get("text", ""))
        return ToolResult(tool, norm, key, text, data, status, backend, from_store)

    def _miss(self, tool: str, key: str, norm: dict[str, Any]) -> ReplayMissError:
        assert self.store is not None
        near = self.store.nearest(tool, norm, n=3)
        lines = [
            f"strict replay: {tool} was never recorded in {self.store.path}",
            f"  key:  {key}",
            f"  args: {_shown(norm)}",
        ]
        if near:
            lines.append(f"  nearest recorded {tool} calls:")
            for n in near:
                lines.append(
                    f"    {n.key[:12]}  {_shown(n.args)}"
                    f"  (differs in: {', '.join(n.differs) or 'nothing'}; "
                    f"similarity {n.score:.2f})"
                )
        else:
            lines.append(f"  no {tool} call is recorded in this store")
        return ReplayMissError("\n".join(lines), key=key, fields={"tool": tool, **norm},
                               nearest=[n.key for n in near])


MISS_ARGS_CHARS = 500  # of one call's arguments, a replay miss prints at most this many


def _shown(args: dict[str, Any]) -> str:
    """A call's arguments as a miss prints them: JSON, cut to ``MISS_ARGS_CHARS``."""
    text = json.dumps(args, sort_keys=True, ensure_ascii=False)
    if len(text) <= MISS_ARGS_CHARS:
        return text
    return f"{text[:MISS_ARGS_CHARS]}... ({len(text):,} characters in all)"
