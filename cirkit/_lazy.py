"""Names a package exports but imports on first use (PEP 562).

A package whose parts are heavy (pyarrow, asyncio machinery) lists them here, so importing the
package stays cheap: a sandbox worker, the command line's defaults.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: dict[str, str],
                 namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a name to the relative module
    that defines it; the value is imported once and kept in ``namespace`` (the package's
    globals)."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return __getattr__
