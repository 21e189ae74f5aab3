"""What the tool server does, apart from HTTP: tool calls through a store, Search-R1 retrieval,
and CIR observations built by the rollout's own code.

A call goes to the ``Recorder`` in its mode. In replay a miss raises ``ReplayMissError``
(naming the key's fields and the nearest recorded calls, found off the event loop) unless an
``on_miss`` fallback, a Recorder over local backends that stores nothing, answers it; such
answers are flagged.

Code blocks run as in ``cirkit rollout``: each in a fresh sandbox child (rollouts keep no
state between blocks, so a trajectory needs no session of its own), its run memoised in the
store under the same key, its observation made by ``run_block_turn``. In replay a block the
store never saw runs live in the sandbox and is not stored (the store is read-only); its tool
calls still replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cirkit.cir import CARD, END_CODE, pending_code
from cirkit.errors import CirkitError
from cirkit.rollout import CodeRun, Runner, exec_runner, run_block_turn, sandbox_fingerprint
from cirkit.sandbox import Limits, Sandbox
from cirkit.tokenizer import ModelTokenizer
from recorders import (
    EXECUTION,
    SEARCH,
    InvalidCallError,
    Mode,
    Recorder,
    ReplayMissError,
    RetrieveRequest,
    Store,
    ToolResult,
    make_key,
    retrieve_answer,
    stored_search_documents,
)

from ._metrics import Metrics

__all__ = ["ObserveRequest", "ToolAnswer", "ToolService", "parse_observe", "tool_args"]


@dataclass(slots=True, frozen=True)
class ToolAnswer:
    """A call's result, and whether the on-miss fallback (not the store) answered it."""

    result: ToolResult
    answered_locally: bool = False

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {"tool": r.tool, "args": r.args, "key": r.key, "status": r.status,
                "backend": r.backend, "from_store": r.from_store,
                "answered_locally": self.answered_locally, "text": r.text, "data": r.data}


@dataclass(slots=True, frozen=True)
class ObserveRequest:
    """A verl-tool ``/get_observation`` body: one action per trajectory, each with its extra
    fields (``finish``, ``is_last_step``, ...)."""

    trajectory_ids: tuple[str, ...]
    actions: tuple[str, ...]
    extra_fields: tuple[Mapping[str, Any], ...]


def _bad(message: str) -> InvalidCallError:
    return InvalidCallError(message, setting="body", hint=(
        'send {"trajectory_ids": [...], "actions": [...], "extra_fields": [{...}, ...]}, '
        "one entry per trajectory"))


def parse_observe(body: Any) -> ObserveRequest:
    """The request a ``/get_observation`` body asks for. As verl-tool does, a top-level list
    other than the three named fields (``finish``, ``is_last_step``) joins each trajectory's
    extra fields."""
    if not isinstance(body, Mapping):
        raise _bad("the body must be an object")
    ids, actions = body.get("trajectory_ids"), body.get("actions")
    if not isinstance(ids, list) or not isinstance(actions, list) or not ids:
        raise _bad("'trajectory_ids' and 'actions' must be non-empty lists")
    if len(ids) != len(actions):
        raise _bad(f"{len(ids)} trajectory_ids but {len(actions)} actions")
    if not all(isinstance(a, str) for a in actions):
        raise _bad("every action must be a string")
    extra = body.get("extra_fields")
    if extra is None:
        extra = [{} for _ in ids]
    if not isinstance(extra, list) or len(extra) != len(ids) or \
            not all(isinstance(e, Mapping) for e in extra):
        raise _bad("'extra_fields' must be a list of objects, one per trajectory")
    fields = [dict(e) for e in extra]
    for name, values in body.items():
        if name in ("trajectory_ids", "actions", "extra_fields"):
            continue
        if not isinstance(values, list) or len(values) != len(ids):
            raise _bad(f"'{name}' must be a list with one value per trajectory")
        for f, v in zip(fields, values, strict=True):
            f[name] = v
    return ObserveRequest(tuple(str(i) for i in ids), tuple(actions), tuple(fields))


