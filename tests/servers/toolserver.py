"""cirkit's own tool server (``cirkit tools serve``) on 127.0.0.1, for the tests that call it.

Fixtures:
- ``make_toolserver(service)``: the app over a ``ToolService`` served by uvicorn in a thread
  of the test process (``.url``), closed after the test;
- ``serve_cli(*args)``: the real command in a subprocess (``--port 0``), its printed URL read
  back (``.url``), stopped with SIGTERM after the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cirkit.toolserver import BackgroundServer, ToolService, create_app

__all__ = ["CliServer", "first_line", "make_toolserver", "serve_cli"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CliServer:
    url: str
    proc: subprocess.Popen[str]

    def stop(self) -> str:
        """SIGTERM (as a process manager stops it); the command's stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line a server process prints (its URL), or '' after ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline() if proc.stdout
                                                        else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


@pytest.fixture
def make_toolserver() -> Iterator[Callable[[ToolService], BackgroundServer]]:
    started: list[BackgroundServer] = []

    def make(service: ToolService) -> BackgroundServer:
        server = BackgroundServer(create_app(service)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def serve_cli() -> Iterator[Callable[..., CliServer]]:
    started: list[CliServer] = []

    def start(*args: str, timeout: float = 120.0) -> CliServer:
        env = {**os.environ, "CIRKIT_STORE": "",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen(
            [sys.executable, "-m", "cirkit.cli", "tools", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        url = first_line(proc, timeout)
        server = CliServer(url, proc)
        started.append(server)
        if not url.startswith("http://"):
            raise AssertionError(f"cirkit tools serve did not start:\n{server.stop()}")
        return server

    yield start
    for server in started:
        server.stop()
