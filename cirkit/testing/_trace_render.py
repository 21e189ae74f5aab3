"""The rendering of the tiny model's training traces, pinned to one renderer version.

The shipped model was trained on observations rendered under renderer version 1, and its recipe
hash names the version through ``TRACE_RENDER``: a new default rendering in ``recorders`` leaves
the traces (and so the model) unchanged. Moving the pin is a new recipe: retrain and ship.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recorders import RenderOptions
from recorders import render as _render

__all__ = ["TRACE_RENDER", "render"]

TRACE_RENDER = RenderOptions(version=1)


def render(tool: str, data: Mapping[str, Any], args: Mapping[str, Any]) -> str:
    """``recorders.render`` under the pinned version."""
    return _render(tool, data, args, TRACE_RENDER)
