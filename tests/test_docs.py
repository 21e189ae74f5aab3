"""The documentation builds with ``mkdocs build --strict`` and its references are complete.

The site goes to a temporary directory, never into the repository. The CLI reference is
generated from the click commands and the API reference from the packages' ``__all__``; both
are checked name by name, so neither can silently drop a command or a public name.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from markdown.extensions.toc import slugify

from cirkit.cli import cli

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

KEY_PAGES = [
    "index.html",
    "quickstart/index.html",
    "concepts/store/index.html",
    "concepts/modes/index.html",
    "concepts/keys/index.html",
    "concepts/dialects/index.html",
    "concepts/masks/index.html",
    "how-to/sft-from-teacher/index.html",
    "how-to/rl-for-verl/index.html",
    "how-to/replay-evaluation/index.html",
    "how-to/share-store/index.html",
    "how-to/pytest-plugin/index.html",
    "reference/cli/index.html",
    "reference/formats/index.html",
]

# API reference page -> the package it documents (every name of its __all__ must appear).
API_PAGES = {
    "recorders": "recorders",
    "inputs": "cirkit.inputs",
    "trajectory": "cirkit.trajectory",
    "tokenizer": "cirkit.tokenizer",
    "rollout": "cirkit.rollout",
    "llm": "cirkit.llm",
    "sandbox": "cirkit.sandbox",
    "datasets": "cirkit.datasets",
    "integrations-verl": "cirkit.integrations.verl",
    "hub": "cirkit.hub",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_strict_build_writes_the_key_pages(site: Path) -> None:
    missing = [p for p in KEY_PAGES if not (site / p).is_file()]
    assert not missing, f"pages missing from the built site: {missing}"
    for name in API_PAGES:
        assert (site / "reference" / "api" / name / "index.html").is_file(), name


def _commands(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[str, click.Command]]:
    """(full command path, command) for ``cmd`` and every command under it."""
    yield ctx.command_path, cmd
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from _commands(sub, click.Context(sub, info_name=name, parent=ctx))


def test_cli_reference_lists_every_command(site: Path) -> None:
    html = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    paths = [path for path, _ in _commands(cli, click.Context(cli, info_name="cirkit"))]
    assert "cirkit store pack" in paths  # the walk reaches nested groups
    missing = [p for p in paths if f'id="{slugify(p, "-")}"' not in html]
    assert not missing, f"commands missing from the CLI reference: {missing}"


@pytest.mark.parametrize("page", sorted(API_PAGES))
def test_api_reference_lists_every_public_name(site: Path, page: str) -> None:
    module = importlib.import_module(API_PAGES[page])
    html = (site / "reference" / "api" / page / "index.html").read_text(encoding="utf-8")
    missing = [n for n in module.__all__ if f'id="{module.__name__}.{n}"' not in html]
    assert not missing, f"{module.__name__} names missing from its API page: {missing}"

