"""Model-facing text, rendered from stored provider data at replay time.

The store keeps what the provider returned; what the model sees is rendered here, under a
version number, so a rendering change needs a new version, not a re-recording. A store names the
renderer version it was recorded under (``store.json``; a store without one is version 1) and
replays under it, so an old store shows the model exactly what it showed before.

Both versions follow the II-Search-CIR demo (II-Researcher's search client; see
docs/concepts/store.md): search hits as
``"\\nIndex: {i}\\nURL: {link}\\nTitle: {title}\\nPreview: {snippet}\\n"``, visits as page text with
markdown links and images removed, blank lines dropped, cut to the first 5000 words.

- Version 1 numbered hits from 1 and renumbered them when a Hugging Face link was dropped, and
  capped the page body only (the title line came on top).
- Version 2 numbers hits as the reference client does (from 0, each hit keeping its place in the
  provider's list when one is dropped), and the cap counts every word the model sees.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._canonical import SEARCH, VISIT

__all__ = ["RENDERER_VERSION", "RENDERER_VERSIONS", "RenderOptions", "render"]

RENDERER_VERSION = 2
#: Every version this renderer still renders (old stores replay under theirs).
RENDERER_VERSIONS = (1, 2)

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(slots=True, frozen=True)
class RenderOptions:
    """How stored answers are shown to the model. ``first_index`` and ``keep_index`` default
    to the version's numbering (version 1: from 1, renumbered; version 2: from 0, kept)."""

    version: int = RENDERER_VERSION
    drop_huggingface: bool = True  # the card: no Hugging Face URL was visited in evaluation
    max_words: int = 5000
    #: The number of the first search hit.
    first_index: int | None = None
    #: A hit keeps its place in the provider's list when an earlier one is dropped (gaps).
    keep_index: bool | None = None
    #: Put Serper's answer box and knowledge graph (a direct answer, such as the team that won)
    #: before the hits. Off by default: the reference client shows the organic hits only.
    answer_box: bool = False

    def __post_init__(self) -> None:
        # Checked once here, not on every render (which is on the replay hot path).
        if self.version not in RENDERER_VERSIONS:
            raise ValueError(f"unknown renderer version {self.version}; valid versions: "
                             + ", ".join(map(str, RENDERER_VERSIONS)))
        if self.first_index is None:
            object.__setattr__(self, "first_index", 1 if self.version == 1 else 0)
        if self.keep_index is None:
            object.__setattr__(self, "keep_index", self.version >= 2)


_DEFAULT = RenderOptions()


def render(
    tool: str, data: Mapping[str, Any], args: Mapping[str, Any], opts: RenderOptions | None = None
) -> str:
    if opts is None:
        opts = _DEFAULT
    if tool == SEARCH:
        return _render_search(data, int(args.get("num_results", 5)), opts)
    if tool == VISIT:
        return _render_visit(data, opts)
    raise ValueError(f"unknown tool {tool!r}")


def _render_search(data: Mapping[str, Any], num: int, opts: RenderOptions) -> str:
    if "error" in data:
        return f"Search failed: {data['error']}"
    drop = opts.drop_huggingface
    first = opts.first_index or 0
    keep = opts.keep_index
    out: list[str] = []
    for place, h in enumerate(data.get("results", ())):
        url = h.get("url", "")
        if drop and "huggingface" in str(url).lower():
            continue
        if len(out) == num:
            break
        i = first + (place if keep else len(out))
        out.append(f"\nIndex: {i}\nURL: {url}\nTitle: {h.get('title', '')}\n"
                   f"Preview: {h.get('snippet', '')}\n")
    boxes = _answer_boxes(data.get("raw")) if opts.answer_box else ""
    if not out:
        return boxes + "No results found." if boxes else "No results found."
    return boxes + "".join(out)


def _answer_boxes(raw: Any) -> str:
    """Serper's ``answerBox`` and ``knowledgeGraph`` (kept in ``raw``), each as a block laid
    out like a hit, before the hits; other providers' ``raw`` has neither."""
    if not isinstance(raw, Mapping):
        return ""
    out = []
    box = raw.get("answerBox")
    if isinstance(box, Mapping):
        out.append(_block("Answer box", (
            ("Title", box.get("title")), ("URL", box.get("link")),
            ("Answer", box.get("answer") or box.get("snippet")))))
    kg = raw.get("knowledgeGraph")
    if isinstance(kg, Mapping):
        attrs = kg.get("attributes")
        out.append(_block("Knowledge graph", (
            ("Title", kg.get("title")), ("Type", kg.get("type")),
            ("URL", kg.get("descriptionLink") or kg.get("website")),
            ("Description", kg.get("description")),
            *(attrs.items() if isinstance(attrs, Mapping) else ()))))
    return "".join(out)


def _block(name: str, fields: tuple[tuple[Any, Any], ...]) -> str:
    """``\n{name}:\n{field}: {value}\n...`` over the fields with a text or number value."""
    lines = [f"{k}: {v}" for k, v in fields
             if isinstance(k, str) and isinstance(v, str | int | float) and str(v).strip()
             and not isinstance(v, bool)]
    return f"\n{name}:\n" + "\n".join(lines) + "\n" if lines else ""


def clean_page_text(text: str, max_words: int) -> str:
    """Links to their text, images out, blank lines out, first ``max_words`` words kept."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    out: list[str] = []
    budget = max_words
    for ln in lines:
        if budget <= 0:
            break
        words = ln.split()
        if len(words) >= budget:
            out.append(" ".join(words[:budget]))
            break
        out.append(ln)
        budget -= len(words)
    return "\n".join(out)


def _render_visit(data: Mapping[str, Any], opts: RenderOptions) -> str:
    if opts.drop_huggingface and "huggingface" in str(data.get("url", "")).lower():
        return "Access to Hugging Face pages is disabled."
    if "error" in data:
        return f"Failed to visit the page: {data['error']}"
    code = int(data.get("status_code", 200))
    raw = str(data.get("text", ""))
    capped = opts.version >= 2  # the cap counts the lines put before the text too
    if code >= 400:
        head = f"Failed to visit the page: HTTP {code}"
        budget = opts.max_words - len(head.split()) if capped else opts.max_words
        text = clean_page_text(raw, budget)
        return head + (f"\n{text}" if text else "")
    text = clean_page_text(raw, opts.max_words)
    if not text:
        return "The page has no readable text."
    title = str(data.get("title", "")).strip()
    # Extractors often open with the title already ("# Title" in markdown): no doubling.
    if not title or text.lstrip("# ").startswith(title):
        return text
    if capped:
        title_words = title.split()
        if len(title_words) >= opts.max_words:
            return " ".join(title_words[:opts.max_words])
        text = clean_page_text(raw, opts.max_words - len(title_words))
    return f"{title}\n{text}"
