"""The model card's limits and the prompt's default date, written once.

II-Search-CIR-4B was trained with these limits (SFT: 26000 tokens; RL: prompts of 3000 tokens,
responses of 16384, 32768 in all, observations of 3000, at most 32 code blocks). Rollouts,
builders, the validator and every CLI default take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CARD", "DEFAULT_DATE", "CardLimits"]

#: The date the system prompt states unless told otherwise: an input, never the clock.
DEFAULT_DATE = "2025-08-01"


@dataclass(slots=True, frozen=True)
class CardLimits:
    """Token and block limits from the model card."""

    max_code_blocks: int = 32
    max_observation_tokens: int = 3000
    max_prompt_tokens: int = 3000
    max_response_tokens: int = 16384
    max_total_tokens: int = 32768
    sft_max_tokens: int = 26000


#: The limits II-Search-CIR-4B was trained with.
CARD = CardLimits()
