"""A Hugging Face Hub emulator on 127.0.0.1: what the real ``huggingface_hub`` (create_repo,
create_branch, create_commit, repo_info, list_repo_tree, snapshot_download) and
``datasets.load_dataset`` call, over HTTP, on an in-memory store of repos, branches and commits.

Why ``pytest_configure`` sets the environment: both libraries read ``HF_ENDPOINT``, ``HF_HOME``
and ``HF_DATASETS_CACHE`` into constants at import, and transformers and cirkit import them. This
hook runs after the conftest plugins load and before any test module is collected, so before
either library is imported; the ``hub`` fixture checks they did pick the emulator up and fails
with an explanation otherwise. (A subprocess per Hub call would also work, but costs seconds of
imports each and hides tracebacks.)

Nothing reaches huggingface.co: ``HF_ENDPOINT`` points here, ``HF_UPDATE_DOWNLOAD_COUNTS=0``
stops datasets' S3 ping, and ``hub.offline()`` (around every hub test) refuses to resolve any
non-loopback host, recording it in ``hub.blocked``. The one exception is the dataset viewer,
whose host datasets derives from the endpoint (``datasets-server.127.0.0.1``): it resolves to
this server, which answers like a viewer that has not converted the dataset yet.

Preupload answers ``"regular"`` for every file, so commits carry files inline (base64 in the
NDJSON body) and no LFS/Xet transfer is needed (``HF_HUB_DISABLE_XET=1``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ._loopback import QuietHandler, serve

__all__ = ["HUB_TOKEN", "HUB_USER", "Hub", "Logged", "hub"]

HUB_USER = "cirkit-tester"
HUB_TOKEN = "hf_cirkit_test_token_0123456789"
_GITATTRIBUTES = (b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
                  b"*.arrow filter=lfs diff=lfs merge=lfs -text\n")
_PREFIX = {"dataset": "datasets/", "model": "", "space": "spaces/"}
_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}
_DATE = "2026-01-01T00:00:00.000Z"  # fixed: same pushes, same answers
_VIEWER_HOST = "datasets-server.127.0.0.1"


def git_blob_sha1(data: bytes) -> str:
    """What git (and the Hub's ETag for a regular file) names a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]  # the whole tree at this commit


@dataclass
class Repo:
    repo_id: str
    repo_type: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def commit(self, branch: str, message: str, files: dict[str, bytes]) -> Commit:
        parent = self.branches.get(branch)
        tree = sorted((p, git_blob_sha1(b)) for p, b in files.items())
        oid = hashlib.sha1(json.dumps([parent, tree, message]).encode()).hexdigest()
        c = Commit(oid, parent, message, dict(files))
        self.commits[oid] = c
        self.branches[branch] = oid
        return c

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev, rev)
        return self.commits.get(oid)


@dataclass(frozen=True)
class Logged:
    method: str
    path: str  # without the query string
    user: str | None
    status: int


@dataclass
class Hub:
    """The emulator's state; ``url`` is what ``HF_ENDPOINT`` holds."""

    url: str = ""
    tokens: dict[str, str] = field(default_factory=lambda: {HUB_TOKEN: HUB_USER})
    repos: dict[tuple[str, str], Repo] = field(default_factory=dict)
    log: list[Logged] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, rev: str = "main",
              repo_type: str = "dataset") -> dict[str, bytes]:
        c = self.repo(repo_id, repo_type).resolve(rev)
        assert c is not None, f"{repo_id} has no revision {rev}"
        return c.files

    def requests_since(self, mark: int) -> list[Logged]:
        with self.lock:
            return self.log[mark:]

    @contextmanager
    def offline(self) -> Iterator[None]:
        """Refuse to resolve any host but loopback (recorded in ``blocked``)."""
        real = socket.getaddrinfo

        def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name == _VIEWER_HOST:  # datasets derives the viewer's host from HF_ENDPOINT
                host = "127.0.0.1"
            elif name not in ("127.0.0.1", "localhost", "::1"):
                self.blocked.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"hub tests are offline: {name} blocked")
            return real(host, *args, **kwargs)

        socket.getaddrinfo = guarded
        try:
            yield
        finally:
            socket.getaddrinfo = real


