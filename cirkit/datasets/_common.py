"""What the SFT and RL builders share: the result, the prompt settings, and the last step
(shards renamed, fingerprint, plots, report.json, build.json, README.md)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirkit import __version__
from cirkit.cir import BUILTIN_TEMPLATE, PromptTemplate, format_date
from cirkit.errors import InputError

from ._card import write_build_manifest, write_card
from ._filters import Filter, Funnel
from ._io import ShardWriter, fingerprint
from ._report import markdown_section, plot_histogram
from ._tokenize import BuildTokenizer

__all__ = ["ALLOW_EMPTY_HINT", "BUILD_FORMAT_VERSION", "BuildResult", "Plot", "finish_build",
           "load_template", "prompt_info", "refuse_empty_build", "tokenizer_info"]

BUILD_FORMAT_VERSION = 2  # 2: RL rows carry agent_name; ground_truth is never a bare string
ALLOW_EMPTY_HINT = "or pass --allow-empty to write a dataset of no rows"


@dataclass(slots=True, frozen=True)
class BuildResult:
    """Where a build went and what it holds."""

    out: Path
    kind: str
    rows_in: int
    rows_out: int
    shards: list[Path]
    fingerprint: str
    report: dict[str, Any]
    manifest: dict[str, Any]


@dataclass(slots=True, frozen=True)
class Plot:
    name: str
    title: str
    xlabel: str
    counts: list[int]
    edges: list[int] | None = None
    labels: list[str] | None = None


def load_template(path: str | Path | None) -> PromptTemplate:
    return PromptTemplate.from_file(path) if path is not None else BUILTIN_TEMPLATE


def tokenizer_info(tok: BuildTokenizer) -> dict[str, Any]:
    return {**tok.provenance(), "turn_end": tok.turn_end}


def prompt_info(template: PromptTemplate, *, date: str, dialect: str) -> dict[str, Any]:
    return {"template": template.name, "template_sha256": template.sha256,
            "date": format_date(date), "dialect": dialect}


def refuse_empty_build(funnel: Funnel[Any], *, allow_empty: bool,
                       first_bad: InputError | None = None) -> None:
    """A build that keeps no row is an error (a 0-row dataset is almost always a mistake: the
    wrong file, the wrong field names), unless ``allow_empty``. The message says where the
    rows went: the commonest drop reasons, and the first line that could not be read."""
    if allow_empty or funnel.rows_out:
        return
    if funnel.rows_in == 0:
        raise InputError("the inputs hold no rows",
                         hint=f"give files with at least one row, {ALLOW_EMPTY_HINT}")
    reasons: Counter[str] = Counter()
    for f in funnel.filters:
        reasons.update({f"{f.name}: {r}": n for r, n in f.stats.reasons.items()})
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    shown = ", ".join(f"{n} {r}" for r, n in top[:3]) + (", ..." if len(top) > 3 else "")
    first = f"; the first unreadable line: {first_bad.message}" if first_bad else ""
    raise InputError(f"no row left: all {funnel.rows_in} input rows were dropped ({shown})"
                     + first,
                     hint=f"see every dropped row and why with --reject FILE, fix the inputs, "
                          f"{ALLOW_EMPTY_HINT}")


def finish_build(out: Path, *, writer: ShardWriter, funnel: Funnel[Any], report: dict[str, Any],
                 manifest: dict[str, Any], plots: list[Plot], usage: str) -> BuildResult:
    """Close the shards and write every file beside them; nothing holds a date or a path."""
    shards = writer.close()
    fp = fingerprint(shards)
    images: dict[str, str] = {}
    for p in plots:
        rel = f"plots/{p.name}.png"
        plot_histogram(out / rel, edges=p.edges, counts=p.counts, labels=p.labels,
                       title=p.title, xlabel=p.xlabel)
        images[p.title] = rel
    report = {**report, "funnel": funnel.to_json(), "plots": sorted(images.values())}
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True,
                                                ensure_ascii=False) + "\n", encoding="utf-8")
    filters: list[Filter[Any]] = funnel.filters
    full = write_build_manifest(out, shards, {
        **manifest, "format": "cirkit-dataset", "version": BUILD_FORMAT_VERSION,
        "cirkit_version": __version__, "split": writer.split, "fingerprint": fp,
        "funnel": report["funnel"],
        "filters": [{"name": f.name, "description": f.description, "config": f.config()}
                    for f in filters]})
    write_card(out, full, writer.schema, usage=usage,
               report_markdown=markdown_section(report, images))
    return BuildResult(out=out, kind=str(manifest["kind"]), rows_in=funnel.rows_in,
                       rows_out=funnel.rows_out, shards=shards, fingerprint=fp, report=report,
                       manifest=full)
