"""A client for OpenAI-compatible ``/v1/completions`` servers (vLLM, SGLang), token-in/token-out.

Why not the ``openai`` SDK: a rollout needs the exact token ids the server generated (vLLM's
``return_token_ids``), the stop string kept in the output, server-specific fields, one pooled
connection set for 32+ requests in flight spread over several servers, and every completion put
through the ``recorders`` store so that a replay needs no server at all. Nothing connects until a
live request is made: in replay mode no socket is ever opened.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from cirkit.errors import ModelServerError
from recorders import COMPLETION, Mode, Recorder, Response, canonical_json

from ._types import Completion, CompletionClient, Sampling

__all__ = ["BACKEND_NAME", "LLMError", "ModelNotFoundError", "OpenAICompletionClient",
           "ServerUnreachableError", "completion_args", "derive_seed", "prompt_sha256"]

BACKEND_NAME = "openai-completions"  # the store's ``backend`` field for recorded completions
API_KEY_ENVS = ("CIRKIT_LLM_API_KEY", "OPENAI_API_KEY")
#: Request options that change the output; they are part of every completion's key.
DEFAULT_API: dict[str, Any] = {"include_stop_str_in_output": True, "skip_special_tokens": False}
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Left out of the stored ``raw`` choice: the prompt (named by hash), bulky logprobs, and the
# ids and text (stored once, at the top of the record).
_RAW_DROP = frozenset({"prompt_token_ids", "logprobs", "prompt_logprobs", "token_ids", "text"})


class LLMError(ModelServerError):
    """A model server call failed: unreachable, rejected, or answered something unusable."""


class ServerUnreachableError(LLMError):
    """No server answered at any base URL."""


class ModelNotFoundError(LLMError):
    """The server does not serve the model asked for; ``available`` lists what it serves."""

    def __init__(self, model: str, url: str, available: list[str]) -> None:
        listed = ", ".join(available) if available else "(the server listed none)"
        super().__init__(
            f"the server at {url} does not serve the model {model!r}; it serves: {listed}",
            hint="pass one of those names as the model, or start a server for this model",
        )
        self.model = model
        self.available = available


def derive_seed(base_seed: int, question_id: str, sample_index: int, turn: int = 0) -> int:
    """The seed of request ``turn`` of sample ``sample_index`` of question ``question_id``.

    Stable across processes and platforms (sha256 of the canonical JSON of the values, never
    ``hash()``), distinct for distinct inputs in practice, and in ``[0, 2**63)``: vLLM accepts
    any signed 64-bit seed, and a non-negative one also suits servers that reject negative
    seeds. A rollout's record names the turn-0 seed; each later request of it uses its turn.
    """
    for name, v in (("sample_index", sample_index), ("turn", turn)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise ValueError(f"base_seed must be an int, got {base_seed!r}")
    values: dict[str, Any] = {"base_seed": base_seed, "question_id": str(question_id),
                              "sample_index": sample_index}
    if turn:
        values["turn"] = turn
    digest = hashlib.sha256(b"cirkit-seed-v1\n" + canonical_json(values)).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def prompt_sha256(prompt_ids: Sequence[int]) -> str:
    """The hash that names a prompt in a completion's key: sha256 of its ids' canonical JSON."""
    return hashlib.sha256(canonical_json(list(prompt_ids))).hexdigest()


def completion_args(
    model: str, prompt_ids: Sequence[int], sampling: Sampling, stop: Sequence[str],
    api: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A completion's key arguments: everything that changes the output, nothing about who
    answered (no URL, no key)."""
    return {"model": model, "prompt_sha256": prompt_sha256(prompt_ids),
            "num_prompt_tokens": len(prompt_ids), "sampling": sampling.to_json(),
            "stop": list(stop), "api": dict(DEFAULT_API if api is None else api)}


@dataclass(slots=True)
class _Endpoint:
    url: str
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    dead_until: float = 0.0


def _normalise_base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"a base URL must start with http:// or https://, got {url!r}")
    return url


