"""Datasets from CIR traces: TRL-ready SFT rows and verl-ready RL prompts.

Every builder is a funnel of named filters whose report says where each input row went; the
same inputs give byte-identical parquet shards and the same fingerprint.
"""

from ._common import BUILD_FORMAT_VERSION, BuildResult
from ._filters import Filter, FilterStats, Funnel, RejectSink, Verdict, normalize_answer
from ._io import fingerprint
from ._report import rich_report
from ._rl import RLOptions, build_rl, load_eval_questions, rl_schema
from ._rows import SFTRow
from ._sft import SFT_SCHEMA, SFTOptions, build_sft
from ._tokenize import IGNORE_INDEX, BuildTokenizer, split_pieces

__all__ = [
    "BUILD_FORMAT_VERSION",
    "IGNORE_INDEX",
    "SFT_SCHEMA",
    "BuildResult",
    "BuildTokenizer",
    "Filter",
    "FilterStats",
    "Funnel",
    "RLOptions",
    "RejectSink",
    "SFTOptions",
    "SFTRow",
    "Verdict",
    "build_rl",
    "build_sft",
    "fingerprint",
    "load_eval_questions",
    "normalize_answer",
    "rich_report",
    "rl_schema",
    "split_pieces",
]
