"""The pytest plugin (cirkit.pytest_plugin), driven through pytester: record once, replay
strictly, a miss that says what was asked, modes validated, the network blocked on request.

Inner runs are in-process (``runpytest``) with ``-p cirkit`` (the entry point's name: it loads
the plugin whether or not plugins auto-load). They use the default local backends with the
corpus cache in a temp dir, and reach nothing beyond loopback.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.fake_vllm import MODEL, FakeVLLM

PLUGIN = ("-p", "cirkit")
QUERY = "who painted the night watch"
URL = "https://en.wikipedia.org/wiki/The_Night_Watch"
# The outer run imported cirkit already: the inner runs cannot rewrite its asserts (and need not).
INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = ignore::pytest.PytestAssertRewriteWarning
"""

AGENT_TEST = f"""
import json
from pathlib import Path

import pytest


@pytest.mark.cirkit_store("search_cases")
def test_agent(cirkit_tools, cirkit_mode, pytestconfig):
    found = cirkit_tools.web_search({QUERY!r}, num_results=3)
    page = cirkit_tools.web_visit({URL!r})
    served = cirkit_tools.call("web_search", {{"query": {QUERY!r}, "num_results": 3}})
    assert served.from_store == (str(cirkit_mode) == "replay")
    out = Path(pytestconfig.rootpath, f"out-{{cirkit_mode}}.json")
    out.write_text(json.dumps({{"search": found, "visit": page}}))
"""

MISS_TEST = """
import pytest


@pytest.mark.cirkit_store("search_cases")
def test_agent_asks_something_new(cirkit_tools):
    cirkit_tools.web_search("who painted the night watch in 1642", num_results=3)
"""


@pytest.fixture(scope="module", autouse=True)
def preloaded() -> None:
    """pytester's in-process runs forget the modules they import, and numpy (under bm25s)
    cannot be imported twice: import it before any pytester snapshot is taken."""
    import bm25s  # noqa: F401


@pytest.fixture(autouse=True)
def isolated(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
             tmp_path_factory: pytest.TempPathFactory) -> None:
    """Corpus caches in a temp dir (never the home dir), no provider keys, an ini file."""
    monkeypatch.setenv("CIRKIT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cirkit-cache"))
    for var in ("SERPER_API_KEY", "TAVILY_API_KEY", "BRAVE_API_KEY", "SEARXNG_URL"):
        monkeypatch.delenv(var, raising=False)
    pytester.makeini(INI)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def record(pytester: pytest.Pytester) -> Path:
    pytester.makepyfile(test_agent=AGENT_TEST)
    pytester.runpytest(*PLUGIN, "--cirkit-mode=record").assert_outcomes(passed=1)
    store = pytester.path / "tests" / "stores" / "search_cases"
    assert (store / "store.json").is_file()
    return store


def test_record_then_replay_gives_the_same_text(pytester: pytest.Pytester) -> None:
    record(pytester)
    # Replay makes no backend: a backend that needs a key which is not set is never built.
    result = pytester.runpytest(*PLUGIN, "--cirkit-search-backend", "serper")
    result.assert_outcomes(passed=1)
    recorded = json.loads((pytester.path / "out-record.json").read_text())
    replayed = json.loads((pytester.path / "out-replay.json").read_text())
    assert replayed == recorded
    assert "Title: The Night Watch" in recorded["search"]
    assert "Rembrandt" in recorded["visit"]


def test_recording_with_a_keyed_backend_names_the_missing_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST)
    result = pytester.runpytest(*PLUGIN, "--cirkit-mode=auto", "--cirkit-search-backend=serper")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*SERPER_API_KEY is not set*"])


def test_a_replay_miss_shows_the_key_fields_and_nearest_calls(pytester: pytest.Pytester) -> None:
    record(pytester)
    pytester.makepyfile(test_agent=MISS_TEST)
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*ReplayMissError: strict replay: web_search was never recorded in *search_cases",
        "*key:  *",
        '*args: {"num_results": 3, "query": "who painted the night watch in 1642"}',
        "*nearest recorded web_search calls:",
        f'*{{"num_results": 3, "query": "{QUERY}"}}  (differs in: query; similarity*',
        "*hint: record it first (pytest --cirkit-mode=auto, or record)*",
    ])
    assert "asyncio/runners.py" not in result.stdout.str()  # shown at the test's line


def test_replay_leaves_the_store_byte_for_byte(pytester: pytest.Pytester) -> None:
    store = record(pytester)
    before = snapshot(store)
    pytester.runpytest(*PLUGIN).assert_outcomes(passed=1)
    pytester.makepyfile(test_agent=MISS_TEST)
    pytester.runpytest(*PLUGIN, "--cirkit-mode=replay").assert_outcomes(failed=1)
    assert snapshot(store) == before
    # auto fills the miss in: now the store does change.
    pytester.runpytest(*PLUGIN, "--cirkit-mode=auto").assert_outcomes(passed=1)
    assert snapshot(store) != before


def test_replay_without_a_store_fails_and_creates_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST)
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*no cirkit store at tests/stores/search_cases (--cirkit-mode=replay): record it "
        "first with `pytest --cirkit-mode=record`*"])
    assert not (pytester.path / "tests").exists()


