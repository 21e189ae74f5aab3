"""Kernel-level isolation for a worker, set up once when it starts.

A worker tries: a new network namespace (no interface but a downed loopback, so not even
127.0.0.1 answers), an IPC namespace (and each block's child makes one of its own), a PID
namespace (the worker forks into it and is its init), and a private mount namespace in which
it pivots onto a filesystem view holding only the system's and the interpreter's directories,
read-only, plus fresh tmpfs scratch mounts (/tmp, /var/tmp, /dev/shm, /run/lock) emptied after
each block. As root it does this directly and runs blocks under a uid of their own; otherwise
it tries a user namespace. What the kernel refuses is absent from the worker's features; with
no network namespace, the only fallback is the audit hook (Python-level only: weaker, and
never chosen silently, see ``_pool``). docs/concepts/sandbox.md says what each piece isolates.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import os
from pathlib import Path

__all__ = [
    "AUDIT_HOOK",
    "NETNS",
    "acquire_uid",
    "build_view",
    "closed_ancestor",
    "drop_capabilities",
    "enter_pid_namespace",
    "expose",
    "new_ipc_namespace",
    "refresh_tmpfs",
    "set_no_new_privs",
    "set_pdeathsig",
    "set_subreaper",
    "setup_namespaces",
    "task_count",
]

NETNS = "netns"
AUDIT_HOOK = "audit-hook"

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

#: The per-block scratch mounts and their mode (world-writable with the sticky bit, as usual).
TMPFS_MOUNTS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
#: Where other world-writable directories of the host are looked for (two levels deep): each
#: one found is made read-only in the worker's mount namespace, so a block cannot leave state
#: there for a later block or run, nor write past its disk cap.
WRITABLE_ROOTS = ("/", "/run", "/var", "/dev", "/mnt", "/media", "/srv", "/opt", "/home")
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_NOEXEC = 0x8
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)
#: What a block's filesystem view holds besides the interpreter's own directories: the
#: system's programs and libraries (read-only), and nothing of the host's homes, projects,
#: caches or /run.
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int,
           data: str | None) -> None:
    def enc(s: str | None) -> bytes | None:
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                       enc(data)), f"mount {target}")


def _mount_tmpfs(target: str, size: int) -> None:
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode=1777")


def _mount_scratch(root: str, disk_bytes: int) -> None:
    """One tmpfs of ``disk_bytes`` for all scratch mounts under ``root``: it is mounted on
    /tmp, each mount is a bind of a directory of it, and /tmp's own directory is bound last over
    the tmpfs (hiding the others). Four tmpfs of ``disk_bytes`` each would hold four times the
    block's disk cap."""
    base = root + TMPFS_MOUNTS[0]
    _mount_tmpfs(base, disk_bytes)
    for target in (*TMPFS_MOUNTS[1:], TMPFS_MOUNTS[0]):
        if not os.path.isdir(root + target) or os.path.islink(root + target):
            continue
        part = f"{base}/{target.strip('/').replace('/', '-')}"
        os.mkdir(part)
        os.chmod(part, 0o1777)
        _bind(part, root + target, read_only=False)


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def setup_namespaces(*, want_netns: bool, disk_bytes: int, want_pidns: bool = True
                     ) -> set[str]:
    """Enter new namespaces for this worker; returns the features now in force
    (``netns``, ``mountns``, ``userns``, ``ipcns``, ``pidns``). Never raises: what fails is
    simply absent. With ``pidns`` the new PID namespace holds only this process's *next*
    child: call ``enter_pid_namespace`` at once.
    ``want_netns=False`` forces the audit-hook fallback but keeps the private mounts."""
    features: set[str] = set()
    net = CLONE_NEWNET if want_netns else 0
    pid = CLONE_NEWPID if want_pidns else 0
    if os.geteuid() != 0:
        uid, gid = os.geteuid(), os.getegid()
        if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | net | pid) == 0:
            features.add("pidns")
        elif _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | net) != 0:
            return features
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError:
            pass
        features.add("userns")
    elif pid and _libc.unshare(CLONE_NEWNS | net | pid) == 0:
        features.add("pidns")
    elif _libc.unshare(CLONE_NEWNS | net) != 0:
        if not net or _libc.unshare(net) != 0:
            return features
        return {NETNS}
    if net:
        features.add(NETNS)
    if _libc.unshare(CLONE_NEWIPC) == 0:
        features.add("ipcns")
    try:
        _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
        _mount_scratch("", disk_bytes)
        for target in _world_writable():
            _mount(target, target, None, MS_BIND | MS_REC, None)
            _mount(None, target, None,
                   MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        features.add("mountns")
    except OSError:
        pass
    return features


def enter_pid_namespace() -> int:
    """Fork into the PID namespace ``setup_namespaces`` made: the child becomes its init
    (pid 1) and returns its pid as the host sees it; this process only waits for it and exits
    with its status. Everything the worker forks then lives in that namespace and dies with it
    (the kernel kills a namespace whose init exits)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(r)
        os.write(w, str(pid).encode())
        os.close(w)
        os.closerange(0, 3)  # keep nothing of the worker's open (its control socket stays
        os.closerange(3, 1 << 16)  # with the child: EOF reaches the parent when it exits)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.close(w)
    host_pid = int(os.read(r, 32) or b"0")
    os.close(r)
    set_pdeathsig(9)  # reset by fork: the waiting parent's death must still end us
    return host_pid


def _bind(src: str, dst: str, *, read_only: bool = True) -> None:
    _mount(src, dst, None, MS_BIND | MS_REC, None)
    if read_only:
        _mount(None, dst, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)


def build_view(paths: list[str], disk_bytes: int, *, pid_ns: bool) -> None:
    """Make this worker's root a fresh tmpfs holding only the system's programs and libraries
    and ``paths`` (the interpreter's directories), all read-only, a few devices, a /proc of
    this PID namespace (the host's own /proc without one), and the scratch mounts. The host's
    root is then detached: the project, homes, caches and /run are not there at all.
    Raises OSError when the kernel refuses a step (the host's root then stays as it was)."""
    if SYS_PIVOT_ROOT is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown on {os.uname().machine}")
    new = "/tmp/.cirkit-root"
    os.makedirs(new, mode=0o755, exist_ok=True)
    _mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    keep: list[str] = []
    for p in sorted({os.path.realpath(p) for p in paths if p and os.path.isdir(p)}):
        if not any(p == k or p.startswith(k + "/") for k in (*SYSTEM_DIRS, *keep)):
            keep.append(p)
    for d in (*SYSTEM_DIRS, *keep):
        if os.path.islink(d) and os.path.dirname(d) == "/":
            os.symlink(os.readlink(d), new + d)  # e.g. /bin -> usr/bin
        elif os.path.isdir(d):
            os.makedirs(new + d, mode=0o755, exist_ok=True)
            _bind(d, new + d)
    os.makedirs(new + "/dev", mode=0o755)
    _mount("tmpfs", new + "/dev", "tmpfs", MS_NOSUID, "size=64k,mode=0755")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            open(f"{new}/dev/{name}", "w").close()
            _bind(f"/dev/{name}", f"{new}/dev/{name}", read_only=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{new}/dev/{name}")
    os.makedirs(new + "/proc", mode=0o555)
    if pid_ns:
        _mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    else:
        _bind("/proc", new + "/proc", read_only=False)
    for target in TMPFS_MOUNTS:
        os.makedirs(new + target, mode=0o755, exist_ok=True)
    _mount_scratch(new, disk_bytes)
    os.chdir(new)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the host's root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, None)


def _world_writable() -> list[str]:
    """World-writable directories of the host (besides the scratch mounts), two levels deep
    under ``WRITABLE_ROOTS``: e.g. a /var/crash or /var/lib/php/sessions."""
    found: list[str] = []
    skip = {*TMPFS_MOUNTS, "/proc", "/sys", "/tmp"}
    for root in WRITABLE_ROOTS:
        for level1 in _subdirs(root):
            for d in (level1, *_subdirs(level1)):
                if d in skip or any(d.startswith(s + "/") for s in skip) or d in found:
                    continue
                with contextlib.suppress(OSError):
                    if os.stat(d).st_mode & 0o002:
                        found.append(d)
    return found


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as it:
            return sorted(e.path for e in it if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def new_ipc_namespace() -> None:
    """Give the calling process (a block's child, before it drops privileges) System V IPC
    objects and POSIX message queues of its own: whatever a block creates there dies with it
    and no other block, of this run or another, can attach to it."""
    _check(_libc.unshare(CLONE_NEWIPC), "unshare(CLONE_NEWIPC)")


def refresh_tmpfs(disk_bytes: int) -> None:
    """Replace the scratch mounts by empty ones: O(1) whatever the block left behind."""
    targets = [t for t in TMPFS_MOUNTS if os.path.isdir(t) and not os.path.islink(t)]
    if all(not os.listdir(t) for t in targets):
        return
    for target in (*targets, TMPFS_MOUNTS[0]):  # /tmp twice: its bind, then the tmpfs
        _check(_libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")
    _mount_scratch("", disk_bytes)


def closed_ancestor(path: str) -> str | None:
    """The first directory on ``path`` that other users may not traverse, if any."""
    cur = "/"
    for part in Path(path).parts[1:]:
        cur = os.path.join(cur, part)
        with contextlib.suppress(OSError):
            if not os.stat(cur).st_mode & 0o001:
                return cur
    return None


def expose(paths: list[str]) -> list[str]:
    """Let other uids reach ``paths`` (the interpreter, its libraries) where an ancestor is
    closed to them, e.g. a Python installed under /root (mode 0700): in this worker's private
    mount namespace the closed directory is covered by an empty tmpfs and only ``paths`` are
    bound back into it. Everything else in it stays hidden. Returns the covered directories."""
    closed: dict[str, set[str]] = {}
    for p in {os.path.realpath(p) for p in paths if p and os.path.isdir(p)}:
        d = closed_ancestor(p)
        if d is not None and d != p:
            closed.setdefault(d, set()).add(p)
    for d, subs in closed.items():
        keep = [s for s in sorted(subs) if not any(s.startswith(o + "/") for o in subs)]
        fds = [(s, os.open(s, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for s in keep]
        try:
            _mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
            for s, fd in fds:
                os.makedirs(s, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", s, None, MS_BIND | MS_REC, None)
        finally:
            for _, fd in fds:
                os.close(fd)
    return sorted(closed)


def acquire_uid(base: int, count: int, lock_dir: Path) -> tuple[int, int]:
    """A uid in ``[base, base+count)`` that no other live worker on this machine holds.

    Held by an flock on ``lock_dir/<uid>`` for the worker's lifetime (released when it dies),
    so two sandboxes never share a uid: a block's processes are then exactly that uid's.
    """
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for uid in range(base, base + count):
        fd = os.open(lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                continue
            raise
        return uid, fd
    raise RuntimeError(f"all {count} sandbox uids from {base} are in use")


def set_subreaper() -> None:
    """Orphans of a block become this worker's children, so it can find and reap them all."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def set_pdeathsig(sig: int) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def set_no_new_privs() -> None:
    """No setuid program can give the block privileges back; also keeps it dumpable."""
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32))


def drop_capabilities() -> None:
    """Clear every capability (used where the block keeps uid 0 of a user namespace)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def task_count(uid: int) -> int:
    """How many tasks (threads included) ``uid`` runs: RLIMIT_NPROC counts them all."""
    n = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            owner = None
            threads = 1
            for line in Path(entry.path, "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    owner = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
            if owner == uid:
                n += threads
    return n
