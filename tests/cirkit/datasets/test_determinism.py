"""Same inputs, same bytes: shards, fingerprint, card, report and plots, whatever the hash
seed of the process that builds them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cirkit.rollout import ChatTokenizer

from .conftest import ANSWER, CODE, CODE2, OBS, OBS2, cir_text, trajectory, write_jsonl

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = """
import json, sys
from pathlib import Path
from cirkit.datasets import RLOptions, SFTOptions, build_rl, build_sft
inputs, out, tok = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sft = build_sft(inputs["sft"], out / "sft", tokenizer=tok, options=SFTOptions(
    shard_rows=3, row_group_rows=2, reject=out / "rejects.jsonl", require_correct=True))
rl = build_rl(inputs["rl"], out / "rl", tokenizer=tok,
              options=RLOptions(shard_rows=2, exclude_eval=(Path(inputs["eval"]),)))
print(json.dumps({"sft": sft.fingerprint, "rl": rl.fingerprint}))
"""


def _inputs(tok: ChatTokenizer, tmp: Path) -> dict[str, object]:
    recs = [trajectory(tok, f"Question {i}?", [CODE, CODE2, ANSWER], [OBS, OBS2], qid=f"q{i}",
                       ground_truth="Paris" if i % 3 else "Lyon") for i in range(7)]
    recs.append({**recs[1], "id": "dup"})
    traj = write_jsonl(tmp / "in" / "rollouts" / "rollouts-00000-of-00001.jsonl", recs)
    text = write_jsonl(tmp / "in" / "teacher.jsonl", [
        {"question": f"Text question {i}?", "response": cir_text([CODE, ANSWER], [OBS]),
         "answer": "Paris", "judge": ["A", "B"][i % 2]} for i in range(5)])
    qs = write_jsonl(tmp / "in" / "questions.jsonl", [
        {"question": f"Question number {i}?", "answer": [f"a{i}", "b"] if i % 2 else f"a{i}"}
        for i in range(6)])
    ev = write_jsonl(tmp / "in" / "eval.jsonl", [{"question": "question NUMBER 3"}])
    return {"sft": [str(traj.parent), str(text)], "rl": str(qs), "eval": str(ev)}


def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_two_builds_under_different_hash_seeds_are_byte_identical(
        chat_tokenizer: ChatTokenizer, tmp_path: Path) -> None:
    inputs = json.dumps(_inputs(chat_tokenizer, tmp_path))
    results = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "TRANSFORMERS_VERBOSITY": "error",
               "PYTHONPATH": str(ROOT)}
        out = tmp_path / f"out-{seed}"
        p = subprocess.run([sys.executable, "-c", SCRIPT, inputs, str(out), chat_tokenizer.name],
                           capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
                           timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        results.append((json.loads(p.stdout.strip().splitlines()[-1]), _files(out)))
    (fp1, files1), (fp2, files2) = results
    assert fp1 == fp2
    assert sorted(files1) == sorted(files2)
    assert "sft/data/train-00002-of-00003.parquet" in files1
    assert "rl/data/train-00000-of-00003.parquet" in files1
    assert {"sft/plots/num_tokens.png", "sft/plots/code_blocks.png",
            "rl/plots/prompt_tokens.png"} <= set(files1)
    for name in files1:
        assert files1[name] == files2[name], name
    build = json.loads(files1["sft/build.json"])
    assert build["fingerprint"] == fp1["sft"]
    # trajectories: 3 of 7 wrong, 1 duplicate; text: 2 of 5 judged incorrect
    assert (build["funnel"]["rows_in"], build["funnel"]["rows_out"]) == (13, 7)
    for name, data in files1.items():
        if name.endswith((".json", ".md", ".jsonl")):
            assert str(tmp_path).encode() not in data, name
