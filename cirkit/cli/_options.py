"""Option decorators shared by the commands, so every verb spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from recorders import SEARCH, VISIT, Backend, Mode, Recorder, Store, make_backend
from recorders.backends import SEARCH_BACKENDS, VISIT_BACKENDS

__all__ = [
    "backend_option", "build_recorder", "corpus_option", "mode_option", "store_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def _mode(ctx: click.Context, param: click.Parameter, value: str) -> Mode:
    try:
        return Mode.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def store_option(f: F) -> F:
    return click.option(
        "--store", "store", type=click.Path(file_okay=False, path_type=Path),
        default=None, envvar="CIRKIT_STORE", show_envvar=True,
        help="Store directory (created on demand). Without it, mode must be 'off'.",
    )(f)


def mode_option(default: str = "auto") -> Callable[[F], F]:
    def deco(f: F) -> F:
        return click.option(
            "--mode", default=default, show_default=True, callback=_mode,
            help="record | replay (strict) | auto | rewrite | off",
        )(f)
    return deco


def corpus_option(f: F) -> F:
    return click.option(
        "--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        help="Corpus for the local backends (Search-R1 JSONL/parquet); default: the demo "
             "Wikipedia corpus.",
    )(f)


def backend_option(tool: str, *, flag: str = "--backend") -> Callable[[F], F]:
    """``--backend`` for the tool a command calls (local: no key, no network)."""
    table = SEARCH_BACKENDS if tool == SEARCH else VISIT_BACKENDS
    dest = "search_backend" if tool == SEARCH else "visit_backend"

    def deco(f: F) -> F:
        return click.option(
            flag, dest, type=click.Choice(list(table)), default="local", show_default=True,
            help=f"Backend answering {tool} (API keys come from the environment).",
        )(f)
    return deco


def _backend(tool: str, name: str, corpus: Path | None) -> Backend:
    opts: dict[str, Any] = {}
    if name == "local" and corpus is not None:
        opts["corpus"] = corpus
    return make_backend(tool, name, **opts)


def build_recorder(
    *, store: Path | None, mode: Mode, search_backend: str | None, visit_backend: str | None,
    corpus: Path | None, tools: tuple[str, ...] = (SEARCH, VISIT), readonly: bool | None = None,
) -> Recorder:
    """A Recorder for the CLI. In replay mode no backend is built (replay needs no key, no
    corpus and no network) and the store is opened read-only unless ``readonly`` says."""
    if store is None and mode is not Mode.OFF:
        raise click.UsageError(f"--mode {mode} needs --store DIR (or CIRKIT_STORE)")
    ro = mode is Mode.REPLAY if readonly is None else readonly
    st = Store(store, readonly=ro) if store is not None else None
    live = mode is not Mode.REPLAY
    search = _backend(SEARCH, search_backend, corpus) if live and search_backend and \
        SEARCH in tools else None
    visit = _backend(VISIT, visit_backend, corpus) if live and visit_backend and \
        VISIT in tools else None
    return Recorder(st, search=search, visit=visit, mode=mode)
