"""The wheel carries what an installed cirkit needs beyond its code: the demo's inputs, read
through ``importlib.resources``, so `cirkit demo` runs from a wheel, even one imported as a zip,
and the tiny CIR model the demo serves.

The wheel is built offline (``--no-build-isolation``) from a copy of the sources in a temporary
folder, so no ``build/`` or ``*.egg-info`` lands in the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cirkit.demo import DEMO_CALLS, DEMO_DATA, DEMO_QUESTIONS
from cirkit.testing import MODEL_NAME

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# Run against the wheel itself on sys.path: a zipped install, where no data file is a path.
ZIPPED = f"""
import cirkit, cirkit.demo as demo
assert cirkit.__file__.startswith({{wheel!r}}), cirkit.__file__
for name in ({DEMO_QUESTIONS!r}, {DEMO_CALLS!r}):
    with demo.demo_file(name) as path:
        assert path.name == name, path
        print(name, len(path.read_bytes()))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, src / name)
    for pkg in ("cirkit", "recorders"):
        shutil.copytree(ROOT / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (built,) = (tmp / "dist").glob("cirkit-*.whl")
    return built


def test_the_wheel_carries_the_demo_inputs(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for name in (DEMO_QUESTIONS, DEMO_CALLS):
            inside = f"cirkit/{DEMO_DATA}/{name}"
            assert inside in names, sorted(n for n in names if not n.endswith(".py"))
            assert z.read(inside) == (ROOT / "cirkit" / DEMO_DATA / name).read_bytes()
        assert {"cirkit/py.typed", "recorders/py.typed"} <= names
        shipped = ROOT / "cirkit" / "testing" / MODEL_NAME
        for path in sorted(shipped.iterdir()):  # the tiny model: the demo serves it as is
            inside = f"cirkit/testing/{MODEL_NAME}/{path.name}"
            assert inside in names and z.read(inside) == path.read_bytes()
        # verl reads these two by path (agent_loop_config_path, custom_reward_function.path)
        assert {"cirkit/integrations/verl/agent_loop.yaml",
                "cirkit/integrations/verl/reward.py"} <= names


def test_a_zipped_install_reads_the_demo_inputs(wheel: Path, tmp_path: Path) -> None:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(wheel),
                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", ZIPPED.format(wheel=str(wheel))],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    sizes = dict(line.split() for line in proc.stdout.splitlines())
    for name in (DEMO_QUESTIONS, DEMO_CALLS):
        assert int(sizes[name]) == (ROOT / "cirkit" / DEMO_DATA / name).stat().st_size
