"""One CIR rollout, token-in/token-out: generate, run the code block, append the observation,
generate again, until an answer or a limit.

The generated ids are kept exactly as the server sent them (mask 1, ``<end_code>`` included);
each observation is tokenized alone and appended with mask 0. Limits count observations too.

The loop asks only for a :class:`Generate` callable and a :data:`Runner`, so any host (the
``cirkit rollout`` job, a trainer's agent loop) drives the very same loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from cirkit.cir import (
    BUILTIN_TEMPLATE,
    CARD,
    END_CODE,
    STOP,
    PromptTemplate,
    final_answer,
    render_messages,
)
from cirkit.errors import ModelServerError
from cirkit.inputs import Question
from cirkit.llm import Completion, Sampling, derive_seed
from cirkit.tokenizer import ModelTokenizer
from cirkit.trajectory import CodeBlock, FinishReason, Trajectory, trajectory_id

from ._exec import CodeRun, Runner, run_block_turn

__all__ = ["Generate", "RolloutConfig", "RolloutLimits", "check_prompts_fit", "rollout_prompt",
           "run_rollout"]


class Generate(Protocol):
    """One generation request, token-in/token-out (``OpenAICompletionClient.complete`` is
    one): the ids the server generated, the stop string kept."""

    def __call__(self, prompt_ids: list[int], *, stop: list[str],
                 sampling: Sampling) -> Awaitable[Completion]: ...


@dataclass(slots=True, frozen=True)
class RolloutLimits:
    """The card's RL limits; observations count against both token limits."""

    max_code_blocks: int = CARD.max_code_blocks
    max_observation_tokens: int = CARD.max_observation_tokens
    max_response_tokens: int = CARD.max_response_tokens
    max_total_tokens: int = CARD.max_total_tokens


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
    #: The server's context length (vLLM's ``max_model_len``): prompt plus response never
    #: asks past it, whatever the limits say. None: not known, the limits alone apply.
    max_model_len: int | None = None

    def template_sha256(self) -> str:
        return (self.template or BUILTIN_TEMPLATE).sha256

    def total_cap(self) -> int:
        """The total-token limit in force: ``max_total_tokens``, clamped to the context."""
        cap = self.limits.max_total_tokens
        return cap if self.max_model_len is None else min(cap, self.max_model_len)


def rollout_prompt(q: Question, cfg: RolloutConfig, tok: ModelTokenizer, *,
                   messages: list[dict[str, str]] | None = None) -> tuple[str, list[int]]:
    """The text a rollout of ``q`` starts from (chat template, then the think prefix) and its
    ids. ``messages`` are the chat messages as a dataset row already holds them (verl's
    ``raw_prompt``); by default they are rendered from the question with ``cfg``'s template,
    date and dialect."""
    if messages is None:
        messages = render_messages(q.question, template=cfg.template, date=cfg.date,
                                   dialect=cfg.dialect, max_code_blocks=cfg.limits.max_code_blocks)
    text = tok.chat_prompt(messages) + cfg.think_prefix
    return text, tok.encode(text)


def check_prompts_fit(questions: Sequence[Question], cfg: RolloutConfig,
                      tok: ModelTokenizer) -> None:
    """Before any request: every prompt leaves room for at least one generated token in the
    server's context, else one error naming the longest prompt (a server would reject every
    request of that question)."""
    if cfg.max_model_len is None or not questions:
        return
    n, q = max(((len(rollout_prompt(q, cfg, tok)[1]), q) for q in questions),
               key=lambda nq: nq[0])
    if n >= cfg.max_model_len:
        raise ModelServerError(
            f"the prompt of question {q.id!r} is {n} tokens and the server's context length "
            f"(max_model_len) is {cfg.max_model_len}: no room to generate anything",
            hint="start the server with a larger --max-model-len (it must hold the prompt and "
                 "the response), or shorten the question or the prompt template",
            setting="max_model_len")


