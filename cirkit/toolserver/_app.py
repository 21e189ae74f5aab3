"""The HTTP face of a ToolService: a Starlette app (run by uvicorn).

Bodies are JSON, or msgpack when ``Content-Type`` says so (ROLL and GEM send msgpack); the
answer is msgpack when the request was, or when ``Accept`` asks for it, else JSON. Errors are
``{"error": first line, "message", "hint", ...}`` with 400 for a bad request, 404 for a replay
miss (with the missed ``key``, its ``fields`` and the ``nearest`` recorded keys), 502 for a live
backend's failure, 501 for the cir tool without a tokenizer; Search-R1 clients retry only on
5xx, so a miss is never retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cirkit.errors import CirkitError
from recorders import (
    SEARCH,
    VISIT,
    InvalidCallError,
    RecordersError,
    ReplayMissError,
    parse_retrieve,
)

from ._service import ToolService, parse_observe, tool_args

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 16 << 20
_MSGPACK = "application/msgpack"

Handler = Callable[[Any], Awaitable[dict[str, Any]]]


class _BadBody(ValueError):
    pass


def _decode(raw: bytes, content_type: str) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise _BadBody(f"the body has {len(raw)} bytes; the limit is {MAX_BODY_BYTES}")
    if "msgpack" in content_type:
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as e:
            raise _BadBody(f"the body is not valid msgpack: {e}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise _BadBody(f"the body is not valid JSON: {e}") from None


def _encode(obj: Any, status: int, as_msgpack: bool) -> Response:
    if as_msgpack:
        return Response(msgpack.packb(obj, use_bin_type=True), status, media_type=_MSGPACK)
    return Response(orjson.dumps(obj), status, media_type="application/json")


def _error(e: Exception) -> tuple[int, dict[str, Any]]:
    """The status and body for a failed request."""
    if isinstance(e, _BadBody):
        return 400, {"error": str(e), "hint": "send one JSON (or msgpack) object of at most "
                                              f"{MAX_BODY_BYTES} bytes"}
    message = str(getattr(e, "message", "") or e) or type(e).__name__
    body: dict[str, Any] = {"error": message.splitlines()[0], "message": message,
                            "hint": getattr(e, "hint", None)}
    if isinstance(e, ReplayMissError):
        body.update(key=e.key, fields=e.fields, nearest=e.nearest)
        return 404, body
    if isinstance(e, InvalidCallError):
        return 400, body
    if isinstance(e, CirkitError) and e.setting == "tokenizer":
        return 501, body
    if isinstance(e, RecordersError | CirkitError):
        return 502, body
    return 500, {"error": f"internal error: {type(e).__name__}: {e}", "hint": None}


def create_app(service: ToolService) -> Starlette:
    """The app; its lifespan starts and closes the service (and its sandbox)."""
    m = service.metrics

    def endpoint(name: str, handle: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            started = time.perf_counter()
            ctype = request.headers.get("content-type", "")
            as_msgpack = "msgpack" in ctype or "msgpack" in request.headers.get("accept", "")
            try:
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > MAX_BODY_BYTES:  # refused unread
                    raise _BadBody(f"the body has {length} bytes; the limit is "
                                   f"{MAX_BODY_BYTES}")
                status, answer = 200, await handle(_decode(await request.body(), ctype))
            except Exception as e:
                status, answer = _error(e)
            m.observe(name, time.perf_counter() - started, error=status != 200)
            return _encode(answer, status, as_msgpack)
        return route

    async def retrieve(body: Any) -> dict[str, Any]:
        answer, local = await service.retrieve(parse_retrieve(body))
        if local:  # Search-R1 clients read "result" only; the flag rides beside it
            answer["answered_locally"] = local
        return answer

    async def web_search(body: Any) -> dict[str, Any]:
        return (await service.call(SEARCH, tool_args(SEARCH, body))).to_json()

    async def web_visit(body: Any) -> dict[str, Any]:
        return (await service.call(VISIT, tool_args(VISIT, body))).to_json()

    async def get_observation(body: Any) -> dict[str, Any]:
        return await service.observe(parse_observe(body))

    async def health(request: Request) -> Response:
        store = service.recorder.store
        return _encode({"status": "ok", "mode": str(service.mode),
                        "store": None if store is None else str(store.path),
                        "cir": service.tokenizer is not None,
                        "on_miss": "local" if service.fallback is not None else "error"},
                       200, False)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    routes = [
        Route("/retrieve", endpoint("retrieve", retrieve), methods=["POST"]),
        Route("/get_observation", endpoint("get_observation", get_observation),
              methods=["POST"]),
        Route("/web_search", endpoint("web_search", web_search), methods=["POST"]),
        Route("/web_visit", endpoint("web_visit", web_visit), methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
