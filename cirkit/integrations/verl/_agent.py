"""The ``cir_agent`` loop without verl's classes: cirkit's own rollout loop
(:func:`cirkit.rollout.run_rollout`) driven by verl's server manager, its tools and code runs
through cirkit's sandbox and store, its result in the fields of verl's ``AgentLoopOutput``.

verl builds one agent loop object per sample; the store, the sandbox and the tokenizer are
opened once per process (per event loop) and shared by every sample, as ``cirkit rollout``
shares them across its rollouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cirkit.errors import CirkitError
from cirkit.inputs import Question
from cirkit.llm import Sampling
from cirkit.rollout import (
    CodeRun,
    RolloutConfig,
    RolloutLimits,
    Runner,
    exec_runner,
    run_rollout,
    sandbox_fingerprint,
)
from cirkit.tokenizer import ModelTokenizer
from cirkit.trajectory import Trajectory
from recorders import SEARCH, VISIT, Mode, Recorder, Store, make_backend

from ._generate import ServerManager, VerlGenerate
from ._settings import AgentSettings, RowContext

__all__ = ["AgentResources", "AgentResult", "close_shared", "run_cir_agent", "shared_resources"]


@dataclass(slots=True)
class AgentResources:
    """What every sample of a process shares: the tokenizer, the tools' recorder (store and
    backends) and a running sandbox with its runner (code runs through the store in
    ``code_mode``)."""

    tok: ModelTokenizer
    recorder: Recorder
    runner: Runner
    _stack: contextlib.AsyncExitStack

    @classmethod
    async def open(cls, settings: AgentSettings, tokenizer: str) -> AgentResources:
        from cirkit.sandbox import Limits, Sandbox

        tok = ModelTokenizer(tokenizer)
        mode = settings.tools_mode
        live = mode is not Mode.REPLAY and mode is not Mode.OFF
        opts: dict[str, Any] = {"corpus": settings.corpus} if settings.corpus else {}
        search = make_backend(SEARCH, settings.search_backend,
                              **(opts if settings.search_backend == "local" else {})) \
            if live else None
        visit = make_backend(VISIT, settings.visit_backend,
                             **(opts if settings.visit_backend == "local" else {})) \
            if live else None
        code_mode = settings.code_mode
        reads_only = mode in (Mode.REPLAY, Mode.OFF) and code_mode in (Mode.REPLAY, Mode.OFF)
        store = Store(settings.store, readonly=reads_only) \
            if settings.store is not None else None
        recorder = Recorder(store, search=search, visit=visit, mode=mode)
        code = Recorder(store if code_mode is not Mode.OFF else None, mode=code_mode)
        stack = contextlib.AsyncExitStack()
        if store is not None:
            stack.enter_context(store)
        limits = Limits(wall_time_s=settings.block_timeout)
        fingerprint = sandbox_fingerprint(limits)
        sb = await stack.enter_async_context(
            Sandbox(workers=settings.workers, limits=limits, tool_handler=recorder.call))
        runner = exec_runner(code, sb.run, fingerprint=fingerprint)
        return cls(tok, recorder, runner, stack)

    async def aclose(self) -> None:
        await self._stack.aclose()


_SHARED: dict[tuple[Any, ...], AgentResources] = {}
_OPENING: dict[tuple[Any, ...], asyncio.Lock] = {}


async def shared_resources(settings: AgentSettings, tokenizer: str) -> AgentResources:
    """This process's resources for ``settings`` on the running event loop, opened once."""
    loop = asyncio.get_running_loop()
    key = (id(loop), tokenizer, *settings.key())
    res = _SHARED.get(key)
    if res is None:
        lock = _OPENING.setdefault(key, asyncio.Lock())
        async with lock:
            res = _SHARED.get(key)
            if res is None:
                res = await AgentResources.open(settings, tokenizer)
                _SHARED[key] = res
    return res


async def close_shared() -> None:
    """Close the resources opened on the running loop (a test's or a worker's shutdown)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [k for k in _SHARED if k[0] == loop_id]:
        await _SHARED.pop(key).aclose()
        _OPENING.pop(key, None)


@dataclass(slots=True, frozen=True)
class AgentResult:
    """One sample's outcome in verl's terms (``AgentLoopOutput``'s fields) and cirkit's
    (the whole :class:`~cirkit.trajectory.Trajectory`)."""

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    num_turns: int
    generate_seconds: float
    tool_seconds: float
    trajectory: Trajectory

    def extra_fields(self) -> dict[str, Any]:
        t = self.trajectory
        errors = sum(1 for b in t.code_blocks for c in b.tool_calls if c.get("error"))
        return {"cir_finish_reason": t.finish_reason, "cir_num_code_blocks": t.num_code_blocks,
                "cir_tool_errors": errors, "cir_store_keys": len(t.store_keys)}


def rollout_config(settings: AgentSettings, sampling: Mapping[str, Any],
                   model: str) -> RolloutConfig:
    """The rollout configuration of one sample: the limits and prompt settings, the sampling
    verl asks for (temperature, top_p, top_k; validation's greedy included), the base seed."""
    from cirkit.cir import PromptTemplate

    s = settings
    return RolloutConfig(
        model=model, date=s.date, dialect=s.dialect,
        template=PromptTemplate.from_file(s.template) if s.template else None,
        sampling=Sampling(temperature=float(sampling.get("temperature", 1.0)),
                          top_p=float(sampling.get("top_p", 1.0)),
                          top_k=int(sampling.get("top_k", -1)), seed=s.seed or 0,
                          max_tokens=s.max_response_tokens),
        limits=RolloutLimits(s.max_code_blocks, s.max_observation_tokens,
                             s.max_response_tokens, s.max_total_tokens),
        block_timeout=s.block_timeout)


async def run_cir_agent(settings: AgentSettings, row: RowContext, *, server: ServerManager,
                        sampling: Mapping[str, Any], tokenizer: str, request_id: str,
                        model: str = "policy") -> AgentResult:
    """One sample through cirkit's rollout loop. A rollout that ended in an error (a server
    failure, a store miss in replay) raises: a trainer must not learn from a broken sample."""
    res = await shared_resources(settings, tokenizer)
    cfg = rollout_config(settings, sampling, model)
    gen = VerlGenerate(server, res.tok, request_id, base=dict(sampling),
                       seeded=settings.seed is not None)
    tool_seconds = 0.0

    async def runner(code: str) -> CodeRun:
        nonlocal tool_seconds
        started = time.perf_counter()
        try:
            return await res.runner(code)
        finally:
            tool_seconds += time.perf_counter() - started

    q = Question(row.question_id, row.question, row.ground_truth, row.source)
    t = await run_rollout(q, row.sample_index, cfg=cfg, tok=res.tok, generate=gen,
                          runner=runner, messages=row.messages)
    if t.finish_reason == "error":
        raise CirkitError(f"the cir_agent rollout of question {row.question_id} failed: "
                          f"{t.error}", hint="see the cause; in replay mode, record the "
                                             "missing calls first (tools_mode: auto)")
    return AgentResult(prompt_ids=list(t.prompt_token_ids),
                       response_ids=list(t.response_token_ids),
                       response_mask=list(t.response_mask),
                       num_turns=1 + gen.requests + len(t.code_blocks),
                       generate_seconds=gen.seconds, tool_seconds=tool_seconds, trajectory=t)

