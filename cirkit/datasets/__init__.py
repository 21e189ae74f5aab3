"""Datasets from CIR traces: TRL-ready SFT rows and verl-ready RL prompts.

Every builder is a funnel of named filters whose report says where each input row went; the
same inputs give byte-identical parquet shards and the same fingerprint.

The builders load pyarrow and polars; they are imported on first use, so that the options
(``SFTOptions``, ``RLOptions``) cost nothing to import (the command line's defaults).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cirkit._lazy import lazy_exports

from ._options import GROUND_TRUTH_FORMATS, RLOptions, SFTOptions

if TYPE_CHECKING:
    from ._common import BUILD_FORMAT_VERSION, BuildResult
    from ._filters import Filter, FilterStats, Funnel, RejectSink, Verdict, normalize_answer
    from ._io import TRAJECTORY_SCHEMA, discover_inputs, fingerprint
    from ._report import plot_histogram, rich_report
    from ._rl import build_rl, load_eval_questions, rl_schema
    from ._rows import SFTRow, parse_verdict
    from ._sft import SFT_SCHEMA, build_sft
    from ._tokenize import IGNORE_INDEX, BuildTokenizer, join_ids, split_pieces

__all__ = [
    "BUILD_FORMAT_VERSION",
    "GROUND_TRUTH_FORMATS",
    "IGNORE_INDEX",
    "SFT_SCHEMA",
    "TRAJECTORY_SCHEMA",
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
    "discover_inputs",
    "fingerprint",
    "join_ids",
    "load_eval_questions",
    "normalize_answer",
    "parse_verdict",
    "plot_histogram",
    "rich_report",
    "rl_schema",
    "split_pieces",
]

_LAZY = {
    "BUILD_FORMAT_VERSION": "._common", "BuildResult": "._common", "Filter": "._filters",
    "FilterStats": "._filters", "Funnel": "._filters", "RejectSink": "._filters",
    "Verdict": "._filters", "normalize_answer": "._filters", "fingerprint": "._io",
    "discover_inputs": "._io", "TRAJECTORY_SCHEMA": "._io", "parse_verdict": "._rows",
    "join_ids": "._tokenize",
    "rich_report": "._report", "plot_histogram": "._report", "build_rl": "._rl",
    "load_eval_questions": "._rl",
    "rl_schema": "._rl", "SFTRow": "._rows", "SFT_SCHEMA": "._sft", "build_sft": "._sft",
    "IGNORE_INDEX": "._tokenize", "BuildTokenizer": "._tokenize", "split_pieces": "._tokenize",
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())
