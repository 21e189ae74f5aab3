"""recorders: every tool response a run takes from outside, captured and replayed exactly.

It knows nothing about CIR (it never imports ``cirkit``): a Store of content-addressed blobs, a
Recorder that serves ``web_search``/``web_visit`` through it in a Mode, and the backends.
"""

from ._canonical import (
    COMPLETION,
    EXECUTION,
    MAX_QUERY_CHARS,
    MAX_URL_CHARS,
    SEARCH,
    VISIT,
    canonical_json,
    make_key,
    normalise_query,
    normalise_url,
)
from ._errors import (
    BackendError,
    BlobCorruptError,
    InvalidCallError,
    MissingCredentialError,
    PackError,
    RecordersError,
    ReplayMissError,
    StoreError,
)
from ._merge import MergeConflict, MergeConflictError, MergeResult, merge_stores
from ._modes import Mode
from ._pack import PackResult, UnpackResult, pack, pack_renderer, read_manifest, unpack
from ._payload import PAYLOAD_VERSION
from ._recorder import Fetch, Recorder, ToolResult
from ._render import RENDERER_VERSION, RENDERER_VERSIONS, RenderOptions, render
from ._repair import ReindexReport, reindex
from ._retrieve import (
    RetrieveRequest,
    parse_retrieve,
    retrieve_answer,
    retrieve_document,
    stored_search_documents,
)
from ._store import ENTRY_VERSION, STORE_VERSION, Entry, Store, StoreInfo, VerifyReport
from .backends import Backend, InMemoryBackend, Response, make_backend

__all__ = [
    "COMPLETION",
    "ENTRY_VERSION",
    "EXECUTION",
    "MAX_QUERY_CHARS",
    "MAX_URL_CHARS",
    "PAYLOAD_VERSION",
    "RENDERER_VERSION",
    "RENDERER_VERSIONS",
    "SEARCH",
    "STORE_VERSION",
    "VISIT",
    "Backend",
    "BackendError",
    "BlobCorruptError",
    "Entry",
    "Fetch",
    "InMemoryBackend",
    "InvalidCallError",
    "MergeConflict",
    "MergeConflictError",
    "MergeResult",
    "MissingCredentialError",
    "Mode",
    "PackError",
    "PackResult",
    "Recorder",
    "RecordersError",
    "ReindexReport",
    "RenderOptions",
    "ReplayMissError",
    "Response",
    "RetrieveRequest",
    "Store",
    "StoreError",
    "StoreInfo",
    "ToolResult",
    "UnpackResult",
    "VerifyReport",
    "canonical_json",
    "make_backend",
    "make_key",
    "merge_stores",
    "normalise_query",
    "normalise_url",
    "pack",
    "pack_renderer",
    "parse_retrieve",
    "read_manifest",
    "reindex",
    "render",
    "retrieve_answer",
    "retrieve_document",
    "stored_search_documents",
    "unpack",
]
