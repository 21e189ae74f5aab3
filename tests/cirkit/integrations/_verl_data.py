"""Run under the vLLM venv's python with the pinned verl (not cirkit's): verl's own
``RLHFDataset`` and ``collate_fn`` read ``cirkit build rl`` parquet files, and verl's own reward
loading (``custom_reward_function``) and naive reward manager score responses on those rows.

Usage: ``python _verl_data.py SPEC.json``. SPEC: ``files`` (parquet paths, read together as
one dataset), ``model`` (tokenizer directory), ``reward_path``, ``responses`` (one response
text per row, in order), ``reward_kwargs``. Prints one JSON line: the rows verl hands the
trainer, the collated batch's keys and sizes, and each reward manager result.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    tok = AutoTokenizer.from_pretrained(spec["model"], local_files_only=True)
    data_config = OmegaConf.create({
        "prompt_key": "prompt", "max_prompt_length": 4096, "filter_overlong_prompts": True,
        "return_raw_chat": True, "truncation": "error", "cache_dir": spec["cache_dir"]})
    ds = RLHFDataset(data_files=spec["files"], tokenizer=tok, config=data_config)
    items = [ds[i] for i in range(len(ds))]
    batch = collate_fn(items)

    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, np.ndarray)):
            return [plain(x) for x in v]
        if isinstance(v, np.generic):
            return v.item()
        return v

    rows = [{k: plain(item[k]) for k in ("raw_prompt", "index", "data_source", "reward_model",
                                          "extra_info", "agent_name") if k in item}
            for item in items]
    config = OmegaConf.create({"reward": {
        "custom_reward_function": {"path": spec["reward_path"], "name": "compute_score",
                                   "reward_kwargs": spec.get("reward_kwargs", {})},
        "reward_manager": {"source": "register", "name": "naive"}}})
    manager = load_reward_manager(config, tok)
    results = []
    for item, text in zip(items, spec["responses"], strict=True):
        ids = tok.encode(text, add_special_tokens=False)
        responses = torch.tensor([ids], dtype=torch.int64)
        data = DataProto.from_dict(
            tensors={"responses": responses,
                     "attention_mask": torch.ones_like(responses)},
            non_tensors={k: np.array([item[k]], dtype=object)
                         for k in ("data_source", "reward_model", "extra_info")})
        out = manager.loop.run_until_complete(manager.run_single(data))  # its own loop
        results.append({"score": float(out["reward_score"]),
                        "extra": {k: plain(v) for k, v in out["reward_extra_info"].items()
                                  if k in ("acc", "pred", "metric", "reason")}})
    print(json.dumps({
        "rows": rows,
        "batch": {k: (list(v.shape) if isinstance(v, torch.Tensor) else len(v))
                  for k, v in batch.items()},
        "agent_names": plain(batch.get("agent_name", [])),
        "rewards": results,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
