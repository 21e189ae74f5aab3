"""The SFT funnel's filters, in the order they run. Each answers keep/drop with a stable
reason; the bookkeeping lives in ``Filter``."""

from __future__ import annotations

from typing import Any

from cirkit.answers import exact_match, gold_answers, normalize_answer
from cirkit.cir import validate

from ._filters import Filter, Verdict
from ._rows import SFTRow
from ._tokenize import BuildTokenizer

__all__ = [
    "ControlTokens",
    "Correct",
    "Duplicate",
    "EvalQuestion",
    "FinishReason",
    "HasFinalAnswer",
    "MaxCodeBlocks",
    "MaxTokens",
    "PromptRebuilt",
    "TokenIds",
    "ValidFormat",
    "WellFormed",
    "sft_filters",
]


class WellFormed(Filter[SFTRow]):
    name = "well_formed"
    description = "the row holds a trace (messages, or prompt + response)"

    def check(self, row: SFTRow) -> Verdict:
        return True if row.malformed is None else (False, row.malformed)


class FinishReason(Filter[SFTRow]):
    name = "finish_reason"
    description = 'rollouts that ended with an answer (finish_reason "answer")'

    def check(self, row: SFTRow) -> Verdict:
        if row.finish_reason is None or row.finish_reason == "answer":
            return True
        return False, f"finish_{row.finish_reason}"


class TokenIds(Filter[SFTRow]):
    name = "token_ids"
    description = "trajectories with prompt ids and one mask value per response id"

    def check(self, row: SFTRow) -> Verdict:
        return True if row.token_error is None else (False, row.token_error)


class PromptRebuilt(Filter[SFTRow]):
    name = "prompt_rebuilt"
    description = "the system prompt rebuilt from the template reproduces the rollout's prompt"

    def check(self, row: SFTRow) -> Verdict:
        return True if row.prompt_error is None else (False, row.prompt_error)


class ControlTokens(Filter[SFTRow]):
    name = "control_tokens"
    description = ("no chat control token (turn marker, end of text) written in the prompt, "
                   "the model's text or an observation: it would make a turn of its own")

    def __init__(self, tok: BuildTokenizer) -> None:
        super().__init__()
        self.tok = tok

    def check(self, row: SFTRow) -> Verdict:
        find = self.tok.find_control
        if any(find(m["content"]) for m in row.prompt_messages):
            return False, "control_token_in_prompt"
        text = row.assistant
        if row.from_trajectory:  # a generation may end with its stop token, as text too
            for stop in (self.tok.turn_end, self.tok.eos_token):
                if stop and text.endswith(stop):
                    text = text[:-len(stop)]
                    break
        observed = False
        m = find(text)
        while m is not None:
            if not any(s.kind == "output" and s.start - 1 <= m.start() < s.end
                       for s in row.segments):
                return False, "control_token_in_response"
            observed = True
            m = find(text, m.end())
        if observed:
            return False, "control_token_in_observation"
        return (False, "control_token_id_in_response") if row.control_id else True

    def config(self) -> dict[str, Any]:
        return {"control_tokens": list(self.tok.control_strings)}


class HasFinalAnswer(Filter[SFTRow]):
    name = "has_final_answer"
    description = "text after </think>"

    def check(self, row: SFTRow) -> Verdict:
        return True if row.final_answer else (False, "no_final_answer")


class ValidFormat(Filter[SFTRow]):
    name = "valid_format"
    description = "CIR validator, finished trace, no error (the reason is the first error code)"

    def check(self, row: SFTRow) -> Verdict:
        for p in validate(row.assistant, finished=True, max_code_blocks=1 << 30):
            if p.severity == "error":
                return False, p.code
        return True


class MaxCodeBlocks(Filter[SFTRow]):
    name = "max_code_blocks"
    description = "at most this many code blocks"

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def check(self, row: SFTRow) -> Verdict:
        return True if row.num_code_blocks <= self.limit else (False, "too_many_code_blocks")

    def config(self) -> dict[str, Any]:
        return {"max_code_blocks": self.limit}


class Correct(Filter[SFTRow]):
    name = "correct"
    description = ("a judge's verdict (judge/correct column) when present, else exact match "
                   "of the normalised final answer with a ground truth")

    def check(self, row: SFTRow) -> Verdict:
        if row.verdict is not None:
            return True if row.verdict else (False, "judged_incorrect")
        gold = row.ground_truth
        if gold is None or gold == "" or gold == []:
            return False, "no_ground_truth"
        if exact_match(row.final_answer or "", gold_answers(gold)):
            return True
        return False, "incorrect"


class EvalQuestion(Filter[SFTRow]):
    name = "eval_overlap"
    description = "question not in an evaluation set (normalised text match)"

    def __init__(self, eval_questions: set[str], names: list[str]) -> None:
        super().__init__()
        self.eval_questions, self.names = eval_questions, names

    def check(self, row: SFTRow) -> Verdict:
        users = [m["content"] for m in row.prompt_messages if m["role"] == "user"]
        if users and normalize_answer(users[-1]) in self.eval_questions:
            return False, "in_eval_set"
        return True

    def config(self) -> dict[str, Any]:
        return {"eval_sets": self.names, "eval_questions": len(self.eval_questions)}


class Duplicate(Filter[SFTRow]):
    name = "duplicate"
    description = "same prompt and same response text as an earlier row"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[bytes] = set()

    def check(self, row: SFTRow) -> Verdict:
        key = row.dedupe_key()
        if key in self._seen:
            return False, "duplicate"
        self._seen.add(key)
        return True


class MaxTokens(Filter[SFTRow]):
    name = "max_tokens"
    description = "prompt + response tokens at most this many"

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def check(self, row: SFTRow) -> Verdict:
        return True if row.num_tokens <= self.limit else (False, "too_many_tokens")

    def config(self) -> dict[str, Any]:
        return {"max_tokens": self.limit}


def sft_filters(tok: BuildTokenizer, *, max_tokens: int, max_code_blocks: int,
                require_correct: bool, eval_questions: set[str] | None = None,
                eval_names: list[str] | None = None) -> list[Filter[SFTRow]]:
    """The funnel in order; ``max_tokens`` comes last: it needs the tokens, which text-only
    traces get only after the cheaper filters have run."""
    steps: list[Filter[SFTRow]] = [
        WellFormed(), FinishReason(), TokenIds(), PromptRebuilt(), ControlTokens(tok),
        HasFinalAnswer(),
        ValidFormat(), MaxCodeBlocks(max_code_blocks)]
    if require_correct:
        steps.append(Correct())
    if eval_questions is not None:  # --exclude-eval: the same adapters as build rl
        steps.append(EvalQuestion(eval_questions, eval_names or []))
    steps += [Duplicate(), MaxTokens(max_tokens)]
    return steps
