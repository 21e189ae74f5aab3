"""Reading the user's files: questions, tool calls and text-only traces, one way everywhere.

One numbered-row reader (``iter_rows``/``iter_row_blocks``) reads JSONL, CSV, TSV and parquet
by suffix, streams them in bounded blocks, and turns every way a file can be unusable into an
``InputError`` naming the file, the line (a parquet row's number) and the field. The adapters
on top give each kind of row its meaning, once: ``read_questions`` (rollouts, ``build rl``,
``--exclude-eval``, the demo), ``read_calls`` (``cirkit record``, the demo's tools stage) and
``read_traces`` (``cirkit validate`` and ``cirkit build sft``'s text-only traces, so the two
accept the same rows).

Trajectory records (``cirkit rollout`` output) are not read here: ``cirkit.datasets`` reads
them in large columnar blocks. Corpus files are read by ``recorders`` (which never imports
cirkit); cirkit only passes their path on.
"""

from ._calls import CALL_TOOL_NAMES, call_from_row, read_calls
from ._fields import (
    ANSWER_FIELDS,
    ANSWER_SPLIT,
    ID_FIELDS,
    QUESTION_FIELDS,
    SOURCE_FIELDS,
    answer_of,
)
from ._questions import Question, question_from_row, question_id, read_questions
from ._read import (
    FORMATS,
    Format,
    OnBadRow,
    RowBlock,
    RowError,
    file_columns,
    file_format,
    iter_row_blocks,
    iter_rows,
    parse_json_line,
)
from ._traces import (
    PROMPT_FIELDS,
    TRACE_FIELDS,
    TRACE_REASONS,
    Message,
    TextTrace,
    TraceField,
    parse_trace,
    read_trace_blocks,
    read_traces,
)

__all__ = [
    "ANSWER_FIELDS",
    "ANSWER_SPLIT",
    "CALL_TOOL_NAMES",
    "FORMATS",
    "ID_FIELDS",
    "PROMPT_FIELDS",
    "QUESTION_FIELDS",
    "SOURCE_FIELDS",
    "TRACE_FIELDS",
    "TRACE_REASONS",
    "Format",
    "Message",
    "OnBadRow",
    "Question",
    "RowBlock",
    "RowError",
    "TextTrace",
    "TraceField",
    "answer_of",
    "call_from_row",
    "file_columns",
    "file_format",
    "iter_row_blocks",
    "iter_rows",
    "parse_json_line",
    "parse_trace",
    "question_from_row",
    "question_id",
    "read_calls",
    "read_questions",
    "read_trace_blocks",
    "read_traces",
]
