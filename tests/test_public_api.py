"""The public names are a contract: changing them is a deliberate act, not an accident."""

import recorders
import recorders.backends


def test_recorders_public_names() -> None:
    assert sorted(recorders.__all__) == sorted([
        "COMPLETION", "EXECUTION", "Fetch", "RENDERER_VERSION", "SEARCH", "VISIT", "Backend",
        "BackendError", "BlobCorruptError",
        "Entry", "InMemoryBackend", "InvalidCallError", "MissingCredentialError", "Mode",
        "PackError", "PackResult",
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


def test_cirkit_public_names() -> None:
    import importlib

    pinned = {
        "cirkit.llm": ["BACKEND_NAME", "Completion", "CompletionClient", "LLMError",
                       "ModelNotFoundError", "OpenAICompletionClient", "Sampling",
                       "ServerUnreachableError", "VllmServer", "VllmServerError",
                       "card_rope_scaling", "completion_args", "derive_seed", "prompt_sha256"],
        "cirkit.rollout": ["ChatTokenizer", "Question", "ROLLOUT_FORMAT_VERSION",
                           "RolloutConfig", "RolloutJob", "RolloutLimits", "RolloutWriter",
                           "RunStats", "exec_runner", "load_questions", "read_trajectories",
                           "run_all", "run_job", "run_rollout", "trajectory_id"],
        "cirkit.datasets": ["BUILD_FORMAT_VERSION", "BuildResult", "BuildTokenizer", "Filter",
                            "FilterStats", "Funnel", "IGNORE_INDEX", "RLOptions", "RejectSink",
                            "SFTOptions", "SFTRow", "SFT_SCHEMA", "Verdict", "build_rl",
                            "build_sft", "fingerprint", "load_eval_questions",
                            "normalize_answer", "rich_report", "rl_schema", "split_pieces"],
        "cirkit.hub": ["HubError", "PullResult", "PushResult", "STORE_PATH", "UploadFile",
                       "pull", "push_folder"],
        "cirkit.sandbox": ["DEFAULT_PRELOAD", "DEFAULT_UID_BASE", "ExecResult", "GiB", "Limits",
                           "MiB", "REASONS", "Sandbox", "SandboxError", "Session", "ToolCall",
                           "ToolError"],
        "cirkit.pytest_plugin": ["CirkitTools", "NetworkBlockedError", "cirkit_backends",
                                 "cirkit_llm", "cirkit_mode", "cirkit_recorder", "cirkit_store",
                                 "cirkit_tools"],
    }
    for module, names in pinned.items():
        mod = importlib.import_module(module)
        assert sorted(mod.__all__) == sorted(names), module
        for name in names:
            assert getattr(mod, name) is not None, f"{module}.{name}"
