"""The CIR format: delimiters, parsing, validation, dialects, prompts and observations.

Everything that must match what II-Search-CIR-4B was trained on, byte for byte, lives here and
nowhere else; the sandbox, rollouts, dataset builders, evaluation and the CLI all take it from
this package. ``render(parse(x)) == x`` for every string; ``validate`` explains what is wrong
with a trace; ``TOOLS``/``DIALECTS`` are the one table of tool names and argument spellings.

It imports nothing heavy (no recorders, no tokenizer library at import time): sandbox workers
import it. The tokenizer loader lives in ``cirkit.tokenizer``; ``load_tokenizer`` and
``TokenizerLoadError`` are still reachable from here, imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._card import CARD, DEFAULT_DATE, CardLimits
from ._dialect import DIALECTS, TOOLS, Dialect, Param, Tool, get_dialect, get_tool, tool_functions
from ._format import (
    CODE_CLOSE,
    CODE_OPEN,
    END_CODE,
    FENCE,
    OUTPUT_CLOSE,
    OUTPUT_OPEN,
    PYTHON_FENCE,
    START_CODE,
    STOP,
    THINK_CLOSE,
    THINK_OPEN,
    Segment,
    SegmentKind,
    continuation,
    final_answer,
    parse,
    pending_code,
    render,
    wrap_observation,
)
from ._observation import (
    DEMO_ERROR_HINT,
    TRUNCATION_NOTE,
    Observation,
    Tokenizer,
    make_observation,
)
from ._prompts import (
    BUILTIN_TEMPLATE,
    DATE_FORMAT,
    TEMPLATE_FIELDS,
    DateLike,
    PromptTemplate,
    PromptTemplateError,
    format_date,
    render_messages,
    tool_descriptions,
)
from ._validate import (
    PROBLEM_CODES,
    DetectedDialect,
    Problem,
    Severity,
    detect_dialect,
    is_valid,
    validate,
)

if TYPE_CHECKING:
    from cirkit.tokenizer import TokenizerLoadError, load_tokenizer

__all__ = [
    "BUILTIN_TEMPLATE",
    "CARD",
    "CODE_CLOSE",
    "CODE_OPEN",
    "DATE_FORMAT",
    "DEFAULT_DATE",
    "DEMO_ERROR_HINT",
    "DIALECTS",
    "END_CODE",
    "FENCE",
    "OUTPUT_CLOSE",
    "OUTPUT_OPEN",
    "PROBLEM_CODES",
    "PYTHON_FENCE",
    "START_CODE",
    "STOP",
    "TEMPLATE_FIELDS",
    "THINK_CLOSE",
    "THINK_OPEN",
    "TOOLS",
    "TRUNCATION_NOTE",
    "CardLimits",
    "DateLike",
    "DetectedDialect",
    "Dialect",
    "Observation",
    "Param",
    "Problem",
    "PromptTemplate",
    "PromptTemplateError",
    "Segment",
    "SegmentKind",
    "Severity",
    "Tokenizer",
    "TokenizerLoadError",
    "Tool",
    "continuation",
    "detect_dialect",
    "final_answer",
    "format_date",
    "get_dialect",
    "get_tool",
    "is_valid",
    "load_tokenizer",
    "make_observation",
    "parse",
    "pending_code",
    "render",
    "render_messages",
    "tool_descriptions",
    "tool_functions",
    "validate",
    "wrap_observation",
]


_LAZY = {"TokenizerLoadError", "load_tokenizer"}  # cirkit.tokenizer's: kept importable here


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from cirkit import tokenizer

    value = getattr(tokenizer, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
