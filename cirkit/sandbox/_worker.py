"""The fork server: a long-lived worker that forks one fresh child per block.

``python -m cirkit.sandbox._worker --fd N`` serves the parent over the SOCK_SEQPACKET socket N:
JSON messages, the block's descriptors passed with SCM_RIGHTS. Everything slow (the
interpreter, imports, namespaces, a uid of its own) happens once here; a block costs one fork.
After each block the worker kills whatever the block left running (it is the subreaper of all
of them, and as root every process of its uid is the block's), reaps it, and empties the
scratch mounts, so no state reaches the next block.

Messages, parent -> worker: ``{"op": "run", "limits": {...}, "persistent": bool}`` with
fds [frame socket, stdout pipe, stderr pipe]; ``{"op": "kill"}``; ``{"op": "exit"}``.
Worker -> parent: ``{"ready": ...}`` once, then per block ``{"started": pid}`` and
``{"exited": pid, "code"|"signal", "cpu_s", "swept", "clean"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _isolation
from ._cgroup import BlockCgroup, open_block_cgroup
from ._child import prepare_worker, run_child
from ._isolation import AUDIT_HOOK, NETNS
from ._limits import DEFAULT_PRELOAD

__all__ = ["WORKDIR", "Worker", "main"]

WORKDIR = "/tmp/work"


class Worker:
    """One fork server. Single-threaded: a selector over the control socket and SIGCHLD."""

    def __init__(self, ctrl: socket.socket, args: argparse.Namespace) -> None:
        self.ctrl = ctrl
        self.args = args
        self.uid: int | None = None
        self.features: set[str] = set()
        self.warnings: list[str] = []
        self.tmp_root = ""
        self.base_tasks = 0
        self.child: int | None = None
        self.child_status: tuple[int, float] | None = None
        self.child_tmp = ""
        self.n = 0
        self.host_pid = os.getpid()
        self.cgroup: BlockCgroup | None = None
        self.oom_before = 0

    # -- start -------------------------------------------------------------------------------
    def start(self) -> None:
        a = self.args
        _isolation.set_pdeathsig(signal.SIGKILL)  # never outlive the parent
        if os.geteuid() == 0 and a.uid_base > 0:
            self.uid, _lock = _isolation.acquire_uid(a.uid_base, a.uid_count, Path(a.lock_dir))
        kernel = a.isolation != AUDIT_HOOK
        self.features = _isolation.setup_namespaces(
            want_netns=kernel, disk_bytes=a.disk_bytes, want_pidns=kernel)
        if a.isolation == NETNS and NETNS not in self.features:
            raise RuntimeError("a network namespace was required but the kernel refused it")
        if "pidns" in self.features:
            self.host_pid = _isolation.enter_pid_namespace()
        paths = _python_paths()
        if kernel:  # before the view hides /sys
            self.cgroup, why = open_block_cgroup(str(self.host_pid))
            if self.cgroup is not None:
                self.features.add("cgroup")
            else:
                self.warnings.append(
                    f"memory is limited per process only ({why}): a block that forks can use "
                    "up to its process limit times its memory limit")
        if kernel and "mountns" in self.features:
            try:
                _isolation.build_view(paths, a.disk_bytes, pid_ns="pidns" in self.features)
                self.features.add("fsview")
            except OSError as e:
                self.warnings.append(f"no private filesystem view ({e}): blocks see the "
                                     "host's files their uid may read")
        if self.uid is not None:
            self.features.add("uid")
            if "fsview" in self.features:
                pass  # the view holds the interpreter's directories, open to every uid
            elif "mountns" in self.features:
                _isolation.expose(paths)
            elif (closed := _isolation.closed_ancestor(os.path.realpath(sys.prefix))):
                self.warnings.append(
                    f"{closed} is closed to other users and cannot be remounted: blocks can "
                    "import only the modules the worker preloaded")
        _isolation.set_subreaper()
        for name in filter(None, a.preload.split(",")):
            with contextlib.suppress(Exception):
                importlib.import_module(name)
        if "mountns" in self.features:
            self.tmp_root = "/tmp"
        else:
            self.tmp_root = tempfile.mkdtemp(prefix="cirkit-sandbox-")
            os.chmod(self.tmp_root, 0o711)
        prepare_worker(WORKDIR if "mountns" in self.features else None)
        gc.collect()
        gc.freeze()  # the children's collections then skip (and do not copy) all of this
        if self.uid is None:
            self.base_tasks = _isolation.task_count(os.getuid())
        self.sweep()  # a crashed predecessor with this uid may have left processes behind

    @property
    def isolation(self) -> str:
        return NETNS if NETNS in self.features else AUDIT_HOOK

    def send(self, msg: dict[str, Any]) -> None:
        self.ctrl.send(json.dumps(msg).encode())

    # -- serve -------------------------------------------------------------------------------
    def serve(self) -> None:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        sel = selectors.DefaultSelector()
        sel.register(self.ctrl, selectors.EVENT_READ, "ctrl")
        sel.register(wake_r, selectors.EVENT_READ, "chld")
        self.send({"ready": True, "pid": self.host_pid, "uid": self.uid,
                   "isolation": self.isolation, "features": sorted(self.features),
                   "warnings": self.warnings})
        try:
            while True:
                for key, _ in sel.select():
                    if key.data == "chld":
                        with contextlib.suppress(BlockingIOError):
                            os.read(wake_r, 4096)
                        self.reap()
                    elif not self.on_message():
                        return
                if self.child is not None and self.child_status is not None:
                    self.finish()
        finally:
            self.kill()
            self.sweep()
            if "mountns" not in self.features and self.tmp_root:
                shutil.rmtree(self.tmp_root, ignore_errors=True)
            if self.cgroup is not None:
                self.cgroup.close()

    def on_message(self) -> bool:
        data, fds, _, _ = socket.recv_fds(self.ctrl, 1 << 16, 8)
        if not data:
            return False  # the parent is gone
        msg = json.loads(data)
        op = msg.get("op")
        if op == "run":
            if self.child is not None or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                self.send({"refused": "busy" if self.child is not None else "fds"})
            else:
                self.fork(msg, fds)
        elif op == "kill":
            self.kill()
        elif op == "exit":
            return False
        return True

    def fork(self, msg: dict[str, Any], fds: list[int]) -> None:
        self.n += 1
        if "mountns" in self.features:
            tmp = WORKDIR
        else:
            tmp = os.path.join(self.tmp_root, f"block-{self.n}")
        os.mkdir(tmp, 0o700)
        gid = self.uid
        if self.uid is not None:
            os.chown(tmp, self.uid, self.uid)
        limits = msg["limits"]
        nproc = limits["processes"] + (0 if self.uid is not None else self.base_tasks)
        spec = {"tmpdir": tmp, "uid": self.uid, "gid": gid, "limits": limits,
                "persistent": bool(msg.get("persistent")), "nproc": nproc,
                "audit": NETNS not in self.features, "worker": os.getpid(),
                "ipcns": "ipcns" in self.features}
        if self.cgroup is not None:
            self.cgroup.set_limit(int(limits["memory_bytes"]))
            self.oom_before = self.cgroup.oom_kills()
            spec["cgroup_fd"] = self.cgroup.procs_fd
        pid = os.fork()
        if pid == 0:
            run_child(spec, fds)
        for fd in fds:
            os.close(fd)
        self.child, self.child_status, self.child_tmp = pid, None, tmp
        self.send({"started": pid})

    # -- ending a block ----------------------------------------------------------------------
    def reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.child_status = (status, usage.ru_utime + usage.ru_stime)

    def kill(self) -> None:
        if self.child is None or self.child_status is not None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(self.child, signal.SIGKILL)
        self.kill_uid()

    def kill_uid(self) -> None:
        """Kill every process of the block's uid, wherever it moved (root only)."""
        if self.uid is None:
            return
        pid = os.fork()
        if pid == 0:
            try:
                os.setresuid(self.uid, self.uid, self.uid)
                for _ in range(3):  # (a killed process cannot fork: 3 passes catch forkers)
                    os.kill(-1, signal.SIGKILL)  # all processes of this uid but this one
            except BaseException:
                pass
            os._exit(0)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def children(self) -> list[int]:
        me = os.getpid()
        try:
            text = Path(f"/proc/{me}/task/{me}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def sweep(self) -> tuple[int, bool]:
        """Kill and reap everything the block left: its orphans are this worker's children."""
        killed = 0
        if self.uid is not None and self.child is None:
            self.kill_uid()
        deadline = time.monotonic() + 5.0
        while True:
            self.reap()
            kids = self.children()
            if not kids:
                return killed, True
            if killed == 0:
                self.kill_uid()
            for pid in kids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                killed += 1
            with contextlib.suppress(ChildProcessError):
                pid, status, usage = os.wait4(-1, 0)
                if pid == self.child:
                    self.child_status = (status, usage.ru_utime + usage.ru_stime)
            if time.monotonic() > deadline:
                return killed, False

    def finish(self) -> None:
        assert self.child is not None and self.child_status is not None
        status, cpu = self.child_status
        with contextlib.suppress(OSError):
            os.killpg(self.child, signal.SIGKILL)
        swept, clean = self.sweep()
        msg: dict[str, Any] = {"exited": self.child, "cpu_s": round(cpu, 4), "swept": swept,
                               "clean": clean}
        if self.cgroup is not None and self.cgroup.oom_kills() > self.oom_before:
            msg["oom"] = True  # the kernel killed one of the block's processes: over its limit
        if os.WIFSIGNALED(status):
            msg["signal"] = os.WTERMSIG(status)
        else:
            msg["code"] = os.waitstatus_to_exitcode(status)
        self.child = None
        self.send(msg)
        if "mountns" in self.features:
            with contextlib.suppress(OSError):
                os.rmdir(self.child_tmp)  # most blocks write nothing: no remount then
            _isolation.refresh_tmpfs(self.args.disk_bytes)
        else:
            shutil.rmtree(self.child_tmp, ignore_errors=True)


def _python_paths() -> list[str]:
    """The directories the interpreter and its libraries live in: what a block's filesystem
    view must hold. Not the working directory, nor a source tree put on PYTHONPATH (the
    project's own files); an installed package's site-packages is kept."""
    project = str(Path(__file__).resolve().parents[2])
    out = [sys.prefix, sys.base_prefix, sys.exec_prefix,
           os.path.dirname(os.path.realpath(sys.executable))]
    for p in sys.path:
        p = os.path.dirname(p) if os.path.isfile(p) else p
        if not p or not os.path.isabs(p) or os.path.realpath(p) in ("/", os.getcwd()):
            continue
        if os.path.realpath(p) == project and Path(p).name not in ("site-packages",
                                                                  "dist-packages"):
            continue
        out.append(p)
    return out


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cirkit.sandbox._worker")
    p.add_argument("--fd", type=int, required=True, help="the SOCK_SEQPACKET control socket")
    p.add_argument("--isolation", choices=("auto", NETNS, AUDIT_HOOK), default="auto")
    p.add_argument("--disk-bytes", type=int, default=512 << 20)
    p.add_argument("--uid-base", type=int, default=0, help="0: keep the worker's uid")
    p.add_argument("--uid-count", type=int, default=4096)
    p.add_argument("--lock-dir", default="/run/cirkit-sandbox")
    p.add_argument("--preload", default=",".join(DEFAULT_PRELOAD))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    ctrl = socket.socket(fileno=args.fd)
    worker = Worker(ctrl, args)
    try:
        worker.start()
    except Exception as e:
        with contextlib.suppress(OSError):
            worker.send({"failed": f"{type(e).__name__}: {e}"})
        sys.exit(1)
    worker.serve()


if __name__ == "__main__":
    main()
