"""What the ``cir_agent`` loop is told: its settings from the agent loop's YAML entry (which
verl hands to the loop's constructor), bounded by verl's rollout lengths, and per row from
``extra_info``.

No verl import here: the settings are plain values, read and checked the same way whether verl
or a test builds them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cirkit.cir import CARD, DEFAULT_DATE, DIALECTS
from cirkit.errors import CirkitError
from recorders import Mode

__all__ = ["AGENT_NAME", "AgentSettings", "RowContext"]

#: The name rows carry in their ``agent_name`` column and the YAML entry registers.
AGENT_NAME = "cir_agent"
_PATH_FIELDS = ("store", "corpus", "template")


@dataclass(slots=True, frozen=True, kw_only=True)
class AgentSettings:
    """Everything the loop needs beyond the row: the store and its mode for the web tools
    (``tools_mode``) and for code runs (``code_mode``), the backends a live mode asks, the CIR
    limits, the prompt's date and dialect, the base seed (None: verl's sampling decides, as for
    its own loops) and the sandbox.

    ``code_mode`` is "off" by default: during RL the policy writes new code at every step, so
    code runs execute in the sandbox each time (never stored: the store would grow without
    bound and replay nothing) while the web tools they call are answered by the store.
    ``cirkit rollout`` stores code runs in its tools mode; set ``code_mode`` to the same mode
    to replay a recorded rollout's code runs as they were."""

    store: Path | None = None
    tools_mode: Mode = Mode.REPLAY
    code_mode: Mode = Mode.OFF
    search_backend: str = "local"
    visit_backend: str = "local"
    corpus: Path | None = None
    tokenizer: str | None = None  # default: verl's actor_rollout_ref.model.path
    max_code_blocks: int = CARD.max_code_blocks
    max_observation_tokens: int = CARD.max_observation_tokens
    max_response_tokens: int = CARD.max_response_tokens
    max_total_tokens: int = CARD.max_total_tokens
    date: str = DEFAULT_DATE
    dialect: str = "card"
    template: Path | None = None
    seed: int | None = None
    block_timeout: float = 10.0
    workers: int | None = None

    @classmethod
    def from_config(cls, values: Mapping[str, Any], *,
                    response_length: int | None = None,
                    prompt_length: int | None = None) -> AgentSettings:
        """Settings from the agent loop's YAML entry (unknown keys are an error naming the
        known ones). The store defaults to ``$CIRKIT_STORE``. The token limits never exceed
        verl's ``rollout.response_length`` and ``prompt_length + response_length``: verl pads
        every response to that length and cannot take a longer one."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in values.items() if k not in ("name", "_target_")}
        unknown = sorted(set(given) - known)
        if unknown:
            raise CirkitError(f"unknown cir_agent setting(s): {', '.join(unknown)}",
                              setting=unknown[0],
                              hint=f"use only: {', '.join(sorted(known))}")
        kw: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        if "store" not in kw and os.environ.get("CIRKIT_STORE"):
            kw["store"] = os.environ["CIRKIT_STORE"]
        for k in _PATH_FIELDS:
            if k in kw:
                kw[k] = Path(str(kw[k]))
        for name in ("tools_mode", "code_mode"):
            if name in kw:
                try:
                    kw[name] = Mode.parse(str(kw[name]))
                except ValueError as e:
                    raise CirkitError(str(e), setting=name,
                                      hint="use replay (RL on a recorded store), auto, record, "
                                           "rewrite or off") from None
        s = cls(**kw)
        if response_length is not None:
            s = replace(s, max_response_tokens=min(s.max_response_tokens, response_length))
            if prompt_length is not None:
                s = replace(s, max_total_tokens=min(s.max_total_tokens,
                                                    prompt_length + response_length))
        s.check()
        return s

    def check(self) -> None:
        """One clear error for a setting the loop cannot run with."""
        for name in ("tools_mode", "code_mode"):
            mode = getattr(self, name)
            if self.store is None and mode is not Mode.OFF:
                raise CirkitError(f"{name} {mode.value} needs a store",
                                  setting="store", env_var="CIRKIT_STORE",
                                  hint="set store: <dir> in the cir_agent entry of the agent "
                                       f"loop config (or CIRKIT_STORE), or {name}: off")
        if Mode.REPLAY in (self.tools_mode, self.code_mode) and self.store is not None \
                and not self.store.is_dir():
            raise CirkitError(f"the store {self.store} does not exist, and replay reads one",
                              setting="store",
                              hint="record it first (tools_mode: auto), or point store at it")
        if self.dialect not in DIALECTS:
            raise CirkitError(f"unknown dialect {self.dialect!r}", setting="dialect",
                              hint=f"use one of: {', '.join(sorted(DIALECTS))}")
        for name in ("max_code_blocks", "max_observation_tokens", "max_response_tokens",
                     "max_total_tokens"):
            if int(getattr(self, name)) < (0 if name == "max_code_blocks" else 1):
                raise CirkitError(f"{name} must be positive, got {getattr(self, name)}",
                                  setting=name, hint=f"give a positive {name}")

    def key(self) -> tuple[Any, ...]:
        """What the process-wide resources (store, sandbox, tokenizer) depend on."""
        return (self.store, self.tools_mode, self.code_mode, self.search_backend,
                self.visit_backend, self.corpus, self.tokenizer, self.block_timeout,
                self.workers)


@dataclass(slots=True, frozen=True)
class RowContext:
    """What one dataset row (verl's per-sample kwargs) tells the loop: the question, its id
    (seeds derive from it), the chat messages the row holds, and the sample index."""

    question_id: str
    question: str
    messages: list[dict[str, str]] | None
    ground_truth: Any = None
    source: str = ""
    sample_index: int = 0

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> RowContext:
        """From verl's per-sample fields: ``raw_prompt`` (the messages), ``extra_info``
        (``question_id``, ``question``, ``sample_index``), ``reward_model``, ``data_source``.
        Rows ``cirkit build rl`` wrote carry all of them."""
        extra = _mapping(kwargs.get("extra_info"))
        raw = kwargs.get("raw_prompt")
        messages = [{"role": str(m["role"]), "content": str(m["content"])}
                    for m in raw] if raw is not None else None
        question = extra.get("question")
        if not question and messages:
            users = [m["content"] for m in messages if m["role"] == "user"]
            question = users[-1] if users else None
        if not question:
            raise CirkitError("the row has no question: neither extra_info.question nor a "
                              "user message in raw_prompt", setting="extra_info",
                              hint="build the rows with `cirkit build rl`")
        qid = extra.get("question_id")
        if qid is None or qid == "":
            qid = extra.get("index", kwargs.get("index", 0))
        gt = _mapping(kwargs.get("reward_model")).get("ground_truth")
        return cls(question_id=str(qid), question=str(question), messages=messages,
                   ground_truth=gt, source=str(kwargs.get("data_source") or ""),
                   sample_index=int(extra.get("sample_index", 0) or 0))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
