"""The evaluation report: ``report.json`` (byte-deterministic), ``report.md`` and PNG plots.

``report.json`` has sorted keys, no timestamps and every float written with 6 decimals, so
the same graded rows give the same bytes; the plots reuse the build report's deterministic
matplotlib setup.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cirkit.datasets import plot_histogram

__all__ = ["PLOTS", "dumps_report", "markdown_report", "plot_accuracy", "write_report"]

#: The plots a report writes, by file name.
PLOTS = ("accuracy_by_source.png", "code_blocks.png", "tool_calls.png")


def _fixed(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.6f}")
    if isinstance(value, dict):
        return {str(k): _fixed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fixed(v) for v in value]
    return value


def dumps_report(report: dict[str, Any]) -> bytes:
    """``report`` as the bytes of ``report.json``."""
    return (json.dumps(_fixed(report), sort_keys=True, indent=2, ensure_ascii=False)
            + "\n").encode("utf-8")


def plot_accuracy(path: Path, by_source: dict[str, Any], *, title: str) -> None:
    """Accuracy per source with its 95% interval, byte-identical for the same numbers."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.hashsalt"] = "cirkit"
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = sorted(by_source)
    acc = [by_source[n]["accuracy"] for n in names]
    err = [[a - by_source[n]["ci95"][0] for n, a in zip(names, acc, strict=True)],
           [by_source[n]["ci95"][1] - a for n, a in zip(names, acc, strict=True)]]
    fig = Figure(figsize=(6.4, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(names, acc, yerr=err, capsize=4, color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.set_ylabel("accuracy")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def markdown_report(report: dict[str, Any]) -> str:
    """The report for people (and for an eval pack's card)."""
    lines = ["# Evaluation report", "",
             f"{report['questions']} questions, {report['samples']} sample(s) each, "
             f"{report['trajectories']} trajectories.", "",
             "| grader | accuracy % | 95% interval | Avg@k % | Pass@k % |",
             "| --- | ---: | --- | ---: | ---: |"]
    for g, b in report["graders"].items():
        lo, hi = b["ci95"]
        lines.append(f"| {g} | {_pct(b['accuracy'])} | {_pct(lo)}-{_pct(hi)} | "
                     f"{_pct(b['avg_at_k'])} | {_pct(b['pass_at_k'])} |")
    lines += ["", f"Not attempted: {_pct(report['not_attempted_rate'])}% of trajectories.", ""]
    if "judge" in report:
        j = report["judge"]
        lines += [f"Judge verdicts: {json.dumps(j['verdicts'], sort_keys=True)}; "
                  f"**{j['unparsable']} of {j['graded']} judge replies did not parse** "
                  "(counted as not correct, never guessed).", ""]
    for g, b in report["graders"].items():
        for kind in ("by_source", "by_topic"):
            if b[kind]:
                lines += [f"## {g} {kind.replace('_', ' ')}", "",
                          "| name | questions | accuracy % | 95% interval |",
                          "| --- | ---: | ---: | --- |"]
                for name, v in b[kind].items():
                    lines.append(f"| {name.replace('|', '/')} | {v['questions']} | "
                                 f"{_pct(v['accuracy'])} | {_pct(v['ci95'][0])}-"
                                 f"{_pct(v['ci95'][1])} |")
                lines.append("")
    t, cov = report["tools"], report["replay_coverage"]
    lines += ["## Tool use", "",
              f"Per question: {t['searches_per_question']:.2f} searches, "
              f"{t['visits_per_question']:.2f} visits, {t['code_blocks_per_question']:.2f} code "
              "blocks.", "",
              f"Finish reasons: {json.dumps(report['finish_reasons'], sort_keys=True)}.", "",
              f"Replay coverage: the store answered {cov['answered']} of {cov['calls']} calls "
              f"({_pct(cov['share'])}%).", ""]
    lines += [f"![{p[:-4].replace('_', ' ')}]({p})" for p in PLOTS]
    return "\n".join(lines) + "\n"


def write_report(out: Path, report: dict[str, Any], *, primary: str) -> None:
    """``report.json``, ``report.md`` and the plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_bytes(dumps_report(report))
    (out / "report.md").write_text(markdown_report(report), encoding="utf-8")
    plot_accuracy(out / PLOTS[0], report["graders"][primary]["by_source"],
                  title=f"{primary} accuracy by source (95% interval)")
    for name, key, label in ((PLOTS[1], "code_blocks_histogram", "code blocks"),
                             (PLOTS[2], "tool_calls_histogram", "tool calls")):
        hist = report["tools"][key]
        plot_histogram(out / name, counts=list(hist.values()), labels=list(hist),
                       title=f"{label} per trajectory", xlabel=label)
