"""Run under the vLLM venv's python (torch, transformers, TRL), not cirkit's: TRL's
``SFTTrainer`` trains a few steps on a dataset folder made by ``cirkit build sft``.

Usage: ``python -I _trl_sft.py SPEC.json`` with the dataset folder as the working directory,
so the parquet is loaded exactly as the dataset card's usage says. SPEC: ``model`` (directory),
``output_dir``, ``max_steps``, ``batch_size``. Prints one JSON line: the steps and losses, what
TRL's own collator and dataloader hand the model (input_ids, attention_mask, labels), and how
many trainable tensors changed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)
    started = time.perf_counter()
    import datasets
    import torch
    import trl
    from trl import SFTConfig, SFTTrainer

    imported = time.perf_counter() - started
    torch.manual_seed(0)
    ds = datasets.load_dataset("parquet", data_files="data/train-*.parquet", split="train")
    config = SFTConfig(
        output_dir=spec["output_dir"], max_steps=spec["max_steps"],
        per_device_train_batch_size=spec["batch_size"], learning_rate=1e-3,
        lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, report_to=[],
        save_strategy="no", use_cpu=True, bf16=False, fp16=False,  # the model is float32
        gradient_checkpointing=False, max_length=None,  # never cut a row: rows are <=26000
        dataloader_num_workers=0, seed=0, disable_tqdm=True,
    )
    mark = time.perf_counter()
    trainer = SFTTrainer(model=spec["model"], args=config, train_dataset=ds)
    init = time.perf_counter() - mark
    model = trainer.model
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    # What the trainer feeds the model: every prepared row through its own collator, and the
    # first batch of its own dataloader (unused columns removed, as in training).
    prepared = trainer.train_dataset
    collated = trainer.data_collator([prepared[i] for i in range(len(prepared))])
    batch = next(iter(trainer.get_train_dataloader()))

    mark = time.perf_counter()
    result = trainer.train()
    train = time.perf_counter() - mark
    after = dict(model.named_parameters())
    changed = [n for n, p in before.items() if not torch.equal(p, after[n].detach())]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    out = {
        "trl": trl.__version__, "torch": torch.__version__,
        "dtype": str(next(model.parameters()).dtype),
        "columns": ds.column_names, "prepared_columns": prepared.column_names,
        "steps": trainer.state.global_step, "losses": losses,
        "losses_finite": all(math.isfinite(x) for x in losses),
        "train_loss": result.training_loss,
        "trainable_tensors": len(before), "changed_tensors": len(changed),
        "collated": {k: v.tolist() for k, v in collated.items()},
        "batch": {k: v.tolist() for k, v in batch.items()},
        "import_seconds": round(imported, 1), "init_seconds": round(init, 1),
        "train_seconds": round(train, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