class ToolService:
    """Tool calls, retrieval and observations over one Recorder; ``start()`` inside the event
    loop that serves (it starts the sandbox), ``close()`` after.

    ``fallback``: answers replay misses (a Recorder over local backends in mode off).
    ``tokenizer``: the model's, for the observations' token cut; without it the ``cir`` tool
    is off. ``workers``: sandbox workers (blocks running at once)."""

    def __init__(
        self, recorder: Recorder, *, fallback: Recorder | None = None,
        tokenizer: ModelTokenizer | None = None,
        max_observation_tokens: int = CARD.max_observation_tokens,
        block_timeout: float = 10.0, demo_error_hint: bool = False, workers: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.recorder = recorder
        self.fallback = fallback
        self.tokenizer = tokenizer
        self.max_observation_tokens = max_observation_tokens
        self.demo_error_hint = demo_error_hint
        self.metrics = metrics or Metrics()
        self.limits = Limits(wall_time_s=block_timeout)
        self.fingerprint = sandbox_fingerprint(self.limits)
        self._workers = workers
        # one thread builds replay-miss errors (each reads the whole index): see _miss
        self._miss_pool: ThreadPoolExecutor | None = None
        self._miss_recorder: Recorder | None = None
        self._sandbox: Sandbox | None = None
        self._runner: Runner | None = None

    @property
    def mode(self) -> Mode:
        return self.recorder.mode

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self.tokenizer is None or self._sandbox is not None:
            return
        sb = Sandbox(workers=self._workers, limits=self.limits, tool_handler=self._tool)
        await sb.__aenter__()
        self._sandbox = sb
        stored = exec_runner(self.recorder, sb.run, fingerprint=self.fingerprint)
        live = exec_runner(Recorder(None, mode=Mode.OFF, track_keys=False), sb.run,
                           fingerprint=self.fingerprint)
        self._runner = self._exec_runner(stored, live)

    async def close(self) -> None:
        sb, self._sandbox, self._runner = self._sandbox, None, None
        if sb is not None:
            await sb.__aexit__(None, None, None)

        def close_miss_store() -> None:
            rec, self._miss_recorder = self._miss_recorder, None
            if rec is not None and rec.store is not None:
                rec.store.close()

        pool, self._miss_pool = self._miss_pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(pool, close_miss_store)
            pool.shutdown()

    # -- tool calls --------------------------------------------------------------------------
    async def call(self, tool: str, args: Mapping[str, Any]) -> ToolAnswer:
        """One ``web_search``/``web_visit`` through the store in the server's mode."""
        m = self.metrics
        store = self.recorder.store
        if self.mode is Mode.REPLAY and store is not None and make_key(tool, args)[0] not in store:
            m.count("cirkit_tools_store_misses_total", tool)
            if self.fallback is not None:
                result = await self.fallback.call(tool, args)
                m.count("cirkit_tools_live_calls_total", tool)
                m.count("cirkit_tools_local_answers_total", tool)
                return ToolAnswer(result, answered_locally=True)
            if self._miss_pool is None:
                self._miss_pool = ThreadPoolExecutor(1, thread_name_prefix="cirkit-miss")
            miss = await asyncio.get_running_loop().run_in_executor(
                self._miss_pool, self._miss, tool, dict(args))
            if miss is not None:
                raise miss
        result = await self.recorder.call(tool, args)
        m.count("cirkit_tools_store_hits_total" if result.from_store
                else "cirkit_tools_live_calls_total", tool)
        return ToolAnswer(result)

    def _miss(self, tool: str, args: dict[str, Any]) -> ReplayMissError | None:
        """The miss error, naming the nearest recorded calls: built in the miss thread with a
        store handle of its own, since finding the nearest calls reads the whole index and
        would stall every other request on the event loop. None if the call is there now
        (another process recorded it meanwhile)."""
        store = self.recorder.store
        assert store is not None
        if self._miss_recorder is None:
            self._miss_recorder = Recorder(Store(store.path, readonly=True), mode=Mode.REPLAY,
                                           track_keys=False)
        try:
            self._miss_recorder.call_sync(tool, args)
        except ReplayMissError as e:
            return e
        return None

    async def _tool(self, tool: str, args: dict[str, Any]) -> ToolResult:
        """The sandbox's tool handler: a block's calls take the same path as HTTP calls."""
        return (await self.call(tool, args)).result

    async def retrieve(self, req: RetrieveRequest) -> tuple[dict[str, Any], list[int]]:
        """The Search-R1 answer for ``req``, one ``web_search`` per query with ``topk`` as
        its ``num_results``; and the indices of the queries the on-miss fallback answered."""
        calls = [self.call(SEARCH, {"query": q, "num_results": req.topk}) for q in req.queries]
        if self.mode is Mode.REPLAY:  # answered at once from the store: tasks only cost
            answers = [await c for c in calls]
        else:  # live backends may answer: in parallel
            answers = list(await asyncio.gather(*calls))
        per_query = [stored_search_documents(a.result.data, req.topk) for a in answers]
        local = [i for i, a in enumerate(answers) if a.answered_locally]
        return retrieve_answer(per_query, return_scores=req.return_scores), local

    # -- CIR observations --------------------------------------------------------------------
    def _exec_runner(self, stored: Runner, live: Runner) -> Runner:
        """Runs through the store (as the rollout does); in replay, a block the store lacks
        runs live and unstored. Counts each run as a store hit or a live run."""
        store, m = self.recorder.store, self.metrics
        replay = self.mode is Mode.REPLAY

        async def runner(code: str) -> CodeRun:
            key, _ = make_key(EXECUTION, {"code": code, "sandbox": self.fingerprint})
            recorded = store is not None and self.mode is not Mode.RECORD and key in store
            m.count("cirkit_tools_store_hits_total" if recorded
                    else "cirkit_tools_live_calls_total", EXECUTION)
            return await (live if replay and not recorded else stored)(code)

        return runner

    async def observe(self, req: ObserveRequest) -> dict[str, Any]:
        """verl-tool's answer: ``observations``, ``dones``, ``valids``, one per action, and
        ``tool_calls``, each block's calls as a rollout record keeps them (plus whether the
        on-miss fallback answered)."""
        if self._runner is None or self.tokenizer is None:
            raise CirkitError("the cir tool needs the model's tokenizer (observations are cut "
                              "in its tokens)", hint="start the server with a tokenizer",
                              setting="tokenizer")
        out = await asyncio.gather(*(self._observe_one(a, f) for a, f in
                                     zip(req.actions, req.extra_fields, strict=True)))
        return {"observations": [o[0] for o in out], "dones": [o[1] for o in out],
                "valids": [o[2] for o in out], "tool_calls": [o[3] for o in out]}

    async def _observe_one(self, action: str, extra: Mapping[str, Any]
                           ) -> tuple[str, bool, bool, list[dict[str, Any]]]:
        """One action: a turn ending at a code block gets the block's observation, exactly as
        ``cirkit rollout`` appends it; any other turn is the final answer (done, not valid)."""
        if extra.get("finish"):
            return "", True, True, []
        if not action.endswith(END_CODE) and pending_code(action) is None:
            return "", True, False, []
        assert self._runner is not None and self.tokenizer is not None
        step = await run_block_turn(action, runner=self._runner, tokenizer=self.tokenizer,
                                    max_observation_tokens=self.max_observation_tokens,
                                    demo_error_hint=self.demo_error_hint)
        store, replay = self.recorder.store, self.mode is Mode.REPLAY
        calls = [{**c, "answered_locally": bool(replay and c["key"] and store is not None
                                                and c["key"] not in store)}
                 for c in step.block.tool_calls]
        return step.text, bool(extra.get("is_last_step")), bool(step.block.code), calls


def tool_args(tool: str, body: Any) -> dict[str, Any]:
    """The call a ``/web_search`` or ``/web_visit`` body asks for (checked by make_key)."""
    if not isinstance(body, Mapping):
        raise InvalidCallError("the body must be an object", setting="body",
                               hint='send {"query": "...", "num_results": 5} or {"url": "..."}')
    if tool == SEARCH:
        args = {"query": body.get("query"), "num_results": body.get("num_results", 5)}
    else:
        args = {"url": body.get("url")}
    make_key(tool, args)
    return args

