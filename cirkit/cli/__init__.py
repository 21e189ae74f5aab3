"""The ``cirkit`` command line: one module per command group."""

from __future__ import annotations

import sys
from typing import Any

import click

from cirkit import __version__
from cirkit.errors import CirkitError
from recorders import RecordersError

from ._build import build
from ._demo import demo
from ._errors import Group, fail, leaf_command
from ._eval import eval_group
from ._exec import exec_cmd
from ._push import pull, push
from ._record import record
from ._rollout import rollout
from ._serve import parse_rope_scaling, serve
from ._store import store
from ._tools import tools
from ._validate import validate

__all__ = [
    "Cli", "build", "cli", "demo", "eval_group", "exec_cmd", "main", "parse_rope_scaling",
    "pull", "push", "record", "rollout", "serve", "store", "tools", "validate",
]


class Cli(Group):
    """Turns known errors, and OS and decode errors at the edges, into one clear line plus a
    hint naming this command's option: never a traceback for a user's input."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (RecordersError, CirkitError, OSError, UnicodeError) as e:
            fail(e, leaf_command(ctx))
        except KeyboardInterrupt:
            click.echo("interrupted; everything recorded so far is kept", err=True)
            sys.exit(130)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cirkit")
def cli() -> None:
    """cirkit: record and replay web tools for Code-Integrated Reasoning, run CIR rollouts,
    build SFT/RL datasets."""


cli.add_command(tools)
cli.add_command(record)
cli.add_command(store)
cli.add_command(validate)
cli.add_command(exec_cmd)
cli.add_command(rollout)
cli.add_command(push)
cli.add_command(pull)
cli.add_command(build)
cli.add_command(serve)
cli.add_command(demo)
cli.add_command(eval_group, name="eval")


def main() -> None:
    cli()
