"""Eval packs: a run's benchmark files, trajectories, grades, report and store in one folder,
named by the sha256 of its manifest.

A pack is a Hub dataset folder (``README.md`` card, ``data/grades.jsonl``), so ``cirkit push``
and ``cirkit pull`` carry it. ``replay_pack`` re-grades it from its own store, judge calls
included, with no server and no network, and checks the report against the packed one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirkit.errors import CirkitError, InputError
from recorders import Mode, Recorder, Store, pack, unpack

from ._graders import Judge, JudgeTemplate
from ._run import EVAL_FILE, GRADES_FILE, EvalSpec, grade_run

__all__ = ["PACK_MANIFEST", "PACK_STORE", "PackInfo", "ReplayResult", "pack_run", "replay_pack"]

PACK_MANIFEST = "manifest.json"
PACK_STORE = "store/store.cirpack"  # where cirkit push --with-store puts a store, too
_RUN_FILES = (EVAL_FILE, "report.json", "report.md", GRADES_FILE)
_RUN_DIRS = ("benchmarks", "rollouts")


@dataclass(slots=True, frozen=True)
class PackInfo:
    path: Path
    sha256: str  # of manifest.json: the pack's name
    files: int


@dataclass(slots=True, frozen=True)
class ReplayResult:
    out: Path
    identical: bool  # the replayed report.json has the packed one's bytes
    report: dict[str, Any]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.name != PACK_MANIFEST and p.name != "README.md")


def _card(spec: EvalSpec, report: dict[str, Any], sha: str) -> str:
    scores = "\n".join(f"| {g} | {100 * b['accuracy']:.1f} | {100 * b['ci95'][0]:.1f}-"
                       f"{100 * b['ci95'][1]:.1f} |" for g, b in report["graders"].items())
    sampling = json.dumps(spec.sampling or {}, sort_keys=True)
    return f"""---
configs:
- config_name: default
  data_files:
  - split: test
    path: {GRADES_FILE}
tags:
- cirkit
- eval-pack
---
# cirkit eval pack `{sha[:16]}`

- model: `{spec.model}`
- sampling: `{sampling}`, {spec.samples} sample(s) per question
- date (stated in the prompt): {spec.date}
- benchmarks: {", ".join(spec.benchmarks)}
- graders: {", ".join(spec.graders)}{f" (judge `{spec.judge_model}`)" if spec.judge_model else ""}
- manifest sha256: `{sha}`

| grader | accuracy % | 95% interval |
| --- | ---: | --- |
{scores}

Reproduce this report offline, byte for byte: `cirkit eval --replay PACK_DIR --out DIR`.
"""


def pack_run(run: Path, dest: Path, *, store: Path) -> PackInfo:
    """Bundle the graded run ``run`` and its ``store`` into the folder ``dest``."""
    if not (run / EVAL_FILE).is_file() or not (run / "report.json").is_file():
        raise InputError(f"{run} is not a graded evaluation run (no {EVAL_FILE} or "
                         "report.json)", path=run, hint="pass the --out directory of cirkit eval")
    if dest.exists() and any(dest.iterdir()):
        raise CirkitError(f"{dest} exists and is not empty", setting="out",
                          hint="pack into a new or empty folder")
    spec = EvalSpec.from_json(json.loads((run / EVAL_FILE).read_text(encoding="utf-8")))
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    dest.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / name, dest / name)
    for d in _RUN_DIRS:
        shutil.copytree(run / d, dest / d, ignore=shutil.ignore_patterns("parts"))
    for png in sorted(run.glob("*.png")):
        shutil.copyfile(png, dest / png.name)
    (dest / PACK_STORE).parent.mkdir(parents=True, exist_ok=True)
    with Store(store, readonly=True) as st:
        pack(st, dest / PACK_STORE)
    files = {f: _sha(dest / f) for f in _files(dest)}
    manifest = {"format": "cirkit-eval-pack", "version": 1, "files": files}
    raw = (json.dumps(manifest, sort_keys=True, indent=2) + "\n").encode("utf-8")
    (dest / PACK_MANIFEST).write_bytes(raw)
    sha = hashlib.sha256(raw).hexdigest()
    (dest / "README.md").write_text(_card(spec, report, sha), encoding="utf-8")
    return PackInfo(dest, sha, len(files) + 2)


def _check(pack_dir: Path) -> dict[str, str]:
    path = pack_dir / PACK_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files = dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(f"{pack_dir} is not an eval pack (no readable {PACK_MANIFEST})",
                         path=pack_dir, hint="pass a folder `cirkit eval pack` wrote, or "
                                             "`cirkit pull` fetched") from None
    for name, sha in sorted(files.items()):
        f = pack_dir / name
        if not f.is_file() or _sha(f) != sha:
            what = "missing" if not f.is_file() else "changed"
            raise InputError(f"eval pack file {name} is {what} (manifest sha256 {sha[:12]})",
                             path=pack_dir, hint="pull the pack again")
    return files


def replay_pack(pack_dir: Path, out: Path) -> ReplayResult:
    """Re-grade the pack into ``out`` from its own store: no server, no network."""
    files = _check(pack_dir)
    if out.exists() and any(out.iterdir()):
        raise CirkitError(f"{out} exists and is not empty", setting="out",
                          hint="replay into a new or empty folder")
    spec = EvalSpec.from_json(json.loads((pack_dir / EVAL_FILE).read_text(encoding="utf-8")))
    out.mkdir(parents=True, exist_ok=True)
    for name in files:
        if name.startswith(_RUN_DIRS) or name == EVAL_FILE:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pack_dir / name, out / name)
    with Store(out / "store") as st:
        unpack(pack_dir / PACK_STORE, st)
    with Store(out / "store", readonly=True) as st:
        judge = None
        if "judge" in spec.graders:
            assert spec.judge_model is not None and spec.judge_template is not None
            judge = Judge(model=spec.judge_model, base_url=None,
                          recorder=Recorder(st, mode=Mode.REPLAY),
                          template=JudgeTemplate(spec.judge_template))
        report = grade_run(out, spec, judge=judge, store=st)
    same = (out / "report.json").read_bytes() == (pack_dir / "report.json").read_bytes()
    return ReplayResult(out, same, report)
