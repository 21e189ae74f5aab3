"""Content-addressed blobs: write-once files named by the sha256 of their bytes."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

from ._errors import BlobCorruptError, StoreError
from ._readonly import read_only_error

__all__ = ["BlobStore"]

_NAME = re.compile(r"[0-9a-f]{64}").fullmatch  # a blob name, and never a path


def _not_a_name(sha: str) -> StoreError:
    return StoreError(f"not a blob name: {sha!r} (expected 64 lower-case hex digits)")


class BlobStore:
    """``objects/ab/cdef…``: written to a temp file and renamed into place (safe to race:
    two writers of the same name write the same bytes), verified on every read."""

    __slots__ = ("__weakref__", "_close_dir", "_dir_fd", "_prefix", "readonly", "root")

    def __init__(self, root: Path, *, readonly: bool = False) -> None:
        self.root = root
        self.readonly = readonly
        # Reads open a blob relative to the open objects directory (openat(2)), so the kernel
        # walks two path components instead of the whole absolute path (0.1-0.2 us per read).
        # Without the directory (a store with no blob yet) or dir_fd support, absolute paths.
        self._dir_fd: int | None = None
        self._prefix = os.fspath(root) + "/"
        self._close_dir: Callable[[], None] | None = None
        if os.open in os.supports_dir_fd:
            try:
                fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            except OSError:
                return
            self._dir_fd, self._prefix = fd, ""
            self._close_dir = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        """Release the directory handle; later reads use absolute paths again."""
        if self._close_dir is not None:
            self._dir_fd, self._prefix = None, os.fspath(self.root) + "/"
            self._close_dir()
            self._close_dir = None

    def path(self, sha: str) -> Path:
        if _NAME(sha) is None:
            raise _not_a_name(sha)
        return self.root / sha[:2] / sha[2:]

    def put(self, data: bytes) -> str:
        if self.readonly:
            raise read_only_error()
        sha = hashlib.sha256(data).hexdigest()
        if self.intact(sha):  # a blob whose bytes no longer match its name is replaced
            return sha
        self._write(sha, data)
        return sha

    def put_file(self, sha: str, src: Path) -> bool:
        """Move the file ``src``, whose bytes the caller has hashed to ``sha``, into place
        unless an intact blob is there; whether it was moved. (Unpacking streams big blobs to
        a file rather than holding them in memory.)"""
        if self.readonly:
            raise read_only_error()
        dest = self.path(sha)
        if self.intact(sha):
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, 0o444)
        os.replace(src, dest)
        return True

    def _write(self, sha: str, data: bytes) -> None:
        dest = self.path(sha)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def intact(self, sha: str) -> bool:
        """Whether the blob exists and its bytes hash to its name (read in chunks)."""
        h = hashlib.sha256()
        try:
            with open(self.path(sha), "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
        except OSError:
            return False
        return h.hexdigest() == sha

    def get(self, sha: str) -> bytes:
        # Hot path of replay: a raw fd opened relative to the objects directory (pathlib and a
        # buffered file cost ~7 us more). On the way in, the name need only be one path
        # component of 64 characters, so never a path elsewhere; bytes that hash to it prove it
        # a blob name. Every failure checks it in full, once, before saying what failed.
        if len(sha) != 64 or "/" in sha or "\\" in sha:
            raise _not_a_name(sha)
        try:
            fd = os.open(f"{self._prefix}{sha[:2]}/{sha[2:]}", os.O_RDONLY, dir_fd=self._dir_fd)
            try:
                data = os.read(fd, 1 << 16)
                if len(data) == 1 << 16:  # a larger blob (a page's raw bytes): read to EOF
                    chunks = [data]
                    while chunk := os.read(fd, 1 << 20):
                        chunks.append(chunk)
                    data = b"".join(chunks)
            finally:
                os.close(fd)
        except (OSError, ValueError) as e:  # ValueError: a NUL in the name
            failure: BaseException | None = e
        else:
            if hashlib.sha256(data).hexdigest() == sha:
                return data
            failure = None
        if _NAME(sha) is None:
            raise _not_a_name(sha)
        if failure is None:
            raise BlobCorruptError(
                f"blob {sha} is corrupt: its bytes no longer hash to its name",
                hint="run `cirkit store verify`; re-record the calls that used it")
        if isinstance(failure, FileNotFoundError):
            raise BlobCorruptError(
                f"blob {sha} is missing from {self.root}",
                hint="run `cirkit store verify` and re-record or unpack the store again")
        raise BlobCorruptError(f"blob {sha} is unreadable: {failure}",
                               hint="check the store's files and permissions")

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def names(self) -> Iterator[str]:
        """Every blob name, sorted; temp files of unfinished writes are skipped."""
        if not self.root.is_dir():
            return
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir() and len(p.name) == 2):
            for f in sorted(sub.iterdir()):
                if not f.name.startswith(".tmp-"):
                    yield sub.name + f.name

    def temp_files(self) -> list[Path]:
        """Leftovers of writes killed before their rename (harmless; removable)."""
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob("*/.tmp-*"))
