"""What a build is asked to do: the options of ``build_sft`` and ``build_rl``.

A module of its own, with nothing heavy imported, so that the command line takes its defaults
from these dataclasses without loading pyarrow and polars.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cirkit.cir import CARD, DEFAULT_DATE

__all__ = ["GROUND_TRUTH_FORMATS", "BuildOptions", "RLOptions", "SFTOptions"]

#: The shapes ``reward_model.ground_truth`` can be written in (``RLOptions.ground_truth_format``).
GROUND_TRUTH_FORMATS = ("list", "target")


@dataclass(slots=True, frozen=True, kw_only=True)
class BuildOptions:
    """What every build shares: the prompt it renders (date, dialect, template) and the output
    layout (split, shards, row groups, license, the reject file). A build that keeps no row
    is an error unless ``allow_empty``."""

    reject: Path | None = None
    allow_empty: bool = False
    split: str = "train"
    shard_rows: int = 50_000
    row_group_rows: int = 1000
    license: str = "other"
    date: str = DEFAULT_DATE
    dialect: str = "card"
    template: Path | None = None
    #: Evaluation sets (any question file, as published): a row whose normalised question
    #: text is one of theirs is dropped, and counted (``eval_excluded``).
    exclude_eval: tuple[Path, ...] = ()


@dataclass(slots=True, frozen=True, kw_only=True)
class SFTOptions(BuildOptions):
    """Filters and limits of an SFT build (the card's SFT defaults)."""

    max_tokens: int = CARD.sft_max_tokens
    max_code_blocks: int = CARD.max_code_blocks
    require_correct: bool = False
    train_on_observations: bool = False
    block_bytes: int = 32 << 20
    title: str = "CIR SFT dataset"


@dataclass(slots=True, frozen=True, kw_only=True)
class RLOptions(BuildOptions):
    """Limits (the card's RL settings) and exclusions of an RL build."""

    max_prompt_tokens: int = CARD.max_prompt_tokens
    max_response_tokens: int = CARD.max_response_tokens
    max_total_tokens: int = CARD.max_total_tokens
    max_code_blocks: int = CARD.max_code_blocks
    ability: str = "search"
    #: Every row's ``data_source`` (verl groups metrics by it); default: the question file's.
    data_source: str | None = None
    #: verl's ``agent_name`` column: the agent loop that runs a row (cirkit's CIR loop).
    agent_name: str = "cir_agent"
    #: ``reward_model.ground_truth``: "list" (a list of strings) or "target" (Search-R1's and
    #: verl's QA scorers' ``{"target": [...]}``). Either way one type for every build.
    ground_truth_format: str = "list"
    chunk_rows: int = 10_000
    title: str = "CIR RL prompts"
