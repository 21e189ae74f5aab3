"""The live web_search backends against provider-shaped APIs on 127.0.0.1: normalisation,
rendering, retries, auth failures and missing credentials."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recorders import (
    BackendError,
    MissingCredentialError,
    Recorder,
    RenderOptions,
    Store,
    make_backend,
)
from recorders.backends import (
    BraveSearch,
    HttpClient,
    RetrievalSearch,
    RetryPolicy,
    SearxngSearch,
    SerperSearch,
    TavilySearch,
    redact_url,
)
from tests.servers.providers import API_KEY, SEARCH_R1_DOCS, WORLD_CUP, Providers, fake_hits

FAST: dict[str, Any] = {"timeout": 5.0, "retries": 3, "backoff": 0.01}
QUERY = "tidal locking of the moon"

Factory = Callable[..., Any]


def factories(p: Providers) -> dict[str, Factory]:
    return {
        "serper": lambda **kw: SerperSearch(api_key=p.api_key, base_url=p.serper, **kw),
        "tavily": lambda **kw: TavilySearch(api_key=p.api_key, base_url=p.tavily, **kw),
        "brave": lambda **kw: BraveSearch(api_key=p.api_key, base_url=p.brave, **kw),
        "searxng": lambda **kw: SearxngSearch(base_url=p.searxng, **kw),
        "retrieval": lambda **kw: RetrievalSearch(base_url=p.retrieval, **kw),
    }


PROVIDERS = ["serper", "tavily", "brave", "searxng", "retrieval"]
KEYED = [("serper", SerperSearch, "SERPER_API_KEY", "X-API-KEY"),
         ("tavily", TavilySearch, "TAVILY_API_KEY", "Authorization"),
         ("brave", BraveSearch, "BRAVE_API_KEY", "X-Subscription-Token")]


@pytest.fixture(autouse=True)
def _fresh(providers: Providers) -> Iterator[None]:
    providers.reset()
    yield
    providers.reset()


def expected_hits(provider: str, q: str, n: int) -> list[tuple[str, str, str]]:
    """(url, title, snippet) as each backend should normalise the fake server's answer."""
    out = []
    for i, h in enumerate(fake_hits(q, n), start=1):
        if provider == "retrieval":
            url = h["url"] if "huggingface" in h["url"] else f"corpus://{q.replace(' ', '-')}-{i}"
            words = (h["snippet"] + " " + "more corpus words " * 40).split()
            # the local backend's preview rule: 50 words, then " ..." as the text goes on
            out.append((url, h["title"], " ".join(words[:50]) + " ..."))
        else:
            out.append((h["url"], h["title"], h["snippet"]))
    return out


def rendered(hits: list[tuple[str, str, str]]) -> str:
    """II-Researcher's numbering: each hit's place in the provider's list, from 0."""
    return "".join(f"\nIndex: {i}\nURL: {u}\nTitle: {t}\nPreview: {s}\n"
                   for i, (u, t, s) in enumerate(hits) if "huggingface" not in u)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_results_normalised_and_rendered(
    provider: str, providers: Providers, tmp_path: Path
) -> None:
    backend = factories(providers)[provider](**FAST)
    rec = Recorder(Store(tmp_path / "store"), search=backend, mode="auto")
    result = await rec.web_search(QUERY, 5)

    want = expected_hits(provider, QUERY, 5)
    hits = result.data["results"]
    assert [(h["url"], h["title"], h["snippet"]) for h in hits] == want
    assert [h["position"] for h in hits] == [1, 2, 3, 4, 5]
    assert result.data["raw"]  # the provider's own JSON is kept
    assert result.status == "ok" and result.backend == provider
    # The renderer's format, with the huggingface.co hit dropped and the rest keeping their
    # numbers.
    assert result.text == rendered(want)
    assert "huggingface" not in result.text
    assert result.text.count("\nIndex: ") == 4


