"""Errors as the command line shows them: one ``error:`` line, one ``hint:`` line, exit 1.

Library errors say what to change in library terms (``setting="mode"``); this module names the
option of the command that ran (``--mode`` for ``cirkit tools``, ``--tools-mode`` or
``--llm-mode`` for ``cirkit rollout``). OSError and decode errors that reach the command line
get the same treatment: a user's bad path or file never prints a traceback.
"""

from __future__ import annotations

import errno
import sys
from typing import NoReturn

import click

from cirkit.errors import CirkitError
from recorders import COMPLETION, RecordersError

__all__ = ["Group", "KnownError", "fail", "leaf_command", "option_for", "render"]

KnownError = RecordersError | CirkitError
_LEAF = "cirkit.command"


class Group(click.Group):
    """A command group that remembers which command it ran (``ctx.meta`` is shared by every
    context of one invocation), so an error can name that command's options."""

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        ctx.meta[_LEAF] = cmd
        return name, cmd, rest


def leaf_command(ctx: click.Context) -> click.Command | None:
    """The innermost command of this invocation, once resolved."""
    cmd = ctx.meta.get(_LEAF)
    return cmd if isinstance(cmd, click.Command) else None


def option_for(command: click.Command | None, setting: str | None,
               *, tool: str | None = None) -> str | None:
    """The flag of ``command`` that sets ``setting``: ``--mode``, or ``--tools-mode`` /
    ``--llm-mode`` where a command has one per side (``tool`` says which side failed)."""
    if command is None or not setting:
        return None
    side = ["llm", "tools"] if tool == COMPLETION else ["tools", "llm"]
    names = [setting, *(f"{s}_{setting}" for s in side)]
    options = {p.name: p for p in command.params if isinstance(p, click.Option)}
    for name in names:
        opt = options.get(name)
        if opt is not None:
            return max(opt.opts, key=len)
    return None


def render(e: KnownError, command: click.Command | None) -> tuple[str, str | None]:
    """(the error line, the hint line or None) for ``e`` raised under ``command``."""
    fields = getattr(e, "fields", None)
    tool = fields.get("tool") if isinstance(fields, dict) else None
    flag = option_for(command, getattr(e, "setting", None), tool=str(tool) if tool else None)
    hint = e.hint
    if flag is not None and flag not in (hint or ""):
        hint = f"{hint} (option {flag})" if hint else f"set {flag}"
    return e.message, hint


def _os_error(e: OSError) -> tuple[str, str]:
    where = f": {e.filename}" if e.filename else ""
    reason = e.strerror or str(e) or type(e).__name__
    if e.errno == errno.ENOSPC:
        return f"no space left on the device{where}", "free some space and run it again"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{reason}{where}", "choose a path you can write to, or fix its permissions"
    return f"{reason}{where}", "check the path: it must exist and be of the right kind"


def fail(e: BaseException, command: click.Command | None) -> NoReturn:
    """Print ``e`` as one error line and one hint line, then exit 1."""
    if isinstance(e, RecordersError | CirkitError):
        message, hint = render(e, command)
    elif isinstance(e, UnicodeError):
        message = f"an input is not valid text: {e}"
        hint = "give UTF-8 text files"
    elif isinstance(e, OSError):
        message, hint = _os_error(e)
    else:  # pragma: no cover - fail() is only called with the types above
        raise e
    click.secho(f"error: {message.splitlines()[0] if message else type(e).__name__}",
                fg="red", err=True)
    for extra in message.splitlines()[1:]:
        click.echo(extra, err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)
    sys.exit(1)
