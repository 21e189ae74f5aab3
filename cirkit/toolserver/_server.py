"""Running the app with uvicorn: in the foreground (``cirkit tools serve``), or in a background
thread (tests, benchmarks, a trainer that wants the service in its own process).

The listening socket is bound before uvicorn starts, so port 0 gives a free port whose URL is
known before the first request.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from cirkit.errors import CirkitError

__all__ = ["BackgroundServer", "bind", "run_app", "url_of"]


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP,
        # and without it every small answer waits out the client's delayed ACK (~40 ms)
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise CirkitError(f"cannot listen on {host}:{port}: {e.strerror or e}",
                          hint="choose a free port (0 picks one) and an address of this machine",
                          setting="port") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    """The base URL a bound socket serves."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _config(app: Any, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                          timeout_keep_alive=30)


def run_app(app: Any, sock: socket.socket, *, log_level: str = "warning",
            on_ready: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM (uvicorn's handlers)."""
    server = uvicorn.Server(_config(app, log_level))
    if on_ready is not None:
        startup = server.startup

        async def started(sockets: list[socket.socket] | None = None) -> None:
            await startup(sockets)
            if server.started:
                on_ready()

        server.startup = started  # type: ignore[method-assign]
    server.run(sockets=[sock])
    if not server.started:
        raise CirkitError("the tool server did not start (see the log above)",
                          hint="fix the cause the log names, e.g. the sandbox or the store")


class BackgroundServer:
    """``app`` served by uvicorn in a daemon thread on 127.0.0.1; ``url`` once started.

    ``with BackgroundServer(create_app(service)) as server: httpx.get(server.url + "/health")``
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0,
                 log_level: str = "warning", startup_timeout: float = 60.0) -> None:
        self._sock = bind(host, port)
        self.url = url_of(self._sock)
        self._server = uvicorn.Server(_config(app, log_level))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        daemon=True, name="cirkit-toolserver")
        self._timeout = startup_timeout

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise CirkitError("the tool server did not start",
                                  hint="see the log for the cause (the sandbox or the store)")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self._sock.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
