"""The public names are a contract: changing them is a deliberate act, not an accident."""

import recorders
import recorders.backends


def test_recorders_public_names() -> None:
    assert sorted(recorders.__all__) == sorted([
        "COMPLETION", "EXECUTION", "Fetch", "RENDERER_VERSION", "SEARCH", "VISIT", "Backend",
        "BackendError", "BlobCorruptError",
        "Entry", "InMemoryBackend", "MissingCredentialError", "Mode", "PackError", "PackResult",
        "Recorder", "RecordersError", "RenderOptions", "ReplayMissError", "Response", "Store",
        "StoreError", "StoreInfo", "ToolResult", "UnpackResult", "VerifyReport",
        "canonical_json", "make_backend", "make_key", "normalise_query", "normalise_url",
        "pack", "read_manifest", "render", "unpack",
    ])
    for name in recorders.__all__:
        assert getattr(recorders, name) is not None


def test_backend_registry() -> None:
    assert list(recorders.backends.SEARCH_BACKENDS) == [
        "local", "serper", "tavily", "brave", "searxng", "retrieval"]
    assert list(recorders.backends.VISIT_BACKENDS) == ["local", "fetch", "jina", "serper"]


def test_recorders_never_imports_cirkit() -> None:
    import subprocess
    import sys

    code = ("import sys, recorders, recorders.backends; "
            "assert not any(m == 'cirkit' or m.startswith('cirkit.') for m in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
