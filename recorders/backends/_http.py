"""One HTTP path for every live backend: timeouts, bounded retries, a byte cap, clean errors.

Why one helper: providers fail in the same few ways (rate limits, 5xx, dropped connections,
slow answers), and a rollout must see a single clear ``BackendError`` naming the backend, the
URL (without credentials) and the last cause, never a traceback or an API key.

A fresh ``httpx.AsyncClient`` is opened per request: a backend may be used from several event
loops (tests, ``Recorder.call_sync``), and an AsyncClient is bound to the loop that first used it.
The TLS context, the costly part, is shared.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from recorders._errors import BackendError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Fetched",
    "HttpClient",
    "RetryPolicy",
    "redact_url",
]

DEFAULT_MAX_BYTES = 5 * 1024 * 1024
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
_KEY_PARAMS = frozenset({
    "api_key", "api-key", "apikey", "key", "token", "access_token", "access-token", "auth",
    "authorization", "password", "secret", "signature", "sig", "x-api-key", "subscription-token",
})


def redact_url(url: str, secrets: tuple[str, ...] = ()) -> str:
    """The URL as it may be shown or stored: no userinfo, no key-like query parameters."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        query = parts.query
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _KEY_PARAMS for k, _ in pairs):  # else keep the query verbatim
            query = urlencode([(k, v) for k, v in pairs if k.lower() not in _KEY_PARAMS])
        out = urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))
    except ValueError:
        out = url
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "[REDACTED]")
    return out


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~20 ms; one context serves every client."""
    return httpx.create_ssl_context()


@dataclass(slots=True, frozen=True)
class RetryPolicy:
    """How hard to try: ``retries`` extra attempts, waiting ``backoff * 2**n`` (jittered) or a
    numeric ``Retry-After`` capped at ``max_retry_after`` seconds; ``timeout`` per attempt."""

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries!r}")
        if self.backoff < 0:
            raise ValueError(f"backoff must be >= 0, got {self.backoff!r}")

    def delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                seconds = float(retry_after.strip())
            except ValueError:
                seconds = -1.0  # an HTTP date: fall back to our own backoff
            if seconds >= 0:
                return min(seconds, self.max_retry_after)
        full = self.backoff * (2**attempt)
        return float(full / 2 + random.uniform(0, full / 2))


@dataclass(slots=True)
class Fetched:
    """One finished HTTP exchange: status, final URL, headers and (maybe capped) body."""

    status_code: int
    url: str
    headers: httpx.Headers
    content: bytes
    truncated: bool = False
    history: list[int] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.content)


class HttpClient:
    """Requests for one backend. ``auth_env`` names the variable holding its key, so that a
    401/403 fails at once with a hint instead of being retried."""

    def __init__(
        self,
        backend: str,
        policy: RetryPolicy | None = None,
        *,
        auth_env: str | None = None,
        secrets: tuple[str, ...] = (),
        user_agent: str = "cirkit-recorders/0.1",
        guard: Callable[[httpx.URL], Awaitable[None]] | None = None,
    ) -> None:
        self.backend = backend
        self.guard = guard  # checks every request, redirects included (SSRF defence)
        self.policy = policy or RetryPolicy()
        self.auth_env = auth_env
        self.secrets = tuple(s for s in secrets if s)
        self.user_agent = user_agent

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        follow_redirects: bool = False,
        accept_4xx: bool = False,
        accept_5xx: bool = False,
    ) -> Fetched:
        """Send with retries. 429/5xx and transport errors are retried; afterwards a 5xx is
        returned if ``accept_5xx`` (a visited site's answer) else raised. Other 4xx are
        returned if ``accept_4xx`` else raised at once (retrying cannot fix them)."""
        policy = self.policy
        try:
            shown = redact_url(str(httpx.URL(url, params=params)), self.secrets)
        except httpx.InvalidURL:
            shown = redact_url(url, self.secrets)
        hdrs = {"User-Agent": self.user_agent, **(headers or {})}
        attempts = policy.retries + 1
        cause = "no attempt made"
        for attempt in range(attempts):
            retry_after: str | None = None
            try:
                got = await asyncio.wait_for(
                    self._once(method, url, params, json_body, hdrs, max_bytes, follow_redirects),
                    timeout=policy.timeout,
                )
            except (asyncio.TimeoutError, httpx.TimeoutException):
                cause = f"timed out after {policy.timeout:g} s"
            except (httpx.TooManyRedirects, httpx.UnsupportedProtocol, httpx.InvalidURL) as e:
                # Retrying cannot fix these.
                raise self._error(method, shown, attempt + 1, f"{type(e).__name__}: {e}") from None
            except (httpx.TransportError, OSError) as e:
                cause = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                code = got.status_code
                if code in (401, 403) and self.auth_env is not None:
                    raise self._error(
                        method, shown, attempt + 1, f"HTTP {code} (authentication failed)",
                        hint=f"check that {self.auth_env} holds a valid key for {self.backend}",
                        env_var=self.auth_env,
                    )
                if code < 400:
                    return got
                if code in _RETRY_STATUSES:
                    cause = f"HTTP {code}{self._snippet(got)}"
                    retry_after = got.headers.get("retry-after")
                    if attempt + 1 == attempts and code >= 500 and accept_5xx:
                        return got
                elif (accept_4xx and code < 500) or (accept_5xx and code >= 500):
                    return got
                else:
                    cause = f"HTTP {code}{self._snippet(got)}"
                    raise self._error(method, shown, attempt + 1, cause)
            if attempt + 1 < attempts:
                await asyncio.sleep(policy.delay(attempt, retry_after))
        raise self._error(method, shown, attempts, cause)

    async def _once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str | int] | None,
        json_body: Any,
        headers: dict[str, str],
        max_bytes: int,
        follow_redirects: bool,
    ) -> Fetched:
        timeout = httpx.Timeout(self.policy.timeout)
        hooks: dict[str, list[Callable[[httpx.Request], Awaitable[None]]]] = {}
        if self.guard is not None:
            guard = self.guard

            async def check(req: httpx.Request) -> None:
                await guard(req.url)

            hooks["request"] = [check]
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=follow_redirects,
                                     verify=_ssl_context(), event_hooks=hooks) as client:
            req = client.build_request(method, url, params=params, json=json_body,
                                       headers=headers)
            resp = await client.send(req, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                async for chunk in resp.aiter_bytes():
                    if size + len(chunk) > max_bytes:
                        chunks.append(chunk[: max_bytes - size])
                        truncated = True
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            finally:
                await resp.aclose()
            return Fetched(resp.status_code, str(resp.url), resp.headers, b"".join(chunks),
                           truncated, [r.status_code for r in resp.history])

    def _snippet(self, got: Fetched) -> str:
        text = got.content[:300].decode("utf-8", "replace")
        text = " ".join(text.split())[:160]
        for s in self.secrets:
            text = text.replace(s, "[REDACTED]")
        return f": {text}" if text else ""

    def _error(
        self, method: str, shown: str, attempts: int, cause: str, *, hint: str | None = None,
        env_var: str | None = None,
    ) -> BackendError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        cause = " ".join(cause.split())
        for s in self.secrets:
            cause = cause.replace(s, "[REDACTED]")
        return BackendError(
            f"{self.backend}: {method} {shown} failed after {tries}: {cause}",
            hint=hint or "check the network and the provider's status, then try again",
            env_var=env_var,
        )

    def parse_json(self, got: Fetched, method: str = "POST") -> Any:
        """The body as JSON, or a BackendError saying the provider answered something else."""
        try:
            return got.json()
        except (ValueError, UnicodeDecodeError):
            shown = redact_url(got.url, self.secrets)
            raise self._error(method, shown, 1, f"response is not JSON{self._snippet(got)}",
                              hint="check the base URL points at the provider's API") from None
