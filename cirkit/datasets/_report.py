"""The build report: funnel, length and code-block histograms, mask statistics.

Written three ways from one dict: ``report.json`` (for tools), a rich table (for the person at
the terminal) and a markdown section (for the dataset card). The plots are PNGs drawn with
matplotlib's Agg backend with no date or software name in their metadata, so two builds of the
same data give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Group
from rich.table import Table

__all__ = ["LengthStats", "code_block_counts", "markdown_section", "md_cell", "plot_histogram",
           "rich_report", "summarize_lengths"]

_BINS = 32


@dataclass(slots=True)
class LengthStats:
    """Per-row lengths of the kept rows, gathered chunk by chunk (a few bytes per row)."""

    tokens: list[np.ndarray[Any, Any]] = field(default_factory=list)
    code_blocks: list[np.ndarray[Any, Any]] = field(default_factory=list)

    def add(self, tokens: np.ndarray[Any, Any] | list[int],
            code_blocks: np.ndarray[Any, Any] | list[int] | None = None) -> None:
        self.tokens.append(np.asarray(tokens, dtype=np.int64))
        if code_blocks is not None:
            self.code_blocks.append(np.asarray(code_blocks, dtype=np.int64))

    def token_series(self) -> pl.Series:
        return pl.Series("tokens", np.concatenate(self.tokens) if self.tokens else [],
                         dtype=pl.Int64)

    def code_block_series(self) -> pl.Series:
        return pl.Series("code_blocks", np.concatenate(self.code_blocks)
                         if self.code_blocks else [], dtype=pl.Int64)


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def summarize_lengths(s: pl.Series, limit: int) -> dict[str, Any]:
    """Count, min/max/mean, percentiles and a histogram of ``_BINS`` bins over [0, limit]."""
    top = max(limit, _int(s.max()))
    edges = np.linspace(0, top, _BINS + 1).round().astype(np.int64)
    counts, _ = np.histogram(s.to_numpy(), bins=edges)
    mean = s.mean()
    return {
        "count": s.len(), "total": _int(s.sum()), "min": _int(s.min()),
        "max": _int(s.max()),
        "mean": round(float(mean), 2) if isinstance(mean, (int, float)) else 0.0,
        **{f"p{q}": _int(s.quantile(q / 100, "nearest")) for q in (50, 90, 99)},
        "histogram": {"bin_edges": edges.tolist(), "counts": counts.tolist()},
    }


def code_block_counts(s: pl.Series) -> dict[str, Any]:
    vc = s.value_counts(sort=False).sort("code_blocks")
    mean = s.mean()
    return {"max": _int(s.max()),
            "mean": round(float(mean), 2) if isinstance(mean, (int, float)) else 0.0,
            "histogram": {str(k): int(v) for k, v in vc.iter_rows()}}


def plot_histogram(path: Path, *, edges: list[int] | None = None, counts: list[int],
                   labels: list[str] | None = None, title: str, xlabel: str) -> None:
    """A bar chart as a PNG, byte-identical for the same numbers."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "cirkit"
    matplotlib.rcParams["path.simplify"] = True
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if edges is not None:
        ax.stairs(counts, edges, fill=True, color="#4c72b0")
    else:
        ax.bar(labels or [str(i) for i in range(len(counts))], counts, color="#4c72b0")
        if len(counts) > 20:
            ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("rows")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def md_cell(text: str) -> str:
    """A markdown table cell: a pipe (as in ``<|im_end|>``) would end it."""
    return text.replace("|", "\\|")


def _funnel_rows(funnel: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = [("rows in", str(funnel["rows_in"]), "")]
    for f in funnel["filters"]:
        reasons = ", ".join(f"{k} {v}" for k, v in f["reasons"].items())
        rows.append((f["name"], f"-{f['removed']}" if f["removed"] else "0", reasons))
    rows.append(("rows out", str(funnel["rows_out"]), ""))
    return rows


def rich_report(report: dict[str, Any]) -> Group:
    """The funnel and the figures, for the terminal."""
    t = Table("step", "rows", "reasons", title=f"cirkit build {report['kind']}: funnel")
    for step, n, reasons in _funnel_rows(report["funnel"]):
        t.add_row(step, n, reasons)
    s = Table("figure", "value", title="lengths and masks")
    tok = report["tokens"]
    s.add_row(report["tokens_label"], f"min {tok['min']}  p50 {tok['p50']}  p90 {tok['p90']}  "
                                      f"p99 {tok['p99']}  max {tok['max']}  mean {tok['mean']}")
    for k, v in report.get("masks", {}).items():
        s.add_row(k.replace("_", " "), str(v))
    if "code_blocks" in report:
        s.add_row("code blocks", f"mean {report['code_blocks']['mean']}  "
                                 f"max {report['code_blocks']['max']}")
    for k in ("decode_mismatches", "eval_excluded"):
        if k in report:
            s.add_row(k.replace("_", " "), str(report[k]))
    return Group(t, s)


def markdown_section(report: dict[str, Any], images: dict[str, str]) -> str:
    """The report for the dataset card."""
    lines = ["## Build report", "", "| step | rows | reasons |", "| --- | ---: | --- |"]
    lines += [f"| {a} | {b} | {md_cell(c)} |" for a, b, c in _funnel_rows(report["funnel"])]
    tok = report["tokens"]
    lines += ["", f"**{report['tokens_label']}**: min {tok['min']}, median {tok['p50']}, "
                  f"p90 {tok['p90']}, p99 {tok['p99']}, max {tok['max']}, mean {tok['mean']} "
                  f"({tok['total']} in all).", ""]
    if report.get("masks"):
        lines += ["| mask figure | value |", "| --- | ---: |"]
        lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in report["masks"].items()]
        lines.append("")
    for title, name in images.items():
        lines += [f"![{title}]({name})", ""]
    return "\n".join(lines)
