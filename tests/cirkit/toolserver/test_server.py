"""The listening socket: bound before uvicorn starts, and marked TCP so that asyncio turns
Nagle's algorithm off on every connection (else each small answer waits out the client's
delayed ACK, ~40 ms: 25 requests/s per connection)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cirkit.errors import CirkitError
from cirkit.toolserver import bind, url_of


def test_the_socket_says_tcp_so_connections_get_nodelay() -> None:
    with bind("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert url_of(sock).startswith("http://127.0.0.1:")


def test_a_taken_port_is_an_error_naming_the_port() -> None:
    with bind("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(CirkitError, match=f"cannot listen on 127.0.0.1:{port}") as info:
            bind("127.0.0.1", port)
    assert info.value.setting == "port"


async def test_connections_accepted_by_asyncio_on_it_have_nodelay() -> None:
    seen: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP,
                                                               socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=bind("127.0.0.1", 0))
    async with server:
        host, port = server.sockets[0].getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
    assert seen and seen[0] != 0