@pytest.mark.parametrize("query", ["bm25 aaron", "online night watch"])
async def test_search_r1_documents_without_id_or_url_get_visitable_urls(
        query: str, providers: Providers, tmp_path: Path) -> None:
    """Search-R1's BM25 server and online-search proxy send documents with neither id nor URL:
    each hit gets corpus://sha256-<16 hex of its contents>, the same in every search, and a
    visit of it is answered from the store (the document's full text), even in strict replay."""
    store = Store(tmp_path / "store")
    result = await Recorder(store, search=factories(providers)["retrieval"](**FAST)
                            ).web_search(query, 2)
    docs = [d["document"] for d in SEARCH_R1_DOCS[query]]
    urls = ["corpus://sha256-" + hashlib.sha256(d["contents"].encode()).hexdigest()[:16]
            for d in docs]
    assert [h["url"] for h in result.data["results"]] == urls and len(set(urls)) == 2
    assert "URL: corpus://\n" not in result.text and f"URL: {urls[1]}\n" in result.text
    replay = Recorder(Store(tmp_path / "store", readonly=True), mode="replay")
    for url, doc in zip(urls, docs, strict=True):
        title, _, text = doc["contents"].partition("\n")
        page = await replay.web_visit(url)
        assert page.from_store and page.status == "ok"
        assert (page.data["title"], page.data["text"]) == (title.strip('"'), text)
        assert page.text.endswith(text)  # the full text, not the preview
    # Stable: another search (another store) names the same documents by the same URLs.
    again = await Recorder(Store(tmp_path / "other"), search=factories(providers)["retrieval"](
        **FAST)).web_search(query, 2)
    assert [h["url"] for h in again.data["results"]] == urls


async def test_corpus_previews_end_in_dots_when_cut(providers: Providers) -> None:
    """One preview rule for the retrieval and local backends: 50 words, then " ..."."""
    hits = (await factories(providers)["retrieval"](**FAST).handle(
        {"query": "bm25 aaron", "num_results": 2})).data["results"]
    first, second = (d["document"]["text"] for d in SEARCH_R1_DOCS["bm25 aaron"])
    assert hits[0]["snippet"] == " ".join(first.split()[:50]) + " ..."
    assert hits[1]["snippet"] == second  # short: as it is


async def test_serper_answer_boxes_are_shown_on_request(providers: Providers,
                                                         tmp_path: Path) -> None:
    """Serper's answerBox and knowledgeGraph carry the direct answer (the team that won); the
    reference layout leaves them out, RenderOptions(answer_box=True) puts them first."""
    store = Store(tmp_path / "store")
    serper = factories(providers)["serper"](**FAST)
    plain = await Recorder(store, search=serper).web_search(WORLD_CUP, 3)
    assert "France" not in plain.text and plain.text.startswith("\nIndex: 0\n")
    boxed = await Recorder(store, mode="replay",
                           render_options=RenderOptions(answer_box=True)).web_search(WORLD_CUP, 3)
    assert boxed.from_store and providers.requests == 1  # a rendering, not a new recording
    assert boxed.text == (
        "\nAnswer box:\nTitle: 2018 FIFA World Cup / Champions\n"
        "URL: https://en.wikipedia.org/wiki/2018_FIFA_World_Cup\nAnswer: France\n"
        "\nKnowledge graph:\nTitle: 2018 FIFA World Cup\nType: Football tournament\n"
        "URL: https://en.wikipedia.org/wiki/2018_FIFA_World_Cup\n"
        "Description: The 2018 FIFA World Cup was the 21st FIFA World Cup, held in Russia from "
        "14 June to 15 July 2018.\n"
        # attributes in key order: the store keeps JSON canonical (sorted keys)
        "Champions: France\nDates: 14 Jun - 15 Jul 2018\nHost country: Russia\n"
        "Runners-up: Croatia\n" + plain.text)
    # A provider without the blocks renders as without the option.
    tavily = factories(providers)["tavily"](**FAST)
    t = await Recorder(Store(tmp_path / "tavily"), search=tavily,
                       render_options=RenderOptions(answer_box=True)).web_search(WORLD_CUP, 3)
    assert not t.from_store and t.text.startswith("\nIndex: 0\n")