def _error_text(resp: httpx.Response) -> str:
    """The server's error message: vLLM nests it under ``error`` (older versions did not)."""
    try:
        body = resp.json()
    except ValueError:
        return " ".join(resp.text.split())[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and "message" in err:
            return str(err["message"])
        for k in ("message", "detail", "error"):
            if k in body:
                return str(body[k])
    return str(body)[:300]


def _token_ids(choice: Mapping[str, Any]) -> list[int] | None:
    """Generated ids: vLLM's ``token_ids``, else logprobs tokens spelled ``token_id:N``."""
    ids = choice.get("token_ids")
    if isinstance(ids, list) and all(isinstance(i, int) for i in ids):
        return ids
    lp = choice.get("logprobs")
    tokens = lp.get("tokens") if isinstance(lp, dict) else None
    if isinstance(tokens, list) and all(
            isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        return [int(t[len("token_id:"):]) for t in tokens]
    return None


def _completion(data: Mapping[str, Any], key: str | None, from_store: bool) -> Completion:
    """The one way a Completion is made, live or stored, so that both give equal objects."""
    stop_reason = data.get("stop_reason")
    extra: dict[str, Any] = {"usage": data.get("usage"), "raw": data.get("raw")}
    if isinstance(stop_reason, int) and not isinstance(stop_reason, bool):
        extra["stop_token_id"] = stop_reason  # a stop token id, not a stop string
        stop_reason = None
    return Completion(token_ids=list(data["token_ids"]), text=str(data["text"]),
                      finish_reason=str(data["finish_reason"]),
                      stop_reason=None if stop_reason is None else str(stop_reason),
                      from_store=from_store, key=key, extra=extra)


class OpenAICompletionClient:
    """Completions from one or more OpenAI-compatible servers serving ``model``.

    Requests go to the endpoint with the fewest in flight (ties in turn); an endpoint that
    refuses connections is skipped for ``cooldown`` seconds. 429, 5xx and transport errors are
    retried ``retries`` times with jittered exponential ``backoff`` (or the server's numeric
    ``Retry-After``). With a ``recorder`` every completion goes through its store and mode.
    ``extra_body`` adds server-specific request fields; they join the key's ``api`` part.
    One ``httpx.AsyncClient`` per event loop, opened on first use; close with ``aclose()``
    or ``async with``.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        cooldown: float = 10.0,
        recorder: Recorder | None = None,
        max_connections: int = 256,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls and (recorder is None or recorder.mode is not Mode.REPLAY):
            raise ValueError("give at least one base URL (only a replaying client needs none)")
        if not model:
            raise ValueError("give the model name the server serves")
        if timeout <= 0 or connect_timeout <= 0 or retries < 0 or backoff < 0 or cooldown < 0:
            raise ValueError("timeouts must be positive; retries, backoff, cooldown >= 0")
        self.model = model
        self.base_urls = [_normalise_base_url(u) for u in urls]
        self._endpoints = [_Endpoint(u) for u in self.base_urls]
        self._rr = 0
        key = api_key
        if key is None:
            key = next((os.environ[e] for e in API_KEY_ENVS if os.environ.get(e)), None)
        self._api_key = key or None
        self.retries, self.backoff = retries, backoff
        self.max_retry_after, self.cooldown = max_retry_after, cooldown
        self.timeout = timeout
        self._timeout = httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
        self._limits = httpx.Limits(max_connections=max_connections,
                                    max_keepalive_connections=max_connections)
        self.recorder = recorder
        self.api: dict[str, Any] = {**DEFAULT_API, **(extra_body or {})}
        self._ids_via_logprobs = False  # set once a server is found not to return token_ids
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    # -- public ----------------------------------------------------------------------------
    async def complete(
        self, prompt_ids: Sequence[int], *, sampling: Sampling, stop: Sequence[str]
    ) -> Completion:
        """Generate a continuation of ``prompt_ids``: the ids and text the server generated,
        the stop string kept, from the store when the recorder's mode says so."""
        prompt = [int(i) for i in prompt_ids]
        if not prompt:
            raise ValueError("the prompt has no tokens")
        stops = [str(s) for s in stop]
        body = self._body(prompt, sampling, stops)
        rec = self.recorder
        if rec is None:
            return _completion(await self._generate(body, prompt), None, False)
        if sampling.seed is None and sampling.temperature > 0:
            # Every sample of a prompt would get one key: the store (and the recorder's
            # single-flight, even in mode off) would hand all of them the same answer.
            raise LLMError(
                "a sampled completion (temperature > 0) through a recorder needs a seed: "
                "without one, every sample of a prompt gets the same key and the same answer",
                hint="pass a seed per sample, e.g. derive_seed(base_seed, question_id, index)")

        async def fetch() -> Response:
            return Response(await self._generate(body, prompt))

        args = completion_args(self.model, prompt, sampling, stops, self.api)
        secrets = (self._api_key,) if self._api_key else ()
        res = await rec.memo(COMPLETION, args, fetch, backend=BACKEND_NAME, secrets=secrets)
        return _completion(res.data, res.key, res.from_store)

    async def list_models(self, base_url: str | None = None) -> list[str]:
        """The model ids a server lists at ``/v1/models`` (the first base URL by default)."""
        url = _normalise_base_url(base_url) if base_url else self.base_urls[0]
        try:
            resp = await self._client().get(f"{url}/v1/models")
            resp.raise_for_status()
            return [str(m["id"]) for m in resp.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise LLMError(f"could not list the models at {url}: {e}") from None

    async def max_model_len(self) -> int | None:
        """The context length the servers report for this model (vLLM lists it as
        ``max_model_len`` on ``/v1/models``): the smallest over the base URLs, or None when
        none reports one (another server kind, or none reachable yet: the requests will
        say why)."""
        found: list[int] = []
        for url in self.base_urls:
            try:
                resp = await self._client().get(f"{url}/v1/models")
                resp.raise_for_status()
                data = resp.json().get("data", [])
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
            for m in data if isinstance(data, list) else []:
                n = m.get("max_model_len") if isinstance(m, dict) else None
                if m.get("id") == self.model and isinstance(n, int) and not isinstance(n, bool) \
                        and n > 0:
                    found.append(n)
        return min(found) if found else None

    def stats(self) -> list[dict[str, Any]]:
        """Per endpoint: url, requests sent, connection failures, in flight, seconds dead."""
        now = time.monotonic()
        return [{"url": e.url, "requests": e.requests, "failures": e.failures,
                 "in_flight": e.in_flight, "dead_for": max(0.0, e.dead_until - now)}
                for e in self._endpoints]

    async def aclose(self) -> None:
        """Close this loop's connections (and forget those of loops already closed)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
        for other in [lp for lp in self._clients if lp.is_closed()]:
            del self._clients[other]

    async def __aenter__(self) -> OpenAICompletionClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals -------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """This event loop's pooled client (an AsyncClient is bound to one loop)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for other in [lp for lp in self._clients if lp.is_closed()]:
                del self._clients[other]
            headers = {"User-Agent": "cirkit/0.1"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            client = httpx.AsyncClient(timeout=self._timeout, limits=self._limits,
                                       headers=headers)
            self._clients[loop] = client
        return client

    def _body(self, prompt: list[int], s: Sampling, stop: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model, "prompt": prompt, "max_tokens": s.max_tokens,
            "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "n": 1,
            "stop": stop, "stream": False, "return_token_ids": True,
        }
        if s.seed is not None:
            body["seed"] = s.seed
        body.update(self.api)
        return body

    async def _generate(self, body: dict[str, Any], prompt: list[int]) -> dict[str, Any]:
        """One live completion, as the record that is stored."""
        if not self._endpoints:
            raise LLMError("no server to ask: this client was made for replay only",
                           hint="pass --base-url, or record the completion first")
        if self._ids_via_logprobs:
            body = {**body, "logprobs": 0, "return_tokens_as_token_ids": True}
        url, payload = await self._post(body)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LLMError(f"the server at {url} answered without choices: {str(payload)[:200]}")
        choice = choices[0]
        ids = _token_ids(choice)
        if ids is None and not self._ids_via_logprobs:
            self._ids_via_logprobs = True  # e.g. vLLM < 0.10: ask for ids through logprobs
            return await self._generate(body, prompt)
        if ids is None:
            raise LLMError(
                f"the server at {url} returned no token ids for the completion",
                hint="serve the model with vLLM >= 0.10 (it honours return_token_ids) or "
                     "another server that returns the generated token ids")
        echoed = choice.get("prompt_token_ids", payload.get("prompt_token_ids"))
        if isinstance(echoed, list) and echoed != prompt:
            raise LLMError(f"the server at {url} changed the prompt's token ids "
                           f"({len(prompt)} sent, {len(echoed)} seen)",
                           hint="the server must not add special tokens to a token prompt")
        stop_reason = choice.get("stop_reason", choice.get("matched_stop"))
        return {"token_ids": ids, "text": str(choice.get("text", "")),
                "finish_reason": str(choice.get("finish_reason") or "unknown"),
                "stop_reason": stop_reason, "usage": payload.get("usage"),
                "raw": {k: v for k, v in choice.items() if k not in _RAW_DROP}}

    def _pick(self, exclude: set[int]) -> int:
        """Fewest in flight among live endpoints, ties in turn; if all are dead, the one
        that comes back first."""
        n, now = len(self._endpoints), time.monotonic()
        order = [(self._rr + i) % n for i in range(n)]
        usable = [i for i in order if i not in exclude] or order
        live = [i for i in usable if self._endpoints[i].dead_until <= now]
        if live:
            best = min(live, key=lambda i: self._endpoints[i].in_flight)
        else:
            best = min(usable, key=lambda i: self._endpoints[i].dead_until)
        self._rr = (best + 1) % n
        return best

    async def _post(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """POST with retries and failover; (endpoint URL, parsed JSON answer)."""
        client = self._client()
        attempts, attempt = self.retries + 1, 0
        refused: set[int] = set()  # endpoints that refused a connection this round
        only_refusals = True
        while True:
            idx = self._pick(refused)
            ep = self._endpoints[idx]
            retry_after: str | None = None
            connect_failed = False
            ep.in_flight += 1
            ep.requests += 1
            try:
                resp = await client.post(f"{ep.url}/v1/completions", json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                connect_failed = True
                ep.failures += 1
                ep.dead_until = time.monotonic() + self.cooldown
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except httpx.TimeoutException:
                only_refusals = False
                cause = f"no answer within {self.timeout:g} s"
            except (httpx.TransportError, OSError) as e:
                only_refusals = False
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                only_refusals = False
                if resp.status_code == 200:
                    try:
                        payload = resp.json()
                    except ValueError:
                        payload = None
                    if not isinstance(payload, dict):
                        raise LLMError(f"{ep.url}/v1/completions did not answer JSON",
                                       hint="check that --base-url points at an "
                                            "OpenAI-compatible server")
                    return ep.url, payload
                if resp.status_code not in _RETRY_STATUSES:
                    raise await self._rejected(ep.url, resp)
                cause = f"HTTP {resp.status_code}: {_error_text(resp)}"
                retry_after = resp.headers.get("retry-after")
            finally:
                ep.in_flight -= 1
            if connect_failed and len(refused) + 1 < len(self._endpoints):
                refused.add(idx)  # nothing was sent: fail over at once, costing no attempt
                continue
            refused.clear()
            attempt += 1
            if attempt >= attempts:
                raise self._exhausted(attempts, cause, only_refusals)
            await asyncio.sleep(self._delay(attempt - 1, retry_after))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after.strip()), 0.0), self.max_retry_after)
            except ValueError:
                pass  # an HTTP date: use our own backoff
        full = self.backoff * (2**attempt)
        return float(full / 2 + random.uniform(0, full / 2))

    def _exhausted(self, attempts: int, cause: str, only_refusals: bool) -> LLMError:
        urls = ", ".join(self.base_urls)
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        if only_refusals:
            return ServerUnreachableError(
                f"no server at {urls} ({cause}; {tries})",
                hint=f"start one with `cirkit serve {self.model}` or pass --base-url")
        return LLMError(f"the model server at {urls} failed after {tries}: {cause}",
                        hint="check the server's log and load, then try again")

    async def _rejected(self, url: str, resp: httpx.Response) -> LLMError:
        """An answer retrying cannot fix, as a clear error (a wrong model lists the right ones)."""
        code, text = resp.status_code, _error_text(resp)
        if code == 404 and "model" in text.lower():
            try:
                available = await self.list_models(url)
            except LLMError:
                available = []
            return ModelNotFoundError(self.model, url, available)
        if code == 404:
            return LLMError(f"{url}/v1/completions answered 404: {text}",
                            hint="pass the server's base URL (e.g. http://127.0.0.1:8000)")
        if code in (401, 403):
            return LLMError(f"the server at {url} refused the API key (HTTP {code}): {text}",
                            hint=f"set {' or '.join(API_KEY_ENVS)} to the server's key")
        return LLMError(f"the server at {url} rejected the request (HTTP {code}): {text}",
                        hint="check the prompt length and sampling against the server's limits")


if TYPE_CHECKING:
    def _conforms(client: OpenAICompletionClient) -> CompletionClient:
        return client  # mypy proves the client satisfies the rollout's protocol
