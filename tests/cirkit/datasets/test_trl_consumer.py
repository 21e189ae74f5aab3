"""TRL's ``SFTTrainer`` trains on a dataset made by ``cirkit build sft``, with the tiny CIR model,
and its own collator hands the model exactly the labels cirkit wrote: -100 on the prompt and on
every observation token, the token id on everything the model generated.

Runs under the vLLM venv's python (torch, transformers) with the pinned TRL installed beside
vLLM (``cirkit.testing.trl_env``), offline.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from itertools import groupby
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cirkit.cir import render_messages, wrap_observation
from cirkit.datasets import IGNORE_INDEX, BuildTokenizer, build_sft
from cirkit.rollout import ChatTokenizer
from cirkit.testing import TRL_SPEC

from .conftest import ANSWER, CODE, CODE2, DATE, OBS, OBS2, THINK, cir_text, trajectory, write_jsonl

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

_SCRIPT = Path(__file__).with_name("_trl_sft.py")
Q = "What is the capital of France?"
MAX_STEPS = 4
BATCH = 2


def _runs(ids: list[int], labels: list[int], tok: ChatTokenizer) -> list[tuple[str, bool]]:
    """The row cut where masking switches: (decoded text, trained) for each run."""
    pairs = list(zip(ids, labels, strict=True))
    return [(tok.decode([t for t, _ in run]), not masked)
            for masked, run in ((m, list(r)) for m, r in
                                groupby(pairs, key=lambda p: p[1] == IGNORE_INDEX))]


def _build(model_dir: Path, tmp_path: Path) -> tuple[Path, list[dict[str, Any]],
                                                      list[list[tuple[str, bool]]]]:
    """Trajectories (ids as a server sent them) and text-only traces (tokenized by the
    builder), with the runs each row must have: prompt masked, generated text trained,
    observations masked."""
    tok = ChatTokenizer(model_dir)
    recs = [trajectory(tok, Q, [CODE, ANSWER], [OBS]),
            trajectory(tok, Q, [CODE, CODE2, ANSWER], [OBS, OBS2], sample=1)]
    write_jsonl(tmp_path / "roll" / "rollouts-00000-of-00001.jsonl", recs)
    texts = [{"id": "t0", "question": "Where is Paris?",
              "response": cir_text([CODE, CODE2, ANSWER], [OBS, OBS2])},
             {"id": "t1", "question": "Which city is the capital of France?",
              "response": cir_text([CODE, ANSWER], [OBS2])}]
    teacher = write_jsonl(tmp_path / "teacher.jsonl", texts)
    out = tmp_path / "sft"
    res = build_sft([tmp_path / "roll", teacher], out, tokenizer=BuildTokenizer(model_dir))
    assert res.report["decode_mismatches"] == 0
    rows = [r for s in res.shards for r in pq.read_table(s).to_pylist()]
    expected: list[list[tuple[str, bool]]] = []
    for gens, obs, prompt in (
            ([CODE, ANSWER], [OBS], recs[0]["prompt_text"]),
            ([CODE, CODE2, ANSWER], [OBS, OBS2], recs[1]["prompt_text"]),
            ([THINK + CODE, CODE2, ANSWER + "<|im_end|>"], [OBS, OBS2],
             tok.chat_prompt(render_messages("Where is Paris?", date=DATE))),
            ([THINK + CODE, ANSWER + "<|im_end|>"], [OBS2], tok.chat_prompt(
                render_messages("Which city is the capital of France?", date=DATE)))):
        runs = [(prompt, False)]
        for k, g in enumerate(gens):
            runs.append((g, True))
            if k < len(obs):
                runs.append(("\n" + wrap_observation(obs[k]), False))
        expected.append(runs)
    # What cirkit meant, checked on the parquet before TRL sees it.
    assert [r["trajectory_id"] for r in rows] == ["q1-0", "q1-1", "t0", "t1"]
    for row, runs in zip(rows, expected, strict=True):
        assert _runs(row["input_ids"], row["labels"], tok) == runs
    return out, rows, expected


def _run_trainer(python: Path, model_dir: Path, dataset: Path, tmp_path: Path
                 ) -> dict[str, Any]:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"model": str(model_dir), "output_dir": str(tmp_path / "run"),
                                "max_steps": MAX_STEPS, "batch_size": BATCH}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([str(python), "-I", str(_SCRIPT), str(spec)], cwd=dataset, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        pytest.fail(f"SFTTrainer run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    sys.stderr.write(proc.stderr[-2000:])
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return data


def _unpad(ids: list[int], attention: list[int], labels: list[int]
           ) -> tuple[list[int], list[int]]:
    n = sum(attention)
    assert attention == [1] * n + [0] * (len(ids) - n)  # right padding
    assert labels[n:] == [IGNORE_INDEX] * (len(ids) - n)  # padding never trained
    return ids[:n], labels[:n]


def test_sft_trainer_trains_on_exactly_the_tokens_cirkit_labelled(
        trl_python: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    dataset, rows, expected = _build(tiny_model_dir, tmp_path)
    assert "max_length=None" in (dataset / "README.md").read_text()  # the card's advice, used
    out = _run_trainer(trl_python, tiny_model_dir, dataset, tmp_path)
    assert out["trl"] == TRL_SPEC.split("==")[1]
    assert out["dtype"] == "torch.float32"
    # TRL took the rows as pre-tokenized: nothing re-tokenized from `messages`, no column added.
    assert out["prepared_columns"] == out["columns"]
    tok = ChatTokenizer(tiny_model_dir)
    by_ids = {tuple(r["input_ids"]): (r, runs) for r, runs in zip(rows, expected, strict=True)}

    # Every row through TRL's own collator: labels are ours, -100 exactly on the prompt and
    # the observations (and the padding); nothing truncated.
    c = out["collated"]
    assert len(c["input_ids"]) == len(rows)
    for ids, att, lab, row, runs in zip(c["input_ids"], c["attention_mask"], c["labels"], rows,
                                        expected, strict=True):
        ids, lab = _unpad(ids, att, lab)
        assert ids == row["input_ids"] and len(ids) == row["num_tokens"]
        assert lab == row["labels"]
        assert _runs(ids, lab, tok) == runs

    # A batch from the trainer's dataloader, as the model gets it in training.
    b = out["batch"]
    assert set(b) == {"input_ids", "attention_mask", "labels"}
    assert len(b["input_ids"]) == BATCH
    for ids, att, lab in zip(b["input_ids"], b["attention_mask"], b["labels"], strict=True):
        ids, lab = _unpad(ids, att, lab)
        row, runs = by_ids[tuple(ids)]
        assert lab == row["labels"] and _runs(ids, lab, tok) == runs

    # It trained: the steps ran, the losses are finite, every trainable tensor moved.
    assert out["steps"] == MAX_STEPS
    assert len(out["losses"]) == MAX_STEPS and out["losses_finite"]
    assert all(0 < x < 20 for x in out["losses"]) and math.isfinite(out["train_loss"])
    assert out["trainable_tensors"] > 0
    assert out["changed_tensors"] == out["trainable_tensors"]
    print(json.dumps({k: out[k] for k in ("losses", "import_seconds", "init_seconds",
                                          "train_seconds", "seconds")}))
