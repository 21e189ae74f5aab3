"""Option decorators shared by the commands, so every verb spells them the same way."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from cirkit.cir import DEFAULT_DATE
from cirkit.llm import Sampling
from cirkit.rollout import RolloutLimits
from recorders import SEARCH, VISIT, Backend, Mode, Recorder, Store, make_backend
from recorders.backends import SEARCH_BACKENDS, VISIT_BACKENDS, LocalSearch

__all__ = [
    "SECONDS", "RecorderOptions", "backend_option", "build_recorder", "corpus_option",
    "mode_option", "recorder_options", "rollout_options", "store_option",
]

F = TypeVar("F", bound=Callable[..., Any])


_MODES = [m.value for m in Mode]


class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """A duration in seconds: finite and above 0. ``click.FloatRange(min=0, min_open=True)``
    lets ``nan`` through (it compares False with every bound), which disables the limit."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds <= 0:
            self.fail(f"{value!r} is not a finite number of seconds above 0", param, ctx)
        return seconds


#: The type of every option that sets a block's (or a call's) time limit.
SECONDS = _Seconds()


class _ModeChoice(click.Choice):  # type: ignore[type-arg]
    """The record modes as a choice (listed in --help, completed by shells) whose error is the
    library's own, listing the valid modes."""

    def __init__(self) -> None:
        super().__init__(_MODES, case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Mode:
        try:
            return Mode.parse(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


def _mode_choice(flag: str, default: str, help: str) -> Callable[[F], F]:
    return click.option(flag, default=default, show_default=True, type=_ModeChoice(),
                        help=help)


def store_option(f: F) -> F:
    return click.option(
        "--store", "store", type=click.Path(file_okay=False, path_type=Path),
        default=None, envvar="CIRKIT_STORE", show_envvar=True,
        help="Store directory (created on demand). Without it, mode must be 'off'.",
    )(f)


def mode_option(default: str = "auto") -> Callable[[F], F]:
    return _mode_choice("--mode", default, "record | replay (strict) | auto | rewrite | off")


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
    track_keys: bool = True,
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
    return Recorder(st, search=search, visit=visit, mode=mode, track_keys=track_keys)


@dataclass(slots=True, frozen=True, kw_only=True)
class RecorderOptions:
    """What the recorder options of a command said: where the store is, which modes, which
    backends. ``llm_mode`` is set only on commands that also record model completions."""

    store: Path | None
    mode: Mode
    search_backend: str | None
    visit_backend: str | None
    corpus: Path | None
    llm_mode: Mode | None = None

    @contextlib.contextmanager
    def open(self, *, tools: tuple[str, ...] = (SEARCH, VISIT), mode: Mode | None = None,
             readonly: bool | None = None, track_keys: bool = True) -> Iterator[Recorder]:
        """The tools' Recorder (see ``build_recorder``), its store closed on the way out;
        ``mode`` overrides the tools mode. A corpus the user gave is read (and checked) before
        the store is created, so a bad one leaves nothing behind."""
        live = (mode or self.mode) is not Mode.REPLAY
        if self.corpus is not None and live and "local" in (self.search_backend,
                                                             self.visit_backend):
            LocalSearch(corpus=self.corpus).corpus  # noqa: B018 - the backends reuse it
        rec = build_recorder(store=self.store, mode=mode or self.mode,
                             search_backend=self.search_backend,
                             visit_backend=self.visit_backend, corpus=self.corpus,
                             tools=tools, readonly=readonly, track_keys=track_keys)
        with rec.store if rec.store is not None else contextlib.nullcontext():
            yield rec


def recorder_options(*, tools: Sequence[str] = (SEARCH, VISIT), default_mode: str = "auto",
                     llm: bool = False) -> Callable[[F], F]:
    """``--store``, the mode(s), the backend of each tool and ``--corpus``, handed to the
    command as one ``recorder: RecorderOptions`` argument.

    One tool: its backend is ``--backend``. Both tools: ``--backend`` (search) and
    ``--visit-backend``. ``llm=True``: ``--tools-mode`` and ``--llm-mode`` instead of ``--mode``.
    """
    both = len(tools) > 1
    decorators: list[Callable[[F], F]] = [store_option]
    if llm:
        decorators += [
            _mode_choice("--tools-mode", default_mode, "Store mode for web tools and code runs."),
            _mode_choice("--llm-mode", default_mode, "Store mode for model completions."),
        ]
    else:
        decorators.append(mode_option(default_mode))
    for tool in tools:
        decorators.append(backend_option(tool, flag="--visit-backend" if both and tool == VISIT
                                         else "--backend"))
    decorators.append(corpus_option)

    def deco(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, **kwargs: Any) -> Any:
            opts = RecorderOptions(
                store=kwargs.pop("store"),
                mode=kwargs.pop("tools_mode") if llm else kwargs.pop("mode"),
                llm_mode=kwargs.pop("llm_mode") if llm else None,
                search_backend=kwargs.pop("search_backend", None),
                visit_backend=kwargs.pop("visit_backend", None),
                corpus=kwargs.pop("corpus"))
            return f(*args, recorder=opts, **kwargs)

        out: Any = command
        for d in reversed(decorators):
            out = d(out)
        return out  # type: ignore[no-any-return]

    return deco


_LIMITS, _SAMPLING = RolloutLimits(), Sampling()


def rollout_options(f: F) -> F:
    """The sampling, the limits and the prompt's date of a rollout, with the library's
    defaults: ``cirkit rollout`` and ``cirkit eval`` ask for them alike."""
    decorators: list[Callable[[F], F]] = [
        click.option("--samples", default=1, show_default=True, type=click.IntRange(min=1)),
        click.option("--seed", default=0, show_default=True,
                     help="Base seed: each request derives its own (and eval's bootstrap)."),
        click.option("--temperature", default=_SAMPLING.temperature, show_default=True),
        click.option("--top-p", default=_SAMPLING.top_p, show_default=True),
        click.option("--top-k", default=_SAMPLING.top_k, show_default=True),
        click.option("--max-tokens", default=_SAMPLING.max_tokens, show_default=True,
                     help="Per request."),
        click.option("--max-code-blocks", default=_LIMITS.max_code_blocks, show_default=True),
        click.option("--max-response-tokens", default=_LIMITS.max_response_tokens,
                     show_default=True),
        click.option("--max-total-tokens", default=_LIMITS.max_total_tokens,
                     show_default=True),
        click.option("--max-model-len", type=click.IntRange(min=1), default=None,
                     help="The server's context length: no request asks past it [default: what "
                          "the server reports on /v1/models; a replay passes the recorded "
                          "run's, as its manifest.json says]."),
        click.option("--date", default=DEFAULT_DATE, show_default=True,
                     help="The date the system prompt states (an input, never the clock)."),
    ]
    for deco in reversed(decorators):
        f = deco(f)
    return f