@pytest.mark.parametrize("value", ["bogus", "REPLAYY"])
def test_an_unknown_mode_lists_the_valid_ones(pytester: pytest.Pytester, value: str) -> None:
    pytester.makepyfile(test_agent=AGENT_TEST)
    result = pytester.runpytest(*PLUGIN, f"--cirkit-mode={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--cirkit-mode: unknown record mode {value!r}; valid modes: "
                                 "record, replay, auto, rewrite, off"])


def test_store_names_paths_and_the_per_test_default(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI + "cirkit_stores_dir = stores\n")
    pytester.makepyfile(test_names="""
        import pytest

        def test_plain(cirkit_store):
            pass

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(cirkit_store, n):
            pass

        class TestGroup:
            def test_method(self, cirkit_store):
                pass

        @pytest.mark.cirkit_store(path="elsewhere/mine")
        def test_path(cirkit_store):
            pass

        @pytest.mark.cirkit_store("named")
        def test_named(cirkit_store):
            assert cirkit_store.path.name == "named"
    """)
    pytester.runpytest(*PLUGIN, "--cirkit-mode=record").assert_outcomes(passed=6)
    made = sorted(str(p.parent.relative_to(pytester.path))
                  for p in pytester.path.rglob("store.json"))
    assert made == ["elsewhere/mine", "stores/named", "stores/test_names/TestGroup.test_method",
                    "stores/test_names/test_param", "stores/test_names/test_plain"]


def test_llm_completion_replays_without_a_server(pytester: pytest.Pytester,
                                                 fake_vllm: FakeVLLM) -> None:
    pytester.makepyfile(test_llm=f"""
        import json
        from pathlib import Path

        import pytest
        from cirkit.llm import Sampling


        @pytest.mark.cirkit_store("llm_cases")
        @pytest.mark.cirkit_llm(model={MODEL!r})
        async def test_generate(cirkit_llm, cirkit_mode, pytestconfig):
            got = await cirkit_llm.complete([5, 9, 14, 3], stop=["<end_code>"],
                                            sampling=Sampling(temperature=0.6, seed=7,
                                                              max_tokens=200))
            assert got.from_store == (str(cirkit_mode) == "replay")
            out = Path(pytestconfig.rootpath, f"llm-{{cirkit_mode}}.json")
            out.write_text(json.dumps({{"ids": got.token_ids, "text": got.text}}))
    """)
    args = (*PLUGIN, "-p", "asyncio", "-W", "error::ResourceWarning")
    pytester.runpytest(*args, "--cirkit-mode=record", "--cirkit-llm-base-url",
                       fake_vllm.url).assert_outcomes(passed=1)
    assert fake_vllm.completions == 1
    fake_vllm.stop()  # replay needs no server (and is given no URL)
    pytester.runpytest(*args).assert_outcomes(passed=1)
    recorded = json.loads((pytester.path / "llm-record.json").read_text())
    assert json.loads((pytester.path / "llm-replay.json").read_text()) == recorded
    assert recorded["text"].endswith("<end_code>") and recorded["ids"]


def test_llm_without_a_model_or_server_says_what_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llm="""
        import pytest

        def test_no_model(cirkit_llm):
            pass

        @pytest.mark.cirkit_llm(model="m")
        def test_no_server(cirkit_llm):
            pass
    """)
    result = pytester.runpytest(*PLUGIN, "--cirkit-mode=record")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*cirkit_llm needs a model name*",
                                 "*cirkit_llm in mode record needs a server*"], consecutive=False)


NETWORK_TEST = """
import socket

import pytest


def test_reaches_out():
    socket.create_connection(("10.255.255.1", 9), timeout=0.5)


def test_swallows_the_error():
    try:
        socket.create_connection(("192.0.2.1", 9), timeout=0.5)  # TEST-NET-1
    except Exception:
        pass


def test_loopback_is_allowed():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
"""


@pytest.fixture
def unpatched_socket() -> Iterator[None]:
    """Whatever the inner runs do, the socket class is left as it was."""
    yield
    assert "connect" not in socket.socket.__dict__
    assert "connect_ex" not in socket.socket.__dict__


@pytest.mark.usefixtures("unpatched_socket")
def test_block_network_fails_non_loopback_connects(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_net=NETWORK_TEST)
    result = pytester.runpytest(*PLUGIN, "--cirkit-block-network")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines([
        "*NetworkBlockedError: cirkit blocked a network connection to ('10.255.255.1', 9)*",
        "*cirkit blocked a network connection to ('192.0.2.1', 9)*",
    ])


@pytest.mark.usefixtures("unpatched_socket")
def test_the_network_is_blocked_only_when_asked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_net="""
        import socket

        import pytest

        def test_untouched_by_default():
            assert "connect" not in socket.socket.__dict__

        @pytest.mark.cirkit_block_network
        def test_marked():
            with pytest.raises(RuntimeError, match="cirkit blocked"):
                socket.create_connection(("192.0.2.1", 9), timeout=0.5)
            # caught here, but the attempt still fails the test
    """)
    result = pytester.runpytest(*PLUGIN, "-rA")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_net.py::test_marked - *cirkit blocked*"])
