"""What every live provider backend shares: its key, its base URL, its retry policy and its
HTTP client, each set up one way.

A subclass says where they come from in class attributes (``key_env``, ``base_env``,
``default_base``, ``default_timeout``); the constructor takes the same options for every
provider (``api_key``, ``base_url``, ``timeout``, ``retries``, ``backoff``), so ``make_backend``
can pass them to any. The key lives only in ``secrets`` (scrubbed from anything stored) and in
the request headers a subclass builds with it.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import ClassVar

import httpx

from recorders._errors import MissingCredentialError

from ._base import require_env
from ._http import HttpClient, RetryPolicy

__all__ = ["Provider"]


class Provider:
    """A live backend's wiring: the key from the constructor or the environment, the base URL
    from the constructor, the environment or a default, and one HttpClient with the retry
    policy. ``handle`` is the subclass's."""

    name: str
    tool: str
    key_env: ClassVar[str | None] = None  # the variable holding the key; None: no key
    key_required: ClassVar[bool] = True  # False: the key only raises the provider's limits
    base_env: ClassVar[str | None] = None  # the variable holding the base URL; None: no base
    default_base: ClassVar[str | None] = None  # None with a base_env: the URL must be given
    default_timeout: ClassVar[float] = 20.0  # seconds per attempt

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        user_agent: str | None = None,
        guard: Callable[[httpx.URL], Awaitable[None]] | None = None,
    ) -> None:
        """``timeout``: seconds per attempt (None: the provider's ``default_timeout``);
        ``user_agent`` and ``guard`` go to the HttpClient (a guard checks every request,
        redirects included)."""
        self._key = self._api_key(api_key)
        self.base_url = self._base_url(base_url)
        policy = RetryPolicy(timeout=self.default_timeout if timeout is None else timeout,
                             retries=retries, backoff=backoff)
        extra = {} if user_agent is None else {"user_agent": user_agent}
        self._http = HttpClient(self.name, policy, auth_env=self.key_env, secrets=self.secrets,
                                guard=guard, **extra)

    def _api_key(self, given: str | None) -> str | None:
        env = self.key_env
        if env is None:
            return None
        if self.key_required:
            return require_env(self.name, env, given)
        return given or os.environ.get(env) or None

    def _base_url(self, given: str | None) -> str:
        """The base URL without a trailing slash; "" for a provider that has none."""
        env = self.base_env
        if env is None:
            return ""
        base = given or os.environ.get(env) or self.default_base
        if not base:
            raise MissingCredentialError(
                self.name, env, what="a base URL", setting="base_url",
                hint=f"export {env}=http://host:port , or pass base_url=...",
            )
        return base.rstrip("/")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Credential values this backend holds, scrubbed from anything stored."""
        return (self._key,) if self._key else ()
