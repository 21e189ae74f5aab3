"""Graders: how one predicted answer is scored against its gold answers.

``em``, ``f1`` and ``cover_em`` are :mod:`cirkit.answers`' (the RL reward's own), so a model
is graded as it was rewarded. ``judge`` asks an LLM over an OpenAI-compatible server; its
completions go through the store like every other outside call, so a re-grade is offline and
deterministic. A judge reply that names no verdict, or more than one, is ``unparsable``:
counted as such, never guessed.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from cirkit.answers import AnswerMetric, cover_exact_match, exact_match, f1_score
from cirkit.errors import CirkitError, ModelServerError
from recorders import COMPLETION, Recorder, ReplayMissError, Response

__all__ = ["GRADERS", "JUDGE_KEY_ENVS", "JUDGE_VERDICTS", "Judge", "JudgeCall", "JudgeTemplate",
           "parse_verdict", "score_rule"]

#: Every grader name ``cirkit eval --grader`` accepts.
GRADERS = ("em", "f1", "cover_em", "judge")
#: What a judge may answer; ``unparsable`` is ours, for a reply that says none (or several).
JUDGE_VERDICTS = ("CORRECT", "INCORRECT", "NOT_ATTEMPTED", "unparsable")
_VERDICT = re.compile(r"\b(NOT_ATTEMPTED|INCORRECT|CORRECT)\b")
#: Where the judge server's key is read from (sent as a bearer token, scrubbed from the store).
JUDGE_KEY_ENVS = ("CIRKIT_JUDGE_API_KEY", "OPENAI_API_KEY")
_LETTER = {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}  # SimpleQA's grader letters


def score_rule(grader: str, prediction: str | None, golds: Sequence[str]) -> float:
    """``em``/``f1``/``cover_em`` of a prediction (``cirkit.answers``' own, as
    ``score_answer`` gives them, without parsing the grader's name per answer); no prediction
    scores 0."""
    if prediction is None or not golds:
        return 0.0
    if grader == "f1":
        return f1_score(prediction, golds)
    if grader == "em":
        return 1.0 if exact_match(prediction, golds) else 0.0
    if grader == "cover_em":
        return 1.0 if cover_exact_match(prediction, golds) else 0.0
    AnswerMetric.parse(grader)  # raises, naming the valid ones
    raise AssertionError(grader)


def parse_verdict(reply: str) -> str:
    """The one verdict a judge reply names (a bare A/B/C letter counts, as SimpleQA's grader
    answers), else ``unparsable``."""
    text = reply.strip()
    if text.upper() in _LETTER:
        return _LETTER[text.upper()]
    found = set(_VERDICT.findall(text.upper()))
    return found.pop() if len(found) == 1 else "unparsable"


@dataclass(slots=True, frozen=True)
class JudgeTemplate:
    """A judge prompt with ``{question}``, ``{gold_answers}`` and ``{predicted_answer}``."""

    text: str

    @classmethod
    def builtin(cls) -> JudgeTemplate:
        return cls(resources.files("cirkit.eval").joinpath("judge_template.txt")
                   .read_text(encoding="utf-8"))

    @classmethod
    def from_file(cls, path: str | Path) -> JudgeTemplate:
        text = Path(path).read_text(encoding="utf-8")
        missing = [f for f in ("{question}", "{gold_answers}", "{predicted_answer}")
                   if f not in text]
        if missing:
            raise CirkitError(f"judge template {path} lacks {', '.join(missing)}",
                              setting="judge_template",
                              hint="write the fields {question}, {gold_answers} and "
                                   "{predicted_answer} where the judge should read them")
        return cls(text)

    def render(self, question: str, golds: Sequence[str], predicted: str) -> str:
        return (self.text.replace("{question}", question)
                .replace("{gold_answers}", " | ".join(golds))
                .replace("{predicted_answer}", predicted))


@dataclass(slots=True, frozen=True)
class JudgeCall:
    """One judge request: which question it grades, and what to ask."""

    question_id: str
    question: str
    golds: tuple[str, ...]
    predicted: str


class Judge:
    """An LLM judge whose chat completions go through ``recorder`` (temperature 0, so one
    key per prompt)."""

    def __init__(self, *, model: str, base_url: str | None, recorder: Recorder,
                 template: JudgeTemplate, max_tokens: int = 32, concurrency: int = 8) -> None:
        self.model, self.base_url, self.recorder = model, base_url, recorder
        self.template, self.max_tokens, self.concurrency = template, max_tokens, concurrency
        self._key = next((os.environ[e] for e in JUDGE_KEY_ENVS if os.environ.get(e)), None)

    def args(self, prompt: str) -> dict[str, Any]:
        return {"model": self.model, "api": "chat", "temperature": 0.0,
                "max_tokens": self.max_tokens,
                "messages": [{"role": "user", "content": prompt}]}

    async def _one(self, client: httpx.AsyncClient | None, call: JudgeCall) -> str:
        args = self.args(self.template.render(call.question, call.golds, call.predicted))

        async def fetch() -> Response:
            if client is None or self.base_url is None:
                raise ModelServerError("the judge has no server to ask",
                                       hint="give --judge-base-url, or --judge-mode replay")
            body = {k: v for k, v in args.items() if k != "api"}
            resp = await client.post(self.base_url.rstrip("/") + "/v1/chat/completions",
                                     json=body)
            if resp.status_code != 200:
                raise ModelServerError(f"the judge server answered {resp.status_code}: "
                                       f"{resp.text[:200]}", hint="check --judge-model")
            msg = resp.json()["choices"][0]["message"].get("content") or ""
            return Response({"text": str(msg)})

        try:
            res = await self.recorder.memo(COMPLETION, args, fetch, backend="openai-chat",
                                           secrets=(self._key,) if self._key else ())
        except ReplayMissError as e:
            raise CirkitError(f"replay: the judge call for question {call.question_id!r} was "
                              f"never recorded (key {e.key})", setting="judge_mode",
                              hint="record it first (--judge-mode record or auto with a "
                                   "judge server), or use the pack it was recorded in") from None
        return str(res.data.get("text", ""))

    def replies(self, calls: Sequence[JudgeCall]) -> list[str]:
        """Every call's reply text, in order."""
        async def main() -> list[str]:
            sem = asyncio.Semaphore(self.concurrency)
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            async with httpx.AsyncClient(timeout=120.0, headers=headers) as client:
                async def one(c: JudgeCall) -> str:
                    async with sem:
                        return await self._one(client, c)
                return list(await asyncio.gather(*(one(c) for c in calls)))
        return asyncio.run(main())