@dataclass(slots=True)
class _Turns:
    """What a rollout has produced so far: the response ids with their mask and text pieces,
    the code blocks run, the store keys used, and (once known) why it ended."""

    prompt_ids: list[int]
    limits: RolloutLimits
    total_cap: int  # max_total_tokens, clamped to the server's context
    ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    blocks: list[CodeBlock] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    finish: FinishReason = "error"
    error: str | None = None

    def rooms(self) -> tuple[int, int]:
        """Tokens left under the response limit and under the total limit."""
        lim = self.limits
        return (lim.max_response_tokens - len(self.ids),
                self.total_cap - len(self.prompt_ids) - len(self.ids))

    def generated(self, comp: Completion) -> None:
        if comp.key:
            self.keys.append(comp.key)
        self.ids += comp.token_ids
        self.mask += [1] * len(comp.token_ids)
        self.parts.append(comp.text)

    def ran(self, run: CodeRun) -> None:
        if run.key:
            self.keys.append(run.key)
        self.keys += [c.key for c in run.result.tool_calls if c.key]

    def observed(self, block: CodeBlock, text: str, ids: list[int]) -> None:
        self.ids += ids
        self.mask += [0] * len(ids)
        self.parts.append(text)
        self.blocks.append(block)

    def cut_to_limits(self, tok: ModelTokenizer) -> bool:
        """After an observation: if it pushed past a limit, cut ids, mask and text to it
        and say so."""
        over_resp = len(self.ids) - self.limits.max_response_tokens
        over_total = len(self.prompt_ids) + len(self.ids) - self.total_cap
        if over_resp < 0 and over_total < 0:
            return False
        cut = len(self.ids) - max(over_resp, over_total, 0)
        self.ids, self.mask = self.ids[:cut], self.mask[:cut]
        self.parts = [tok.decode(self.ids)]
        self.finish = "max_response_tokens" if over_resp >= over_total else "max_total_tokens"
        return True


def _error_text(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")


async def run_rollout(
    q: Question, sample_index: int, *, cfg: RolloutConfig, tok: ModelTokenizer,
    generate: Generate, runner: Runner, messages: list[dict[str, str]] | None = None,
) -> Trajectory:
    """One trajectory. Never raises for the model's or a server's fault: ``finish_reason``
    "error" and ``error`` say what happened, and what came before is kept. Each request asks
    for at most what is left under the limits and the server's context (``max_model_len``).
    ``messages``: the row's own chat messages (see :func:`rollout_prompt`)."""
    base_seed = cfg.sampling.seed or 0
    lim = cfg.limits
    prompt_text, prompt_ids = rollout_prompt(q, cfg, tok, messages=messages)
    t = _Turns(prompt_ids, lim, cfg.total_cap())
    try:
        for turn in range(lim.max_code_blocks + 1):
            room_resp, room_total = t.rooms()
            budget = min(cfg.sampling.max_tokens, room_resp, room_total)
            if budget <= 0:
                t.finish = "max_response_tokens" if room_resp <= 0 else "max_total_tokens"
                break
            seed = derive_seed(base_seed, q.id, sample_index, turn)
            comp = await generate(t.prompt_ids + t.ids, stop=list(STOP),
                                  sampling=replace(cfg.sampling, seed=seed, max_tokens=budget))
            t.generated(comp)
            if not (comp.stop_reason == END_CODE or comp.text.endswith(END_CODE)):
                if comp.finish_reason != "length":
                    t.finish = "answer"
                elif budget == room_resp:
                    t.finish = "max_response_tokens"
                elif budget == room_total:
                    t.finish = "max_total_tokens"
                else:
                    t.finish = "length"
                break
            if len(t.blocks) >= lim.max_code_blocks:
                t.finish = "max_code_blocks"
                break
            step = await run_block_turn("".join(t.parts), runner=runner, tokenizer=tok,
                                        max_observation_tokens=lim.max_observation_tokens,
                                        demo_error_hint=cfg.demo_error_hint)
            t.ran(step.run)
            t.observed(step.block, step.text, tok.encode(step.text))
            if t.cut_to_limits(tok):
                break
    except Exception as e:
        t.error, t.finish = _error_text(e), "error"
    text = "".join(t.parts)
    return Trajectory(
        id=trajectory_id(q.id, sample_index, base_seed), question_id=q.id,
        question=q.question, ground_truth=q.ground_truth, source=q.source,
        sample_index=sample_index, model=cfg.model,
        sampling={**cfg.sampling.to_json(), "seed": derive_seed(base_seed, q.id, sample_index),
                  "base_seed": base_seed},
        dialect=cfg.dialect, prompt_template_sha256=cfg.template_sha256(), date=cfg.date,
        prompt_text=prompt_text, prompt_token_ids=t.prompt_ids, response_text=text,
        response_token_ids=t.ids, response_mask=t.mask, code_blocks=t.blocks,
        final_answer=final_answer(text) if t.finish == "answer" else None,
        finish_reason=t.finish, decode_ok=tok.decode(t.ids) == text,
        store_keys=list(dict.fromkeys(t.keys)), error=t.error)
