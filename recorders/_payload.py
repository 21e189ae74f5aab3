"""The payload: what an answer's blob holds, and what makes an entry mean what it says.

Version 2 (written since issue 14) holds the question beside the answer::

    {"version": 2, "tool", "args", "backend", "status", "refs", "data"}

so a blob alone says which key it answers: ``store verify`` and ``unpack`` check that an entry's
blob answers the entry's own question, and ``reindex`` rebuilds a lost index from the blobs.
Version 1 (``{"version": 1, "tool", "data"}``) stays readable; its blob cannot name its
question, so only its tool is checked and a lost index cannot be rebuilt from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from ._canonical import canonical_json, json_loads

__all__ = ["PAYLOAD_VERSION", "encode_payload", "entry_key", "is_key", "payload_problem",
           "read_payload"]

PAYLOAD_VERSION = 2
_READABLE = (1, 2)
is_key = re.compile(r"[0-9a-f]{64}").fullmatch


def entry_key(tool: str, args: dict[str, Any]) -> str:
    """The key of a call whose arguments are already normalised (what ``make_key`` hashes)."""
    return hashlib.sha256(canonical_json({"tool": tool, "args": args})).hexdigest()


def encode_payload(tool: str, args: dict[str, Any], data: dict[str, Any], *, backend: str,
                   status: str, refs: Sequence[str]) -> bytes:
    return canonical_json({"version": PAYLOAD_VERSION, "tool": tool, "args": args,
                           "backend": backend, "status": status, "refs": list(refs),
                           "data": data})


def read_payload(blob: bytes) -> dict[str, Any]:
    """The decoded payload; ValueError naming what is wrong for bytes that are not one."""
    try:
        p = json_loads(blob)
    except ValueError:
        raise ValueError("its blob is not JSON") from None
    if type(p) is not dict:
        raise ValueError("its blob is not a JSON object")
    if p.get("version") not in _READABLE:
        raise ValueError(f"its blob has payload version {p.get('version')!r}, not one of "
                         f"{', '.join(map(str, _READABLE))}")
    if type(p.get("tool")) is not str or type(p.get("data")) is not dict:
        raise ValueError("its blob lacks a 'tool' string or a 'data' object")
    if p["version"] >= 2 and (
            type(p.get("args")) is not dict or type(p.get("backend")) is not str
            or type(p.get("status")) is not str or type(p.get("refs")) is not list
            or not all(type(r) is str for r in p["refs"])):
        raise ValueError("its blob lacks the 'args', 'backend', 'status' or 'refs' of "
                             "payload version 2")
    return p


def payload_problem(key: str, tool: str, args: dict[str, Any], refs: Sequence[str],
                    blob: bytes) -> str | None:
    """Why the entry (key, tool, args, refs) does not mean what it says, or None: its key must
    be a key and the hash of its own arguments, its blob a payload of its tool and, in
    version 2, of its arguments and refs."""
    if is_key(key) is None:
        return f"has the key {key[:80]!r}, not 64 lower-case hex digits"
    if entry_key(tool, args) != key:
        return "has a key that is not the hash of its tool and arguments"
    try:
        p = read_payload(blob)
    except ValueError as e:
        return str(e)
    if p["tool"] != tool:
        return f"is a {tool} entry whose blob answers {p['tool']}"
    if p["version"] >= 2:
        if canonical_json(p["args"]) != canonical_json(args):
            return "names a blob that answers another question (its arguments differ)"
        if list(refs) != p["refs"]:
            return "names other blobs than its answer does (refs differ)"
    return None
