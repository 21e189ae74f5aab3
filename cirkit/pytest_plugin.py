"""pytest plugin: the replay store as deterministic fixtures for testing agents.

Why: an agent's tests should not depend on a search provider or a model server being up, nor on
what the web says today. Record once with keys set (``pytest --cirkit-mode=record``), commit
the store, and every later ``pytest`` replays it strictly, offline, with no key::

    @pytest.mark.cirkit_store("search_cases")        # the store tests/stores/search_cases
    def test_agent(cirkit_tools):
        text = cirkit_tools.web_search("who painted the night watch", num_results=3)

Which store: ``@pytest.mark.cirkit_store(name)`` is ``<stores root>/<name>``; the root is the
ini option ``cirkit_stores_dir`` (default ``tests/stores``, from the rootdir);
``cirkit_store(path=...)`` is any directory (a relative one from the rootdir). The marker may
sit on a test, a class or a module (``pytestmark``). Unmarked (or a bare marker), a test gets
``<stores root>/<module>/<test>``: the test file's path from the rootdir dotted, without
``.py`` (``tests.test_agent``), then the function's name, class-qualified
(``TestAgent.test_search``); the variants of a parametrized test share one store (a key names
a call, so variants cannot clash).

Modes (``--cirkit-mode``), as in ``recorders.Mode``: ``replay`` (default: strict, a miss fails
the test showing the key's fields and the nearest recorded calls; no backend is made, no key is
needed, the store is left byte for byte as it was), ``record``, ``auto``, ``rewrite``, ``off``.
Backends, when the mode calls out: ``--cirkit-search-backend``/``--cirkit-visit-backend`` or the
ini options of the same names (default ``local``, no key), or override the ``cirkit_backends``
fixture in a conftest.py to pass options.

Fixtures (none autouse): ``cirkit_store`` (the ``recorders.Store``), ``cirkit_recorder`` (the
async ``recorders.Recorder``), ``cirkit_tools`` (sync ``web_search``/``web_visit`` returning the
model-facing text), ``cirkit_llm`` (an ``OpenAICompletionClient`` through the same recorder; its
model and base URL from ``@pytest.mark.cirkit_llm(model=..., base_url=...)``,
``--cirkit-llm-base-url`` or the ini options ``cirkit_llm_model``/``cirkit_llm_base_url``),
``cirkit_backends`` and ``cirkit_mode``.

``--cirkit-block-network`` (or the marker ``cirkit_block_network``): a socket connect from this
process to an address other than loopback fails the test, even if the code under test catches
the error. Installed, the plugin imports only pytest and the standard library. To load it
explicitly use ``-p cirkit`` (the entry point's name; ``-p cirkit.pytest_plugin`` clashes
with auto-loading).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from cirkit.llm import OpenAICompletionClient
    from recorders import Backend, Mode, Recorder, Store, ToolResult

__all__ = [
    "CirkitTools", "NetworkBlockedError", "cirkit_backends", "cirkit_llm", "cirkit_mode",
    "cirkit_recorder", "cirkit_store", "cirkit_tools",
]

_STORE_KWARGS = frozenset({"path"})
_MISS_HINT = ("record it first (pytest --cirkit-mode=auto, or record), or fix the call so it "
              "matches")


class NetworkBlockedError(RuntimeError):
    """A connect to a non-loopback address under ``--cirkit-block-network`` (a RuntimeError,
    not an OSError, so that HTTP clients' retry loops do not swallow it)."""


class CirkitTools:
    """``web_search``/``web_visit`` as a CIR code block calls them: sync, returning the text
    the model sees. Inside async code use ``await tools.recorder.web_search(...)``."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def web_search(self, *args: Any, **kwargs: Any) -> str:
        """``web_search(query, num_results=5)``; every spelling a code block may use
        (``num_result``, ``max_result``...) works, bound through ``cirkit.cir.TOOLS``."""
        __tracebackhide__ = True
        return self._tool("web_search", args, kwargs)

    def web_visit(self, *args: Any, **kwargs: Any) -> str:
        """``web_visit(url)``."""
        __tracebackhide__ = True
        return self._tool("web_visit", args, kwargs)

    def visit_webpage(self, *args: Any, **kwargs: Any) -> str:
        """The demo dialect's ``visit_webpage(url)``: the same call as ``web_visit``."""
        __tracebackhide__ = True
        return self._tool("visit_webpage", args, kwargs)

    def _tool(self, spelling: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        from .cir import get_tool

        __tracebackhide__ = True
        tool = get_tool(spelling)
        return self.call(tool.name, tool.bind(spelling, args, kwargs)).text

    def call(self, tool: str, args: Mapping[str, Any]) -> ToolResult:
        """The whole ToolResult (text, data, key, from_store) of one call."""
        import asyncio

        from recorders import ReplayMissError

        __tracebackhide__ = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("cirkit_tools is sync; inside a running event loop use "
                               f"`await cirkit_tools.recorder.call({tool!r}, ...)`")
        try:
            return self.recorder.call_sync(tool, args)
        except ReplayMissError as e:  # shown at the test's line, not deep in asyncio
            # the same miss, its hint naming this plugin's flag instead of the library's setting
            raise ReplayMissError(e.message, key=e.key, fields=e.fields, nearest=e.nearest,
                                  hint=_MISS_HINT) from None


# -- options and markers -----------------------------------------------------------------------
def _mode_arg(value: str) -> str:
    from recorders import Mode

    try:
        return Mode.parse(value).value
    except ValueError as e:  # argparse shows an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(str(e)) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cirkit", "cirkit: tools and completions from a replay store")
    group.addoption("--cirkit-mode", type=_mode_arg, default=None, metavar="MODE",
                    help="record mode of the cirkit fixtures: replay (default, strict), record, "
                         "auto, rewrite or off")
    group.addoption("--cirkit-block-network", action="store_true", default=False,
                    help="fail a test that connects to any address but loopback")
    group.addoption("--cirkit-search-backend", metavar="NAME", default=None,
                    help="web_search backend when recording (default: ini "
                         "cirkit_search_backend, else local)")
    group.addoption("--cirkit-visit-backend", metavar="NAME", default=None,
                    help="web_visit backend when recording (default: ini cirkit_visit_backend, "
                         "else local)")
    group.addoption("--cirkit-llm-base-url", metavar="URL", default=None,
                    help="completions server(s) of cirkit_llm when recording (comma-separated)")
    parser.addini("cirkit_stores_dir", "root of the named cirkit stores, from the rootdir",
                  default="tests/stores")
    parser.addini("cirkit_search_backend", "web_search backend when recording", default="local")
    parser.addini("cirkit_visit_backend", "web_visit backend when recording", default="local")
    parser.addini("cirkit_llm_base_url", "completions server(s) of cirkit_llm", default="")
    parser.addini("cirkit_llm_model", "model name of cirkit_llm", default="")


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "cirkit_store(name=None, *, path=None): the cirkit store of this test's fixtures",
        "cirkit_llm(*, model=None, base_url=None, **client_options): the cirkit_llm client",
        "cirkit_block_network: fail this test if it connects to any address but loopback",
    ):
        config.addinivalue_line("markers", line)


def _mode(config: pytest.Config) -> Mode:
    from recorders import Mode

    return Mode.parse(config.getoption("cirkit_mode") or Mode.REPLAY)


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _store_path(request: pytest.FixtureRequest) -> Path:
    config, node = request.config, request.node
    root = config.rootpath
    stores = root / str(config.getini("cirkit_stores_dir") or "tests/stores")
    marker = node.get_closest_marker("cirkit_store")
    args, kwargs = (marker.args, marker.kwargs) if marker is not None else ((), {})
    unknown = set(kwargs) - _STORE_KWARGS
    if unknown or len(args) > 1 or (args and kwargs.get("path")):
        pytest.fail(f"use @pytest.mark.cirkit_store(name) or cirkit_store(path=...), not "
                    f"args {args} kwargs {kwargs}", pytrace=False)
    if kwargs.get("path"):
        return root / Path(str(kwargs["path"]))
    if args and args[0]:
        return stores / str(args[0])
    module = Path(_shown(node.path, root)).with_suffix("")
    name = str(getattr(node, "originalname", node.name))
    if request.cls is not None:
        name = f"{request.cls.__name__}.{name}"
    return stores / ".".join(module.parts) / name


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture
def cirkit_mode(request: pytest.FixtureRequest) -> Mode:
    """The run's record mode (``--cirkit-mode``, default replay)."""
    return _mode(request.config)


@pytest.fixture
def cirkit_store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """This test's store (see the module docstring); read-only unless the mode records."""
    from recorders import Mode, Store

    path, mode = _store_path(request), _mode(request.config)
    if mode in (Mode.REPLAY, Mode.OFF):
        if not (path / "store.json").is_file():
            pytest.fail(f"no cirkit store at {_shown(path, request.config.rootpath)} "
                        f"(--cirkit-mode={mode}): record it first with "
                        "`pytest --cirkit-mode=record` (or auto)", pytrace=False)
        with Store(path, readonly=True) as store:  # not one byte of it changes
            yield store
    else:
        with Store(path) as store:
            yield store


@pytest.fixture
def cirkit_backends(request: pytest.FixtureRequest) -> dict[str, Backend | None]:
    """The live backends, by tool, that the recorder calls when its mode says so (never in
    replay). Override this fixture in a conftest.py to pass backend options."""
    from recorders import SEARCH, VISIT, make_backend

    cfg = request.config
    return {tool: make_backend(tool, str(cfg.getoption(f"cirkit_{kind}_backend")
                                         or cfg.getini(f"cirkit_{kind}_backend") or "local"))
            for tool, kind in ((SEARCH, "search"), (VISIT, "visit"))}


@pytest.fixture
def cirkit_recorder(request: pytest.FixtureRequest) -> Recorder:
    """The recorder behind ``cirkit_tools`` and ``cirkit_llm`` (async: ``await rec.web_search``)."""
    from recorders import SEARCH, VISIT, Mode, Recorder

    mode = _mode(request.config)
    backends: Mapping[str, Backend | None] = (
        {} if mode is Mode.REPLAY else request.getfixturevalue("cirkit_backends"))
    store = None if mode is Mode.OFF else request.getfixturevalue("cirkit_store")
    return Recorder(store, search=backends.get(SEARCH), visit=backends.get(VISIT), mode=mode)


@pytest.fixture
def cirkit_tools(cirkit_recorder: Recorder) -> CirkitTools:
    """Sync ``web_search(query, num_results=5)`` and ``web_visit(url)``, served per the mode."""
    return CirkitTools(cirkit_recorder)


def _client_class() -> type[OpenAICompletionClient]:
    import asyncio

    from cirkit.llm import Completion, OpenAICompletionClient, Sampling

    class Client(OpenAICompletionClient):
        """Closes an event loop's connections once nothing is in flight on it: a test's loop
        is closed before its fixtures' teardown, and a pool left open leaks its sockets."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_flight: dict[asyncio.AbstractEventLoop, int] = {}

        @contextlib.asynccontextmanager
        async def _closing(self) -> AsyncIterator[None]:
            loop = asyncio.get_running_loop()
            self._in_flight[loop] = self._in_flight.get(loop, 0) + 1
            try:
                yield
            finally:
                self._in_flight[loop] -= 1
                if not self._in_flight[loop]:
                    del self._in_flight[loop]
                    await self.aclose()

        async def complete(self, prompt_ids: Sequence[int], *, sampling: Sampling,
                           stop: Sequence[str]) -> Completion:
            async with self._closing():
                return await super().complete(prompt_ids, sampling=sampling, stop=stop)

        async def list_models(self, base_url: str | None = None) -> list[str]:
            async with self._closing():
                return await super().list_models(base_url)

    return Client


def _urls(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value or "").replace(",", " ").split()


@pytest.fixture
def cirkit_llm(request: pytest.FixtureRequest,
               cirkit_recorder: Recorder) -> OpenAICompletionClient:
    """An OpenAICompletionClient whose completions go through the store per the mode (in
    replay it needs no server)."""
    from recorders import Mode

    cfg = request.config
    marker = request.node.get_closest_marker("cirkit_llm")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    model = str(options.pop("model", None) or cfg.getini("cirkit_llm_model") or "")
    urls = _urls(options.pop("base_url", None) or cfg.getoption("cirkit_llm_base_url")
                 or cfg.getini("cirkit_llm_base_url"))
    if not model:
        pytest.fail("cirkit_llm needs a model name: @pytest.mark.cirkit_llm(model=...) or the "
                    "ini option cirkit_llm_model", pytrace=False)
    if not urls and cirkit_recorder.mode is not Mode.REPLAY:
        pytest.fail(f"cirkit_llm in mode {cirkit_recorder.mode} needs a server: "
                    "@pytest.mark.cirkit_llm(base_url=...), --cirkit-llm-base-url or the ini "
                    "option cirkit_llm_base_url", pytrace=False)
    return _client_class()(urls, model, recorder=cirkit_recorder, **options)


# -- network blocking ----------------------------------------------------------------------------
def _is_loopback(address: object) -> bool:
    import ipaddress

    host = str(address[0] if isinstance(address, tuple) and address else address)
    host = host.split("%", 1)[0].strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: never resolved, never reached
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _block_network(attempts: list[str]) -> Callable[[], None]:
    import socket

    cls = socket.socket
    real_connect, real_connect_ex = cls.connect, cls.connect_ex

    def guard(sock: socket.socket, address: Any) -> None:
        __tracebackhide__ = True
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            msg = (f"cirkit blocked a network connection to {address!r}: with "
                   "--cirkit-block-network (or @pytest.mark.cirkit_block_network) only loopback "
                   "is reachable; serve the call from a store, or record it without the option")
            attempts.append(msg)
            raise NetworkBlockedError(msg)

    def connect(self: socket.socket, address: Any) -> None:
        __tracebackhide__ = True
        guard(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        __tracebackhide__ = True
        guard(self, address)
        return real_connect_ex(self, address)

    patch = pytest.MonkeyPatch()
    patch.setattr(cls, "connect", connect)
    patch.setattr(cls, "connect_ex", connect_ex)
    return patch.undo


def _guarded(item: pytest.Item) -> Generator[None, object, object]:
    if not (item.config.getoption("cirkit_block_network")
            or item.get_closest_marker("cirkit_block_network")):
        return (yield)
    attempts: list[str] = []
    undo = _block_network(attempts)
    try:
        result = yield
    finally:
        undo()
    if attempts:  # the code under test caught the error: fail all the same
        pytest.fail("\n".join(dict.fromkeys(attempts)), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))