class _Error(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def _paths(files: dict[str, bytes]) -> list[str]:
    """Every file and folder of a tree, sorted."""
    folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
    return sorted(set(files) | folders)


def _not_found(repo_id: str) -> _Error:
    return _Error(404, f"Repository not found: {repo_id}", "RepoNotFound")


class _Handler(QuietHandler):
    server: Any

    @property
    def hub(self) -> Hub:
        hub: Hub = self.server.state
        return hub

    # -- plumbing ---------------------------------------------------------------------------
    def _user(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.hub.tokens:
            raise _Error(401, "Invalid credentials in Authorization header")
        return self.hub.tokens[token]

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        status, user = 500, None
        try:
            user = self._user()
            self.body = self.read_body() if self.command == "POST" else b""
            status = self._route(split.path, user)
        except _Error as e:
            status = 401 if e.status == 404 and e.code == "RepoNotFound" and user is None \
                else e.status  # the Hub answers 401 to anonymous callers of private repos
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            self.send_bytes(status, json.dumps({"error": e.message}).encode(),
                            "application/json", headers)
        except Exception as e:  # an emulator bug: say so rather than hang the client
            status = 500
            self.send_bytes(500, repr(e).encode(), "text/plain", {"X-Error-Message": repr(e)})
        finally:
            with self.hub.lock:
                self.hub.log.append(Logged(self.command, split.path, user, status))

    do_GET = do_HEAD = do_POST = _dispatch

    def _json(self, obj: Any, status: int = 200) -> int:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json")
        return status

    def _route(self, path: str, user: str | None) -> int:
        for method, pattern, fn in _ROUTES:
            m = pattern.fullmatch(path)
            if m and self.command in method:
                args = (unquote(g) if g is not None else "" for g in m.groups())
                result: int = fn(self, user, *args)
                return result
        raise _Error(404, f"emulator has no route for {self.command} {path}")

    def _repo(self, kind: str, repo_id: str, user: str | None, *, write: bool = False) -> Repo:
        repo = self.hub.repos.get((_TYPES.get(kind, kind), repo_id))
        owner = repo_id.split("/")[0]
        if repo is None or (repo.private and user != owner):
            raise _not_found(repo_id)
        if write and user is None:
            raise _Error(401, "You must be authenticated to write", None)
        if write and user != owner:
            raise _Error(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _rev(self, repo: Repo, rev: str) -> Commit:
        c = repo.resolve(rev)
        if c is None:
            raise _Error(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return c

    # -- endpoints --------------------------------------------------------------------------
    def create_repo(self, user: str | None) -> int:
        if user is None:
            raise _Error(401, "You must be authenticated to create a repo")
        body = json.loads(self.body)
        namespace = body.get("organization") or user
        if namespace != user:
            raise _Error(403, f"You don't have the rights to create a repo under {namespace}")
        repo_type = body.get("type") or "model"
        repo_id = f"{namespace}/{body['name']}"
        url = f"{self.hub.url}/{_PREFIX[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._json({"error": "You already created this repo", "url": url}, 409)
            repo = Repo(repo_id, repo_type, body.get("visibility") == "private")
            repo.commit("main", "initial commit", {".gitattributes": _GITATTRIBUTES})
            self.hub.repos[(repo_type, repo_id)] = repo
        return self._json({"url": url, "name": repo_id})

    def viewer(self, user: str | None, what: str) -> int:
        """The dataset viewer, before it converted the dataset: datasets reads the repo."""
        raise _Error(404, "Not found.", "ResponseNotFound")

    def validate_yaml(self, user: str | None) -> int:
        import yaml  # pyyaml comes with huggingface_hub

        m = re.match(r"\s*---\r?\n(.*?)\r?\n---", json.loads(self.body)["content"], re.S)
        try:
            meta = yaml.safe_load(m.group(1)) if m else {}
            assert meta is None or isinstance(meta, dict), "metadata must be a mapping"
        except (yaml.YAMLError, AssertionError) as e:
            return self._json({"errors": [{"message": f"Invalid metadata: {e}"}]}, 400)
        return self._json({"errors": [], "warnings": []})

    def info(self, user: str | None, kind: str, repo_id: str, rev: str | None = None) -> int:
        repo = self._repo(kind, repo_id, user)
        c = self._rev(repo, rev or "main")
        return self._json({
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id,
            "author": repo_id.split("/")[0], "sha": c.oid, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "createdAt": _DATE, "lastModified": _DATE, "cardData": {},
            "siblings": [{"rfilename": p} for p in sorted(c.files)],
        })

    def refs(self, user: str | None, kind: str, repo_id: str) -> int:
        repo = self._repo(kind, repo_id, user)
        return self._json({"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": o}
                                        for b, o in sorted(repo.branches.items())],
                           "converts": [], "tags": [], "pullRequests": []})

    def create_branch(self, user: str | None, kind: str, repo_id: str, branch: str) -> int:
        repo = self._repo(kind, repo_id, user, write=True)
        start = json.loads(self.body or b"{}").get("startingPoint") or "main"
        with self.hub.lock:
            if branch in repo.branches:
                raise _Error(409, f"Reference refs/heads/{branch} already exists")
            repo.branches[branch] = self._rev(repo, start).oid
        return self._json({})

    def preupload(self, user: str | None, kind: str, repo_id: str, rev: str) -> int:
        repo = self._repo(kind, repo_id, user, write=True)
        have = self._rev(repo, rev).files
        files = json.loads(self.body)["files"]
        return self._json({"files": [
            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
             "oid": git_blob_sha1(have[f["path"]]) if f["path"] in have else None}
            for f in files]})

    def commit(self, user: str | None, kind: str, repo_id: str, rev: str) -> int:
        repo = self._repo(kind, repo_id, user, write=True)
        lines = [json.loads(x) for x in self.body.splitlines() if x.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        with self.hub.lock:
            head = self._rev(repo, rev)
            if rev not in repo.branches:
                raise _Error(400, f"Can only commit to a branch, not {rev}")
            parent = header.get("parentCommit")
            if parent and parent != head.oid:
                raise _Error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head.files)
            for x in lines:
                v = x["value"]
                if x["key"] == "file":
                    files[v["path"]] = base64.b64decode(v["content"])
                elif x["key"] == "deletedFile":
                    files.pop(v["path"], None)
                elif x["key"] == "deletedFolder":
                    files = {p: b for p, b in files.items()
                             if not p.startswith(v["path"].rstrip("/") + "/")}
                elif x["key"] != "header":
                    raise _Error(400, f"emulator does not take {x['key']} operations")
            c = repo.commit(rev, header["summary"], files)
        url = f"{self.hub.url}/{_PREFIX[repo.repo_type]}{repo_id}/commit/{c.oid}"
        return self._json({"success": True, "commitOid": c.oid, "commitUrl": url,
                           "pullRequestUrl": None})

    def _entry(self, files: dict[str, bytes], p: str) -> dict[str, Any]:
        if p in files:
            return {"type": "file", "path": p, "size": len(files[p]),
                    "oid": git_blob_sha1(files[p])}
        return {"type": "directory", "path": p, "size": 0,
                "oid": hashlib.sha1(p.encode()).hexdigest()}

    def tree(self, user: str | None, kind: str, repo_id: str, rev: str, sub: str = "") -> int:
        c = self._rev(self._repo(kind, repo_id, user), rev)
        sub, paths = sub.strip("/"), _paths(c.files)
        if sub and sub not in paths:
            raise _Error(404, f"{sub} does not exist on {rev}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        prefix = f"{sub}/" if sub else ""
        return self._json([self._entry(c.files, p) for p in paths if p.startswith(prefix)
                           and (recursive or "/" not in p[len(prefix):])])

    def paths_info(self, user: str | None, kind: str, repo_id: str, rev: str) -> int:
        c = self._rev(self._repo(kind, repo_id, user), rev)
        paths = set(_paths(c.files))
        wanted = [p.strip("/") for p in parse_qs(self.body.decode()).get("paths", [])]
        return self._json([self._entry(c.files, p) for p in wanted if p in paths])

    def resolve(self, user: str | None, kind: str, repo_id: str, rev: str, path: str) -> int:
        repo = self._repo(kind or "models", repo_id, user)
        c = self._rev(repo, rev)
        if path not in c.files:
            raise _Error(404, f"Entry not found: {path}", "EntryNotFound")
        data = c.files[path]
        headers = {"ETag": f'"{git_blob_sha1(data)}"', "X-Repo-Commit": c.oid,
                   "Accept-Ranges": "bytes"}
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range") or "")
        if m and data and self.command == "GET":
            start = int(m.group(1)) if m.group(1) else max(0, len(data) - int(m.group(2)))
            end = int(m.group(2)) if m.group(1) and m.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self.send_bytes(206, data[start:end + 1], "application/octet-stream", headers)
            return 206
        self.send_bytes(200, data, "application/octet-stream", headers)
        return 200


_KIND = r"(datasets|models|spaces)"
_ID = r"([^/]+/[^/]+)"
_Route = tuple[tuple[str, ...], "re.Pattern[str]", Callable[..., int]]
_ROUTES: list[_Route] = [
    (("POST",), re.compile(r"/api/repos/create"), _Handler.create_repo),
    (("POST",), re.compile(r"/api/validate-yaml"), _Handler.validate_yaml),
    (("GET",), re.compile(r"/(info|parquet)"), _Handler.viewer),
    (("GET",), re.compile(rf"/api/{_KIND}/{_ID}"), _Handler.info),
    (("GET",), re.compile(rf"/api/{_KIND}/{_ID}/revision/([^/]+)"), _Handler.info),
    (("GET",), re.compile(rf"/api/{_KIND}/{_ID}/refs"), _Handler.refs),
    (("POST",), re.compile(rf"/api/{_KIND}/{_ID}/branch/([^/]+)"), _Handler.create_branch),
    (("POST",), re.compile(rf"/api/{_KIND}/{_ID}/preupload/([^/]+)"), _Handler.preupload),
    (("POST",), re.compile(rf"/api/{_KIND}/{_ID}/commit/([^/]+)"), _Handler.commit),
    (("GET",), re.compile(rf"/api/{_KIND}/{_ID}/tree/([^/]+)(?:/(.*))?"), _Handler.tree),
    (("POST",), re.compile(rf"/api/{_KIND}/{_ID}/paths-info/([^/]+)"), _Handler.paths_info),
    (("GET", "HEAD"), re.compile(r"/(datasets/|spaces/|)([^/]+/[^/]+)/resolve/([^/]+)/(.+)"),
     lambda h, u, kind, repo_id, rev, path: h.resolve(u, kind.rstrip("/"), repo_id, rev, path)),
]

# -- session wiring -------------------------------------------------------------------------
_HUB = Hub()
_STACK = ExitStack()
_ENV_UNSET = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
              "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
              "HUGGINGFACE_CO_STAGING", "HF_DATASETS_DOWNLOADED_DATASETS_PATH")


def pytest_configure(config: pytest.Config) -> None:
    """Start the emulator and point the Hugging Face libraries at it, before any import."""
    _HUB.url = _STACK.enter_context(serve(_Handler, _HUB))
    home = tempfile.mkdtemp(prefix="cirkit-hf-home-")
    _STACK.callback(shutil.rmtree, home, ignore_errors=True)
    env = pytest.MonkeyPatch()
    _STACK.callback(env.undo)
    for k in _ENV_UNSET:
        env.delenv(k, raising=False)
    for k, v in {
        "HF_ENDPOINT": _HUB.url, "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": HUB_TOKEN,
        "HF_HOME": home, "HF_DATASETS_CACHE": os.path.join(home, "datasets"),
        "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # else datasets HEADs s3.amazonaws.com on every load
    }.items():
        env.setenv(k, v)


def pytest_unconfigure(config: pytest.Config) -> None:
    _STACK.close()


@pytest.fixture(scope="session")
def hub() -> Hub:
    """The running emulator; fails loudly if a Hugging Face library was imported too early."""
    import datasets.config
    import huggingface_hub.constants as hc

    seen = {"huggingface_hub": hc.ENDPOINT, "datasets": datasets.config.HF_ENDPOINT}
    wrong = {k: v for k, v in seen.items() if v.rstrip("/") != _HUB.url}
    if wrong:
        pytest.fail(f"{wrong} do not point at the hub emulator {_HUB.url}: something imported "
                    "them before tests.servers.hub's pytest_configure set HF_ENDPOINT")
    return _HUB