async def test_provider_extras_are_kept(providers: Providers) -> None:
    f = factories(providers)
    serper = (await f["serper"](**FAST).handle({"query": QUERY, "num_results": 3})).data
    assert [h.get("date") for h in serper["results"]] == ["2024-01-01", None, "2024-01-03"]
    assert "answerBox" in serper["raw"] and "knowledgeGraph" in serper["raw"]
    assert all("answerBox" not in h for h in serper["results"])

    tavily = (await f["tavily"](**FAST).handle({"query": QUERY, "num_results": 2})).data
    assert [h["score"] for h in tavily["results"]] == [0.95, 0.9]
    assert tavily["results"][0]["date"] == "2024-01-01"

    brave = (await f["brave"](**FAST).handle({"query": QUERY, "num_results": 2})).data
    assert "<strong>" not in brave["results"][0]["snippet"]  # highlighting stripped
    assert "<strong>" in str(brave["raw"])  # ... but not from the provider's JSON

    retrieval = (await f["retrieval"](**FAST).handle({"query": QUERY, "num_results": 2})).data
    assert retrieval["results"][0]["score"] == pytest.approx(9.5)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("n", [1, 3, 8])
async def test_num_results_honoured(provider: str, n: int, providers: Providers) -> None:
    resp = await factories(providers)[provider](**FAST).handle({"query": QUERY, "num_results": n})
    assert len(resp.data["results"]) == n
    assert [h["url"] for h in resp.data["results"]] == [
        u for u, _, _ in expected_hits(provider, QUERY, n)]


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_retries_then_success(status: int, providers: Providers) -> None:
    backend = factories(providers)["serper"](**FAST)
    providers.fail_next(2, status, retry_after="0" if status == 429 else None)
    resp = await backend.handle({"query": QUERY, "num_results": 3})
    assert len(resp.data["results"]) == 3
    assert providers.requests == 3


async def test_retries_exhausted_raise_and_record_nothing(
    providers: Providers, tmp_path: Path
) -> None:
    backend = factories(providers)["tavily"](**FAST)
    store = Store(tmp_path / "store")
    rec = Recorder(store, search=backend, mode="auto")
    providers.fail_next(10, 500)
    with pytest.raises(BackendError) as err:
        await rec.web_search(QUERY, 3)
    msg = err.value.message
    assert providers.requests == 4  # 1 + 3 retries
    assert "\n" not in msg
    assert msg.startswith("tavily: POST ") and f"{providers.tavily}/search" in msg
    assert "4 attempts" in msg and "HTTP 500" in msg
    assert len(store) == 0


async def test_retry_after_is_honoured_and_capped(providers: Providers) -> None:
    client = HttpClient("serper", RetryPolicy(timeout=5, retries=2, backoff=0.01,
                                              max_retry_after=0.2))
    providers.fail_next(1, 429, retry_after="3600")
    started = time.perf_counter()
    got = await client.request("POST", f"{providers.retrieval}/retrieve",
                               json_body={"queries": ["q"], "topk": 1})
    elapsed = time.perf_counter() - started
    assert got.status_code == 200 and providers.requests == 2
    assert 0.2 <= elapsed < 2.0


def test_retry_policy_delays() -> None:
    p = RetryPolicy(backoff=0.1, max_retry_after=5.0)
    assert p.delay(0, "2") == 2.0
    assert p.delay(0, "120") == 5.0
    assert 0.2 <= p.delay(2, None) <= 0.4  # 0.1 * 2**2, jittered in [half, full]
    assert 0.2 <= p.delay(2, "Wed, 21 Oct 2015 07:28:00 GMT") <= 0.4  # date: own backoff
    with pytest.raises(ValueError, match="retries"):
        RetryPolicy(retries=-1)


