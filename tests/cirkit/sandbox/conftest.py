"""A sandbox shared by the tests of a module: workers start once, as in a rollout."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cirkit.sandbox import Limits, MiB, Sandbox

#: Small enough that a memory bomb fails fast, large enough for the interpreter.
TEST_LIMITS = Limits(memory_bytes=256 * MiB, wall_time_s=5.0)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """A started two-worker sandbox (sync API); every test checks it still works after."""
    with Sandbox(workers=2, limits=TEST_LIMITS) as sb:
        yield sb


def processes_of(uids: frozenset[int]) -> dict[int, tuple[int, int]]:
    """Live processes (zombies included) running under one of ``uids``: pid -> (uid, ppid)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            status = Path(entry.path, "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields["Uid"].split()[0])
        if uid in uids:
            found[int(entry.name)] = (uid, int(fields["PPid"]))
    return found


def only_waiting_children(sb: Sandbox, wait: float = 2.0) -> bool:
    """True when the sandbox's uids run nothing but the children that the workers forked
    ahead of time (at most one per worker, waiting for the next block): no block survived.
    Waits up to ``wait`` seconds: a result can arrive while its worker still reaps."""
    deadline = time.monotonic() + wait
    while True:
        procs = processes_of(sb.uids)
        uids = [uid for uid, _ in procs.values()]
        if len(uids) == len(set(uids)) and \
                all(ppid in sb.worker_pids for _, ppid in procs.values()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
