"""Model-facing text, rendered from stored provider data at replay time.

The store keeps what the provider returned; what the model sees is rendered here, under a
version number, so a rendering change needs a new version, not a re-recording. Version 1 follows
the II-Search-CIR demo (II-Researcher's search client; see docs/concepts/store.md): search hits as
``"\\nIndex: {i}\\nURL: {link}\\nTitle: {title}\\nPreview: {snippet}\\n"``, visits as page text with
markdown links and images removed, blank lines dropped, cut to the first 5000 words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._canonical import SEARCH, VISIT

__all__ = ["RENDERER_VERSION", "RenderOptions", "render"]

RENDERER_VERSION = 1

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(slots=True, frozen=True)
class RenderOptions:
    version: int = RENDERER_VERSION
    drop_huggingface: bool = True  # the card: no Hugging Face URL was visited in evaluation
    max_words: int = 5000

    def __post_init__(self) -> None:
        # Checked once here, not on every render (which is on the replay hot path).
        if self.version != RENDERER_VERSION:
            raise ValueError(f"unknown renderer version {self.version}; valid versions: 1")


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
    out: list[str] = []
    for h in data.get("results", ()):
        url = h.get("url", "")
        if drop and "huggingface" in str(url).lower():
            continue
        if len(out) == num:
            break
        out.append(f"\nIndex: {len(out) + 1}\nURL: {url}\nTitle: {h.get('title', '')}\n"
                   f"Preview: {h.get('snippet', '')}\n")
    return "".join(out) if out else "No results found."


def clean_page_text(text: str, max_words: int) -> str:
    """Links to their text, images out, blank lines out, first ``max_words`` words kept."""
    text = _IMAGE.sub("", text)
    text = _LINK.sub(r"\1", text)
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    out: list[str] = []
    budget = max_words
    for ln in lines:
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
    text = clean_page_text(str(data.get("text", "")), opts.max_words)
    if code >= 400:
        return f"Failed to visit the page: HTTP {code}" + (f"\n{text}" if text else "")
    if not text:
        return "The page has no readable text."
    title = str(data.get("title", "")).strip()
    # Extractors often open with the title already ("# Title" in markdown): no doubling.
    starts_with_title = text.lstrip("# ").startswith(title)
    return f"{title}\n{text}" if title and not starts_with_title else text
