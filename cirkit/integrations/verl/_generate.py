"""verl's server manager as cirkit's :class:`~cirkit.rollout.Generate`.

verl's ``LLMServerClient.generate(request_id, *, prompt_ids, sampling_params)`` returns a
``TokenOutput``: the generated ids and a ``stop_reason`` that is "completed" for both a stop and
a length cut (its vLLM server folds them together), or "aborted". The rollout loop needs the
text, the stop string matched and whether the cut was the length: the text is the ids decoded
(special tokens kept, as cirkit's client asks the server), and the rest follows from it.
vLLM's ``SamplingParams`` get the same request cirkit's client sends: the stop strings kept in
the output, special tokens not skipped, the per-request seed when the loop is seeded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cirkit.errors import ModelServerError
from cirkit.llm import Completion, Sampling
from cirkit.tokenizer import ModelTokenizer

__all__ = ["ServerManager", "VerlGenerate", "completion_of"]

#: verl's own sampling keys that cirkit's Sampling sets per request.
_OURS = ("temperature", "top_p", "top_k", "max_tokens", "max_new_tokens", "seed", "stop",
         "include_stop_str_in_output", "skip_special_tokens")


class ServerManager(Protocol):
    """The part of verl's ``LLMServerClient`` the loop uses."""

    async def generate(self, request_id: str, *, prompt_ids: list[int],
                       sampling_params: dict[str, Any], **kwargs: Any) -> Any: ...


@dataclass(slots=True)
class VerlGenerate:
    """A :class:`~cirkit.rollout.Generate` over verl's server manager for one trajectory
    (one ``request_id``, so a sticky session keeps its prefix cache). ``base`` holds verl's
    sampling parameters (e.g. ``repetition_penalty``, ``logprobs``); cirkit's per-request
    ``Sampling`` overrides what it sets. ``seeded``: send the derived per-request seed.
    Counts requests and seconds for verl's metrics."""

    server: ServerManager
    tok: ModelTokenizer
    request_id: str
    base: Mapping[str, Any] = field(default_factory=dict)
    seeded: bool = False
    requests: int = 0
    seconds: float = 0.0

    def params(self, *, stop: list[str], sampling: Sampling) -> dict[str, Any]:
        """The ``sampling_params`` verl's server gets (and hands to vLLM's SamplingParams)."""
        params = {k: v for k, v in self.base.items() if k not in _OURS}
        params.update(temperature=sampling.temperature, top_p=sampling.top_p,
                      top_k=sampling.top_k, max_tokens=sampling.max_tokens, stop=list(stop),
                      include_stop_str_in_output=True, skip_special_tokens=False)
        if self.seeded and sampling.seed is not None:
            params["seed"] = sampling.seed
        return params

    async def __call__(self, prompt_ids: list[int], *, stop: list[str],
                       sampling: Sampling) -> Completion:
        started = time.perf_counter()
        out = await self.server.generate(self.request_id, prompt_ids=list(prompt_ids),
                                         sampling_params=self.params(stop=stop,
                                                                     sampling=sampling))
        self.requests += 1
        self.seconds += time.perf_counter() - started
        if getattr(out, "stop_reason", None) == "aborted":
            raise ModelServerError("verl's server aborted the generation",
                                   hint="the trainer paused generation; the sample is retried "
                                        "by verl's abort handling")
        ids = [int(i) for i in out.token_ids]
        return completion_of(ids, self.tok, stop=stop, max_tokens=sampling.max_tokens)


def completion_of(ids: list[int], tok: ModelTokenizer, *, stop: list[str],
                  max_tokens: int) -> Completion:
    """A Completion from generated ids alone: the stop string is the one the text ends with
    (vLLM keeps it in the output); the cut was the length when the request's whole budget was
    spent on neither a stop string nor the end-of-sequence token."""
    text = tok.decode(ids)
    matched = next((s for s in stop if s and text.endswith(s)), None)
    eos = tok.eos_token
    ended = matched is not None or (eos is not None and text.endswith(eos))
    finish = "length" if not ended and len(ids) >= max_tokens else "stop"
    return Completion(token_ids=ids, text=text, finish_reason=finish, stop_reason=matched)
