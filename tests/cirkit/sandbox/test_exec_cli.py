"""``cirkit exec``: one block, run as a rollout would, printed as the model sees it."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import exec_cmd
from recorders import InMemoryBackend, Recorder, Store

from .test_tools import search_answer


def test_exec_prints_the_observation(tmp_path: Path) -> None:
    block = tmp_path / "block.py"
    block.write_text("print('hello')\nprint(undefined)\n")
    r = CliRunner().invoke(exec_cmd, [str(block), "--verbose"])
    assert r.exit_code == 0, r.output
    assert r.stdout == ('```output\nhello\nTraceback (most recent call last):\n'
                        '  File "<string>", line 2, in <module>\n'
                        "NameError: name 'undefined' is not defined\n\n```\n")
    assert "isolation: " in r.stderr and "error: exception" in r.stderr


def test_exec_replays_tool_calls_from_a_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rec = Recorder(Store(store), search=InMemoryBackend("web_search", search_answer),
                   mode="record")
    rec.call_sync("web_search", {"query": "night watch", "num_results": 1})
    assert rec.store is not None
    rec.store.close()
    block = tmp_path / "trace.txt"  # a CIR code block, as the model writes it
    block.write_text("<start_code>\n```python\nprint(web_search('night watch', num_result=1))"
                     "\n```<end_code>")
    r = CliRunner().invoke(exec_cmd, [str(block), "--store", str(store), "--mode", "replay",
                                      "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["observation"].startswith("```output\n\nIndex: 0\nURL: https://e.org/0\n")
    assert out["error"] is None and out["isolation"] in ("netns", "audit-hook")
    assert out["tool_calls"][0]["args"] == {"query": "night watch", "num_results": 1}
    assert len(out["tool_calls"][0]["key"]) == 64

    miss = tmp_path / "miss.py"
    miss.write_text("print(web_visit('https://not.recorded/'))")
    r = CliRunner().invoke(exec_cmd, [str(miss), "--store", str(store), "--mode", "replay"])
    assert r.exit_code == 0
    assert "ToolError: web_visit failed: strict replay" in r.stdout


def test_exec_timeout_and_tokenizer(tmp_path: Path, tiny_tokenizer_path: Path) -> None:
    block = tmp_path / "loop.py"
    block.write_text("print('x' * 20000)\nwhile True:\n    pass\n")
    r = CliRunner().invoke(exec_cmd, [str(block), "--timeout", "0.5", "--tokenizer",
                                      str(tiny_tokenizer_path), "--max-tokens", "50", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["error"] == "timeout"
    assert out["observation"].startswith("```output\nxxx") and "truncated" in out["observation"]


def test_exec_in_audit_hook_mode_says_it_is_weaker(tmp_path: Path) -> None:
    block = tmp_path / "block.py"
    block.write_text("print('hello')\n")
    r = CliRunner().invoke(exec_cmd, [str(block), "--isolation", "audit-hook"])
    assert r.exit_code == 0, r.output
    assert r.stdout == "```output\nhello\n\n```\n"
    assert any(line.startswith("warning: the sandbox ran in audit-hook mode")
               for line in r.stderr.splitlines()), r.stderr
