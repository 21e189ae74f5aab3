"""System prompts for CIR rollouts: a built-in prompt, file templates and the date rule.

A rollout is only reproducible if the prompt is: the date is always an input (never the
clock), and the template's sha256 goes into every trajectory so a dataset names the exact
prompt its traces were generated with. Users who know the prompt a model was trained with can
load it from a file.

Template fields (written ``{name}``; any other brace text is left alone, so templates may
contain code and JSON):

========================  =====================================================================
``{date}``                the current date, ``"%a, %d %b %Y %H:%M:%S GMT"`` (English names)
``{tools}``               one line per tool: signature and what it returns
``{search_tool}``         the search function's name (``web_search``)
``{visit_tool}``          the visit function's name (``web_visit`` or ``visit_webpage``)
``{start_code}``          ``<start_code>``
``{end_code}``            ``<end_code>``
``{think_close}``         ``</think>``
``{max_code_blocks}``     the block budget (32 unless told otherwise)
========================  =====================================================================
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from cirkit.errors import InputError

from ._card import CARD
from ._dialect import Dialect, get_dialect
from ._format import END_CODE, START_CODE, THINK_CLOSE

__all__ = [
    "BUILTIN_TEMPLATE",
    "DATE_FORMAT",
    "TEMPLATE_FIELDS",
    "DateLike",
    "PromptTemplate",
    "PromptTemplateError",
    "format_date",
    "render_messages",
    "tool_descriptions",
]

DATE_FORMAT = "%a, %d %b %Y %H:%M:%S GMT"
TEMPLATE_FIELDS = frozenset({
    "date", "tools", "search_tool", "visit_tool", "start_code", "end_code", "think_close",
    "max_code_blocks",
})
DateLike = dt.date | dt.datetime | str

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FORMATTED = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT")


class PromptTemplateError(InputError):
    """A template file that cannot be read, or a date that cannot be understood."""


def format_date(value: DateLike) -> str:
    """``value`` in the prompt's date format, in UTC, independent of the locale.

    A ``date`` means midnight; a naive ``datetime`` is taken as UTC; a string is either ISO 8601
    (``2025-08-01``, ``2025-08-01T12:30:00Z``) or already in the prompt's format (kept as is).
    """
    if isinstance(value, str):
        if _FORMATTED.fullmatch(value):
            return value
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PromptTemplateError(
                f"cannot read the date {value!r}",
                hint="use ISO 8601 (2025-08-01 or 2025-08-01T12:00:00Z) or "
                     "'Fri, 01 Aug 2025 00:00:00 GMT'") from None
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc)
    return (f"{_DAYS[value.weekday()]}, {value.day:02d} {_MONTHS[value.month - 1]} "
            f"{value.year:04d} {value.hour:02d}:{value.minute:02d}:{value.second:02d} GMT")


def tool_descriptions(dialect: str | Dialect) -> str:
    """The ``{tools}`` field: each tool's signature in the dialect's spelling."""
    d = get_dialect(dialect)
    return (
        f"- {d.search_signature} -> str: searches the web for `query` and returns up to "
        f"`{d.count_param}` results as text; each result has an index, URL, title and "
        "preview snippet.\n"
        f"- {d.visit_signature} -> str: downloads the page at `url` and returns its main "
        "text (links and images removed, at most 5000 words)."
    )


_BUILTIN_TEXT = """\
You are a careful research assistant. You answer questions by thinking step by step and by \
writing Python programs that search the web and read web pages for you.

Current date: {date}

While you think, you can run Python code. Write each program in exactly this form:

{start_code}
```python
# your code here
```{end_code}

The program runs as soon as you write {end_code}. Its printed output is then shown to you \
in a block that starts with ```output. Only what the program prints comes back, so print \
everything you want to read. Every block runs in a new, empty interpreter: variables, imports \
and functions do not carry over from earlier blocks, so define again whatever you need.

These functions are ready to use in every block, without an import:
{tools}

Use code to work with what you find, not only to fetch it: loop over several queries, \
filter results, extract numbers and dates, compute and compare. Check important facts in more \
than one source when you can. You may write up to {max_code_blocks} code blocks.

All code belongs to your reasoning, before {think_close}. After {think_close} write only \
the final answer: clear and to the point, naming the sources (URLs) it rests on where that \
helps the reader.
"""


@dataclass(slots=True, frozen=True)
class PromptTemplate:
    """A system prompt with ``{field}`` placeholders (see the module docstring)."""

    text: str
    name: str = "builtin"

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        """Read a UTF-8 template byte for byte (no newline translation)."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise PromptTemplateError(
                f"cannot read the prompt template {p}: {e.strerror or e}",
                hint="pass a text file with {date} and {tools} placeholders") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise PromptTemplateError(
                f"the prompt template {p} is not UTF-8 (byte {e.start})",
                hint="save the file as UTF-8") from None
        return cls(text, name=p.name)

    @property
    def sha256(self) -> str:
        """Hex sha256 of the template's UTF-8 bytes; trajectories record it."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def fields(self) -> frozenset[str]:
        """The known fields this template uses."""
        return frozenset(_PLACEHOLDER.findall(self.text)) & TEMPLATE_FIELDS

    @property
    def unknown_placeholders(self) -> frozenset[str]:
        """``{name}`` texts that are not fields and stay literal (typos show up here)."""
        return frozenset(_PLACEHOLDER.findall(self.text)) - TEMPLATE_FIELDS

    def render(self, *, date: DateLike, dialect: str | Dialect = "card",
               max_code_blocks: int = CARD.max_code_blocks) -> str:
        """The system prompt: known fields replaced, everything else byte for byte."""
        d = get_dialect(dialect)
        values = {
            "date": format_date(date),
            "tools": tool_descriptions(d),
            "search_tool": d.search,
            "visit_tool": d.visit,
            "start_code": START_CODE,
            "end_code": END_CODE,
            "think_close": THINK_CLOSE,
            "max_code_blocks": str(max_code_blocks),
        }

        def sub(m: re.Match[str]) -> str:
            return values.get(m.group(1), m.group(0))

        return _PLACEHOLDER.sub(sub, self.text)


#: The prompt written for cirkit (not the one II-Search-CIR-4B was trained with).
BUILTIN_TEMPLATE = PromptTemplate(_BUILTIN_TEXT, name="builtin")


def render_messages(question: str, *, template: PromptTemplate | None = None,
                    date: DateLike, dialect: str | Dialect = "card",
                    max_code_blocks: int = CARD.max_code_blocks) -> list[dict[str, str]]:
    """Chat messages for one question: the rendered system prompt, then the question."""
    tpl = template if template is not None else BUILTIN_TEMPLATE
    system = tpl.render(date=date, dialect=dialect, max_code_blocks=max_code_blocks)
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]
