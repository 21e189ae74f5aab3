"""One CIR rollout, token-in/token-out: generate, run the code block, append the observation,
generate again, until an answer or a limit.

The generated ids are kept exactly as the server sent them (mask 1, ``<end_code>`` included);
each observation is tokenized alone and appended with mask 0. Limits count observations too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from recorders import EXECUTION, Recorder, Response

from ..cir import (
    END_CODE,
    STOP,
    PromptTemplate,
    final_answer,
    make_observation,
    pending_code,
    render_messages,
)
from ..inputs import Question
from ..llm._client import derive_seed
from ..llm._types import CompletionClient, Sampling
from ._chat import ChatTokenizer

__all__ = [
    "RolloutConfig", "RolloutLimits", "Runner", "exec_runner", "run_rollout",
    "trajectory_id",
]

EXEC_VERSION = 1  # part of every code_exec key: bump when the sandbox's semantics change
# Names no marker literally: an observation must never hold a token the model only generates.
NO_CODE = ("Error: no well-formed code block was found. Open the block with the start-code "
           "marker and a python fence, and close it with a fence and the end-code marker.")


@dataclass(slots=True, frozen=True)
class RolloutLimits:
    """The card's RL limits; observations count against both token limits."""

    max_code_blocks: int = 32
    max_observation_tokens: int = 3000
    max_response_tokens: int = 16384
    max_total_tokens: int = 32768


@dataclass(slots=True, frozen=True)
class RolloutConfig:
    model: str
    date: str  # the prompt's date, an input: never now()
    sampling: Sampling = field(default_factory=Sampling)  # .seed is the base seed
    limits: RolloutLimits = field(default_factory=RolloutLimits)
    dialect: str = "card"
    template: PromptTemplate | None = None
    think_prefix: str = "<think>\n"  # the demo's client prefills this after the chat template
    demo_error_hint: bool = False
    block_timeout: float = 10.0

    def template_sha256(self) -> str:
        from ..cir import BUILTIN_TEMPLATE

        return (self.template or BUILTIN_TEMPLATE).sha256


def trajectory_id(question_id: str, sample_index: int, base_seed: int) -> str:
    h = hashlib.sha256(f"{question_id}\x00{sample_index}\x00{base_seed}".encode())
    return h.hexdigest()[:24]


Runner = Callable[[str], Awaitable[dict[str, Any]]]


def exec_runner(recorder: Recorder, run: Callable[[str], Awaitable[Any]], *,
                fingerprint: dict[str, Any]) -> Runner:
    """Runs a block through the store (tool ``code_exec``), so a replay gets the very same
    output and timing even for code that prints the time; ``run`` is the sandbox's."""

    async def runner(code: str) -> dict[str, Any]:
        async def fetch() -> Response:
            r = await run(code)
            return Response({
                "stdout": r.stdout, "stderr": r.stderr, "error": r.error, "notice": r.notice,
                "duration_ms": round(r.duration_ms, 3), "output_truncated": r.output_truncated,
                "tool_calls": [c.to_json() for c in r.tool_calls],
            })

        res = await recorder.memo(EXECUTION, {"code": code, "sandbox": fingerprint}, fetch,
                                  backend="sandbox")
        return {**res.data, "key": res.key}

    return runner


