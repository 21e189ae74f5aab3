"""A memory limit for a whole block, not per process: a cgroup per worker that each block's
child joins (its forks follow it), with the block's memory limit.

cgroup v2 is used where the worker's own cgroup can have a child with the ``memory``
controller; else the v1 ``memory`` hierarchy where it is mounted and writable. Neither: the
block keeps only RLIMIT_AS per process and RLIMIT_NPROC (``Limits.processes``), which bound
its memory to ``processes x memory_bytes`` at worst; the worker then says so in its warnings.
Opened before the worker's filesystem view hides /sys: everything after goes through fds.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["BlockCgroup", "open_block_cgroup"]

_V1_LIMIT = "memory.limit_in_bytes"
_V2_LIMIT = "memory.max"


class BlockCgroup:
    """One worker's block cgroup. ``procs_fd`` stays open in the worker so a freshly forked
    child can join it (``join``) before it drops its privileges."""

    def __init__(self, parent_fd: int, name: str, version: int) -> None:
        self.parent_fd, self.name, self.version = parent_fd, name, version
        self.fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=parent_fd)
        self.procs_fd = os.open("cgroup.procs", os.O_WRONLY, dir_fd=self.fd)

    def _write(self, name: str, value: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def _read(self, name: str) -> str:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            return os.read(fd, 1 << 16).decode()
        finally:
            os.close(fd)

    def set_limit(self, memory_bytes: int) -> None:
        self._write(_V2_LIMIT if self.version == 2 else _V1_LIMIT, str(memory_bytes))
        if self.version == 2:
            with contextlib.suppress(OSError):
                self._write("memory.swap.max", "0")

    def oom_kills(self) -> int:
        """How many processes the kernel killed for going over the limit, so far."""
        with contextlib.suppress(OSError, ValueError):
            text = self._read("memory.events" if self.version == 2 else "memory.oom_control")
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def join(self) -> None:
        """Called in the block's child: move it (and so all it forks) into the cgroup."""
        os.write(self.procs_fd, b"0")

    def close(self) -> None:
        for fd in (self.procs_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(self.name, dir_fd=self.parent_fd)


def _own_cgroups() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                out[c] = path
    return out


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, options) of the cgroup mounts."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if len(fields) >= 5 and rest and rest[0] in ("cgroup", "cgroup2"):
                out.append((rest[0], fields[4], set(rest[-1].split(","))))
    return out


def _candidates() -> list[tuple[str, int]]:
    own = _own_cgroups()
    found = []
    for fstype, point, opts in _mounts():
        if fstype == "cgroup2" and "" in own:
            base = os.path.join(point, own[""].lstrip("/"))
            with contextlib.suppress(OSError):
                if "memory" in Path(base, "cgroup.controllers").read_text().split():
                    found.append((base, 2))
        elif fstype == "cgroup" and "memory" in opts:
            base = os.path.join(point, own.get("memory", "/").lstrip("/"))
            found.append((base if os.path.isdir(base) else point, 1))
    return sorted(found, key=lambda c: -c[1])  # v2 first


def _remove_stale(parent: int) -> None:
    """Remove the cgroups of workers that were killed (a SIGKILL leaves no time to clean up):
    named after a host pid that no longer runs, and empty (rmdir refuses a busy one)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            tag = name.removeprefix("cirkit-sandbox-")
            if tag != name and tag.isdigit() and not os.path.exists(f"/proc/{tag}"):
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=parent)


def open_block_cgroup(tag: str) -> tuple[BlockCgroup | None, str | None]:
    """A fresh memory cgroup named ``cirkit-sandbox-<tag>`` (the worker's host pid, while the
    host's /proc is still mounted) for one worker, or None and why."""
    why = "no writable cgroup with the memory controller"
    for base, version in _candidates():
        name = f"cirkit-sandbox-{tag}"
        try:
            parent = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as e:
            why = f"{base}: {e.strerror}"
            continue
        try:
            _remove_stale(parent)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
            cg = BlockCgroup(parent, name, version)
            cg._write(_V2_LIMIT if version == 2 else _V1_LIMIT, "max" if version == 2 else "-1")
            return cg, None
        except OSError as e:
            why = f"cgroup v{version} at {base}: {e.strerror or e}"
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=parent)
            os.close(parent)
    return None, why
