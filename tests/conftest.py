"""Shared fixtures: each real server lives in its own module under tests/servers/."""

pytest_plugins = [
    "tests.servers.site", "tests.servers.providers", "tests.servers.fake_vllm",
    "tests.servers.vllm", "tests.servers.hub", "tests.servers.toolserver", "pytester",
]