async def run_rollout(
    q: Question, sample_index: int, *, cfg: RolloutConfig, tok: ChatTokenizer,
    client: CompletionClient, runner: Runner,
) -> dict[str, Any]:
    """One trajectory record (the contract in architecture.md). Never raises for the model's
    or a server's fault: ``finish_reason`` "error" and ``error`` say what happened."""
    base_seed = cfg.sampling.seed or 0
    seed = derive_seed(base_seed, q.id, sample_index)
    lim = cfg.limits
    messages = render_messages(q.question, template=cfg.template, date=cfg.date,
                               dialect=cfg.dialect, max_code_blocks=lim.max_code_blocks)
    prompt_text = tok.chat_prompt(messages) + cfg.think_prefix
    prompt_ids = tok.encode(prompt_text)
    ids: list[int] = []
    mask: list[int] = []
    parts: list[str] = []
    blocks: list[dict[str, Any]] = []
    keys: list[str] = []
    error: str | None = None
    finish = "error"
    try:
        for turn in range(lim.max_code_blocks + 1):
            room_resp = lim.max_response_tokens - len(ids)
            room_total = lim.max_total_tokens - len(prompt_ids) - len(ids)
            budget = min(cfg.sampling.max_tokens, room_resp, room_total)
            if budget <= 0:
                finish = "max_response_tokens" if room_resp <= 0 else "max_total_tokens"
                break
            comp = await client.complete(
                prompt_ids + ids, stop=list(STOP),
                sampling=replace(cfg.sampling, seed=derive_seed(base_seed, q.id, sample_index,
                                                                turn), max_tokens=budget))
            if comp.key:
                keys.append(comp.key)
            ids += comp.token_ids
            mask += [1] * len(comp.token_ids)
            parts.append(comp.text)
            if not (comp.stop_reason == END_CODE or comp.text.endswith(END_CODE)):
                if comp.finish_reason != "length":
                    finish = "answer"
                elif budget == room_resp:
                    finish = "max_response_tokens"
                elif budget == room_total:
                    finish = "max_total_tokens"
                else:
                    finish = "length"
                break
            if len(blocks) >= lim.max_code_blocks:
                finish = "max_code_blocks"
                break
            code = pending_code("".join(parts))
            ran = await runner(code) if code is not None else {
                "stdout": "", "stderr": NO_CODE, "error": "no_code", "notice": None,
                "duration_ms": 0.0, "tool_calls": [], "key": None}
            if ran.get("key"):
                keys.append(ran["key"])
            keys += [c["key"] for c in ran["tool_calls"] if c.get("key")]
            obs = make_observation(ran["stdout"], ran["stderr"], error=ran["notice"],
                                   tokenizer=tok, max_tokens=lim.max_observation_tokens,
                                   demo_error_hint=cfg.demo_error_hint)
            head = "" if comp.text.endswith(END_CODE) else END_CODE
            obs_text = head + "\n" + obs.text
            obs_ids = tok.encode(obs_text)
            ids += obs_ids
            mask += [0] * len(obs_ids)
            parts.append(obs_text)
            blocks.append({"code": code or "", "output": obs.body, "error": ran["error"],
                           "duration_ms": ran["duration_ms"], "tool_calls": ran["tool_calls"]})
            over_resp = len(ids) - lim.max_response_tokens
            over_total = len(prompt_ids) + len(ids) - lim.max_total_tokens
            if over_resp >= 0 or over_total >= 0:
                # An observation pushed past a limit: cut to it (ids, mask and text together).
                cut = len(ids) - max(over_resp, over_total, 0)
                ids, mask = ids[:cut], mask[:cut]
                parts = [tok.decode(ids)]
                finish = "max_response_tokens" if over_resp >= over_total else "max_total_tokens"
                break
    except Exception as e:
        error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
        finish = "error"
    text = "".join(parts)
    record: dict[str, Any] = {
        "id": trajectory_id(q.id, sample_index, base_seed),
        "question_id": q.id,
        "question": q.question,
        "ground_truth": q.ground_truth,
        "source": q.source,
        "sample_index": sample_index,
        "model": cfg.model,
        "sampling": {**cfg.sampling.to_json(), "seed": seed, "base_seed": base_seed},
        "dialect": cfg.dialect,
        "prompt_template_sha256": cfg.template_sha256(),
        "date": cfg.date,
        "prompt_text": prompt_text,
        "prompt_token_ids": prompt_ids,
        "response_text": text,
        "response_token_ids": ids,
        "response_mask": mask,
        "code_blocks": blocks,
        "final_answer": final_answer(text) if finish == "answer" else None,
        "finish_reason": finish,
        "num_code_blocks": len(blocks),
        "num_response_tokens": len(ids),
        "decode_ok": tok.decode(ids) == text,
        "store_keys": list(dict.fromkeys(keys)),
        "error": error,
    }
    return record

