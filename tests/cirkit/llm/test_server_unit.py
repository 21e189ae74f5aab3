"""``VllmServer`` and ``cirkit serve`` with a fake "python" standing in for vLLM (fast).

The fake is a shell script given as ``python=``: it either dies with a message (like vLLM on a
bogus model path), hangs, or runs a tiny HTTP server with vLLM's ``/health`` and ``/v1/models``
that also leaves a grandchild process behind, so stopping must clear the process group.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cirkit.cli import parse_rope_scaling, serve
from cirkit.llm import (
    CPU_ENV,
    VllmServer,
    VllmServerError,
    card_rope_scaling,
    free_port,
    rope_overrides,
)

_SERVER = r'''
import json, subprocess, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
port = int(args[args.index("--port") + 1])
name = args[args.index("--served-model-name") + 1]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(args[args.index("--model") + 1] + "/grandchild.pid", "w").write(str(child.pid))
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        body = b"" if self.path == "/health" else json.dumps(
            {"object": "list", "data": [{"id": name, "object": "model"}]}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
print("fake vllm serving", name, flush=True)
HTTPServer(("127.0.0.1", port), H).serve_forever()
'''


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a process we did not reap still answers kill(0): look at its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_dead_server_error_carries_the_log_tail(tmp_path: Path) -> None:
    py = _fake_python(tmp_path, 'echo "INFO loading model $4"\n'
                                'echo "OSError: no config.json in $4" >&2\nexit 3')
    server = VllmServer(tmp_path / "no-such-model", python=py, startup_timeout=30,
                        log_path=tmp_path / "server.log")
    with pytest.raises(VllmServerError) as err:
        server.start()
    msg = str(err.value)
    assert "exited with code 3 before it was ready" in msg
    assert f"OSError: no config.json in {tmp_path / 'no-such-model'}" in msg
    assert "INFO loading model" in msg
    assert "vllm.entrypoints.openai.api_server" in (err.value.hint or "")
    assert not server.running


def test_timeout_kills_the_server_and_says_so(tmp_path: Path) -> None:
    py = _fake_python(tmp_path, 'echo "still compiling kernels"\nexec sleep 600')
    server = VllmServer("m", python=py, startup_timeout=1.0, stop_timeout=5,
                        log_path=tmp_path / "server.log")
    t = time.monotonic()
    with pytest.raises(VllmServerError, match="was not ready after 1 s") as err:
        server.start()
    assert time.monotonic() - t < 15
    assert "still compiling kernels" in str(err.value)
    assert server.pid is not None and not _alive(server.pid)


def test_missing_python_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VllmServerError, match="cannot run"):
        VllmServer("m", python=tmp_path / "nope", log_path=tmp_path / "server.log").start()


def test_ready_then_stopped_with_its_process_group(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(_SERVER)
    py = _fake_python(tmp_path, f'shift 2\nexec "{sys.executable}" "{tmp_path}/server.py" "$@"')
    model = tmp_path / "model"
    model.mkdir()
    with VllmServer(model, python=py, served_model_name="tiny", cpu=True,
                    log_path=tmp_path / "log" / "server.log") as server:
        assert server.running
        models = httpx.get(f"{server.base_url}/v1/models", trust_env=False).json()
        assert models["data"][0]["id"] == "tiny"
        grandchild = int((model / "grandchild.pid").read_text())
        assert _alive(grandchild)
    assert not server.running
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
    assert "fake vllm serving tiny" in server.log_tail()
    server.stop()  # idempotent


def test_command_and_environment(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}))
    s = VllmServer(tmp_path, python="/x/python", port=8123, cpu=True, max_model_len=4096,
                   rope_scaling=card_rope_scaling(), extra_args=["--seed", "0"])
    cmd = s.command
    assert cmd[:3] == ["/x/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--port") + 1] == "8123" and s.base_url == "http://127.0.0.1:8123"
    assert cmd[cmd.index("--gpu-memory-utilization") + 1] == "0.3"
    assert cmd[cmd.index("--max-model-len") + 1] == "4096" and cmd[-2:] == ["--seed", "0"]
    assert json.loads(cmd[cmd.index("--hf-overrides") + 1]) == {"rope_scaling": {
        "rope_theta": 1000000.0, "rope_type": "yarn", "factor": 4.0,
        "original_max_position_embeddings": 32768}}
    assert s.env["VLLM_CPU_KVCACHE_SPACE"] == CPU_ENV["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert s.served_model_name == str(tmp_path)
    plain = VllmServer("Org/Model", python="p", port=1)
    assert "--gpu-memory-utilization" not in plain.command
    assert "VLLM_CPU_KVCACHE_SPACE" not in plain.env
    with pytest.raises(ValueError, match="hf-overrides"):
        VllmServer("m", rope_scaling={"factor": 2}, extra_args=["--hf-overrides", "{}"])


def test_rope_overrides_keep_a_legacy_top_level_theta(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"rope_theta": 5e5}))
    assert rope_overrides(tmp_path, {"rope_type": "yarn", "factor": 4.0}) == {
        "rope_scaling": {"rope_theta": 5e5, "rope_type": "yarn", "factor": 4.0}}


def test_rope_overrides_without_a_local_config() -> None:
    assert rope_overrides("Org/Model", {"rope_type": "yarn", "factor": 4.0}) == {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
    assert card_rope_scaling() == {"rope_type": "yarn", "factor": 4.0,
                                   "original_max_position_embeddings": 32768}


def test_parse_rope_scaling() -> None:
    assert parse_rope_scaling("card") == card_rope_scaling()
    assert parse_rope_scaling("none") is None
    assert parse_rope_scaling('{"rope_type": "linear", "factor": 2}') == {
        "rope_type": "linear", "factor": 2}
    with pytest.raises(Exception, match="JSON object"):
        parse_rope_scaling("[1]")


def test_cli_serve_reports_a_dying_server(tmp_path: Path) -> None:
    py = _fake_python(tmp_path, 'echo "ValueError: bad model" >&2\nexit 1')
    result = CliRunner().invoke(serve, ["some-model", "--python", str(py), "--port", "0",
                                        "--log", str(tmp_path / "server.log"), "--cpu", "--",
                                        "--enforce-eager"])
    assert isinstance(result.exception, VllmServerError)
    assert "ValueError: bad model" in str(result.exception)
    assert "--enforce-eager" in (result.exception.hint or "")


def test_cli_serve_prints_the_url_and_stops_on_interrupt(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "server.py").write_text(_SERVER)
    py = _fake_python(tmp_path, f'shift 2\nexec "{sys.executable}" "{tmp_path}/server.py" "$@"')
    model = tmp_path / "model"
    model.mkdir()

    def interrupt(self: VllmServer) -> int:  # Ctrl-C while the server runs
        raise KeyboardInterrupt

    monkeypatch.setattr(VllmServer, "wait", interrupt)
    port = str(free_port())
    result = CliRunner().invoke(serve, [str(model), "--python", str(py), "--port", port,
                                        "--log", str(tmp_path / "server.log")])
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}/v1" in result.output
    grandchild = int((model / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)