@pytest.mark.parametrize(("provider", "cls", "env_var", "header"), KEYED)
async def test_auth_failure_is_immediate(
    provider: str, cls: type[Any], env_var: str, header: str, providers: Providers
) -> None:
    bad_key = "sk-wrong-key-987654321"
    backend = cls(api_key=bad_key, base_url=getattr(providers, provider), **FAST)
    with pytest.raises(BackendError) as err:
        await backend.handle({"query": QUERY, "num_results": 3})
    assert providers.requests == 1  # no retry: a wrong key stays wrong
    assert "HTTP 401" in err.value.message and provider in err.value.message
    assert err.value.hint is not None and env_var in err.value.hint
    assert bad_key not in str(err.value)


@pytest.mark.parametrize(("provider", "cls", "env_var", "header"), KEYED)
def test_missing_key_names_the_variable(
    provider: str, cls: type[Any], env_var: str, header: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(env_var, raising=False)
    with pytest.raises(MissingCredentialError) as err:
        cls()
    assert err.value.env_var == env_var
    assert env_var in str(err.value) and provider in str(err.value)


def test_searxng_needs_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEARXNG_URL", raising=False)
    with pytest.raises(MissingCredentialError) as err:
        SearxngSearch()
    assert err.value.env_var == "SEARXNG_URL" and "base URL" in str(err.value)


@pytest.mark.parametrize(("provider", "cls", "env_var", "header"), KEYED)
async def test_key_and_base_url_from_env(
    provider: str, cls: type[Any], env_var: str, header: str, providers: Providers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(env_var, API_KEY)
    monkeypatch.setenv(f"{provider.upper()}_BASE_URL", getattr(providers, provider))
    backend = cls(**FAST)
    assert backend.secrets == (API_KEY,)
    resp = await backend.handle({"query": QUERY, "num_results": 2})
    assert len(resp.data["results"]) == 2
    assert API_KEY not in str(resp.data)


async def test_env_urls_for_searxng_and_retrieval(
    providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARXNG_URL", providers.searxng)
    monkeypatch.setenv("RETRIEVAL_URL", providers.retrieval)
    for backend in (SearxngSearch(**FAST), RetrievalSearch(**FAST)):
        assert backend.secrets == ()
        resp = await backend.handle({"query": QUERY, "num_results": 2})
        assert len(resp.data["results"]) == 2


def test_retrieval_defaults_to_local_port_8000(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRIEVAL_URL", raising=False)
    assert RetrievalSearch().base_url == "http://127.0.0.1:8000"


async def test_registry_builds_the_providers(providers: Providers) -> None:
    backend = make_backend("web_search", "serper", api_key=API_KEY, base_url=providers.serper,
                           backoff=0.01)
    assert isinstance(backend, SerperSearch) and backend.tool == "web_search"
    resp = await backend.handle({"query": QUERY, "num_results": 1})
    assert resp.data["results"][0]["url"] == fake_hits(QUERY, 1)[0]["url"]


async def test_replay_serves_the_recorded_answer(providers: Providers, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    live = await Recorder(store, search=factories(providers)["serper"](**FAST),
                          mode="auto").web_search(QUERY, 4)
    requests = providers.requests
    again = await Recorder(store, mode="replay").web_search(f"  {QUERY} ", 4)
    assert again.text == live.text and again.from_store
    assert providers.requests == requests


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_transport_errors_are_retried_then_raised() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    backend = RetrievalSearch(base_url=url, timeout=2.0, retries=2, backoff=0.01)
    with pytest.raises(BackendError) as err:
        await backend.handle({"query": QUERY, "num_results": 1})
    assert "3 attempts" in err.value.message and "ConnectError" in err.value.message
    assert f"{url}/retrieve" in err.value.message


def test_redact_url_drops_credentials() -> None:
    shown = redact_url("https://user:pw@api.example.com/v1/search?api_key=SECRET1&q=moon&token=T2",
                       secrets=("moon-secret",))
    assert shown == "https://api.example.com/v1/search?q=moon"
    assert redact_url("https://h/x/moon-secret", secrets=("moon-secret",)) == \
        "https://h/x/[REDACTED]"
