"""One worker process seen from the parent: its control socket, read by a loop callback.

Worker messages become events on ``events`` (the queue the running block consumes); the
worker's first message, ``ready`` (or ``failed``), resolves ``ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
from typing import Any

from ._channel import Channel, Event
from ._limits import Limits
from ._result import SandboxError

__all__ = ["WorkerProc"]


class WorkerProc:
    """One worker process and its control socket, read by a callback on the loop."""

    def __init__(self, slot: int, popen: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self.slot, self.popen, self.sock = slot, popen, sock
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.info: dict[str, Any] = {}
        self.alive = True
        #: A child forked ahead of time, set up and waiting for its code (with its limits).
        self.prepared: tuple[Channel, Limits] | None = None
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._on_ctrl)

    def _gone(self) -> None:
        if self.alive:
            self.alive = False
            self.loop.remove_reader(self.sock.fileno())
            self.events.put_nowait(("gone", None, 0))
            if not self.ready.done():
                self.ready.set_exception(SandboxError("the sandbox worker exited while starting"))

    def _on_ctrl(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        try:
            msg = json.loads(data) if data else None
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            self._gone()
            return
        if "ready" in msg and not self.ready.done():
            self.ready.set_result(msg)
        elif "failed" in msg and not self.ready.done():
            self.ready.set_exception(SandboxError(f"sandbox worker: {msg['failed']}"))
        elif "started" in msg:
            self.events.put_nowait(("started", msg["started"], 0))
        elif "exited" in msg:
            self.events.put_nowait(("exited", msg, 0))
        elif "refused" in msg:
            self.events.put_nowait(("refused", msg, 0))

    def send(self, msg: dict[str, Any], fds: list[int] | None = None) -> None:
        if not self.alive:
            return
        try:
            socket.send_fds(self.sock, [json.dumps(msg).encode()], fds or [])
        except OSError:
            self._gone()

    def kill(self) -> None:
        self._gone()
        if self.prepared is not None:
            self.prepared[0].close()
            self.prepared = None
        with contextlib.suppress(OSError):
            self.popen.kill()
        self.sock.close()

    async def stop(self) -> None:
        self.send({"op": "exit"})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(self.popen.wait), 5.0)
        self.kill()
        await asyncio.to_thread(self.popen.wait)
