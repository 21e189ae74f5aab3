"""The worker pool: its life cycle as explicit states, and lending workers out, with real
worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cirkit.sandbox import PoolState, Retry, Sandbox, SandboxError, WorkerPool

from .conftest import TEST_LIMITS


def new_pool(size: int = 1, python: str | None = None) -> WorkerPool:
    return WorkerPool(size=size, limits=TEST_LIMITS, tool_handler=None, python=python)


def worker_processes() -> set[int]:
    """This process's live worker children, started or not."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            cmd = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid() and b"cirkit.sandbox._worker" in cmd:
            found.add(int(entry.name))
    return found


async def test_states_follow_the_life_cycle_in_order() -> None:
    pool = new_pool(size=2)
    assert pool.state is PoolState.NEW and pool.pids == ()
    starting = asyncio.create_task(pool.start())
    await asyncio.sleep(0)
    assert pool.state is PoolState.STARTING
    await pool.start()  # a second caller waits for the same start
    await starting
    assert pool.state is PoolState.RUNNING and len(pool.pids) == 2
    assert pool.info("isolation") in ("netns", "audit-hook")
    await pool.close()
    assert pool.state is PoolState.CLOSED and pool.pids == ()
    await pool.close()  # closing twice is fine
    with pytest.raises(SandboxError, match="closed"):
        await pool.start()
    with pytest.raises(SandboxError, match="closed"):
        await pool.acquire()


async def test_a_pool_that_cannot_start_is_failed_and_says_why_every_time() -> None:
    pool = new_pool(python="/bin/false")  # exits at once: no worker ever reports ready
    with pytest.raises(SandboxError, match="exited while starting") as first:
        await pool.start()
    assert pool.state is PoolState.FAILED
    with pytest.raises(SandboxError) as again:
        await pool.acquire()
    assert again.value is first.value
    await pool.close()
    assert pool.state is PoolState.CLOSED


async def test_closing_while_starting_stops_the_workers_being_spawned() -> None:
    pool = new_pool(size=2)
    starting = asyncio.create_task(pool.start())
    await asyncio.sleep(0)
    assert pool.state is PoolState.STARTING
    await pool.close()
    assert pool.state is PoolState.CLOSED
    with pytest.raises(SandboxError, match="closed"):
        await starting
    assert worker_processes() == set()


async def test_a_worker_is_lent_to_one_taker_and_replaced_when_given_back_broken() -> None:
    pool = new_pool(size=1)
    try:
        proc = await pool.acquire()
        assert proc.alive and proc.prepared is not None  # its next child is forked already
        with pytest.raises(TimeoutError):  # the only worker is out
            await asyncio.wait_for(pool.acquire(), 0.2)
        pool.release(proc, ok=True)
        assert await pool.acquire() is proc
        old_pid = proc.info["pid"]
        pool.release(proc, ok=False)  # broken: killed, and a new worker takes its slot
        assert not proc.alive
        new = await asyncio.wait_for(pool.acquire(), 30)
        assert new is not proc and new.slot == proc.slot
        assert pool.pids == (new.info["pid"],) and old_pid not in pool.pids
        assert new.prepared is not None
        pool.release(new, ok=True)
    finally:
        await pool.close()
    assert worker_processes() == set()


def test_retry_needs_at_least_one_attempt() -> None:
    assert Retry(attempts=1).give_up is None
    with pytest.raises(ValueError):
        Retry(attempts=0)


async def test_a_persistent_session_whose_worker_died_starts_over_on_a_new_one() -> None:
    async with Sandbox(workers=1, limits=TEST_LIMITS) as sb, \
            sb.session(persistent=True) as s:
        assert (await s.run("x = 1")).ok
        os.kill(sb.worker_pids[0], signal.SIGKILL)
        await asyncio.sleep(0.3)
        r = await s.run("print('x' in globals())")  # retried on the replacement worker
        assert (r.stdout, r.error) == ("False\n", None)
        assert (await s.run("print('again')")).stdout == "again\n"


def test_a_worker_imports_nothing_of_the_parent_side() -> None:
    """Workers import the package; what they import is paid at every fork."""
    parent = ["_sandbox", "_session", "_pool", "_run", "_exchange", "_channel", "_proc",
              "_outcome"]
    code = ("import sys, cirkit.sandbox, cirkit.sandbox._worker\n"
            f"loaded = [m for m in {parent!r} if 'cirkit.sandbox.' + m in sys.modules]\n"
            "assert not loaded and 'asyncio' not in sys.modules, loaded\n"
            "cirkit.sandbox.Sandbox\n"
            "assert 'cirkit.sandbox._sandbox' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
