"""``CirAgentLoop``: verl's ``AgentLoopBase`` running cirkit's CIR rollout loop, registered as
``cir_agent``.

verl (``verl/experimental/agent_loop/agent_loop.py``) builds an agent loop per sample with
``hydra.utils.instantiate`` from its registry entry, passing the trainer config, the server
manager, the tokenizer and processor, the dataset class and config, and every other key of the
entry (from ``rollout.agent.agent_loop_config_path``) as keyword arguments; then it awaits
``run(sampling_params, **row_fields)``. The keys cirkit reads are :class:`AgentSettings`'
fields. Importing this module needs verl; ``cirkit.integrations.verl`` imports it only when
``CirAgentLoop`` is asked for.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from cirkit.errors import EnvError

from ._agent import run_cir_agent
from ._settings import AGENT_NAME, AgentSettings, RowContext

try:
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopBase,
        AgentLoopMetrics,
        AgentLoopOutput,
        _agent_loop_registry,
        register,
    )
except ImportError as e:  # pragma: no cover - depends on the environment
    raise EnvError(f"the cir_agent loop needs verl, which cannot be imported here: {e}",
                   hint="install verl into the trainer's environment "
                        "(pip install 'verl==0.9.1'; see the how-to 'Train a CIR model with "
                        "verl on recorded tools')") from e

__all__ = ["CirAgentLoop"]

_NOT_SETTINGS = ("tools", "name", "_target_")


class CirAgentLoop(AgentLoopBase):  # type: ignore[misc]
    """CIR rollouts for verl: code blocks run in cirkit's sandbox, ``web_search`` and
    ``web_visit`` answered through a cirkit store (replayed during RL), observations masked
    (0 in ``response_mask``), the same turns, limits and finish reasons as ``cirkit rollout``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        own = {k: kwargs.pop(k) for k in list(kwargs)
               if k not in _BASE_KWARGS and k not in _NOT_SETTINGS}
        for k in _NOT_SETTINGS:
            kwargs.pop(k, None)
        super().__init__(*args, **kwargs)
        rollout = self.rollout_config
        self.settings = AgentSettings.from_config(
            _plain(own), response_length=int(rollout.response_length),
            prompt_length=int(rollout.prompt_length))
        model = self.config.actor_rollout_ref.model
        self.tokenizer_path = self.settings.tokenizer or str(model.path)
        self.full_determinism = bool(getattr(rollout, "full_determinism", False))

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        row = RowContext.from_kwargs(kwargs)
        prompt_length = int(self.rollout_config.prompt_length)
        request_id = f"cir-{row.question_id}-{row.sample_index}" if self.full_determinism \
            else uuid4().hex
        result = await run_cir_agent(self.settings, row, server=self.server_manager,
                                     sampling=sampling_params, tokenizer=self.tokenizer_path,
                                     request_id=request_id)
        if len(result.prompt_ids) > prompt_length:
            raise EnvError(f"the CIR prompt of question {row.question_id} has "
                           f"{len(result.prompt_ids)} tokens, over rollout.prompt_length "
                           f"{prompt_length}", setting="rollout.prompt_length",
                           hint="raise data.max_prompt_length (verl drops longer prompts "
                                "with data.filter_overlong_prompts=True)")
        n = int(self.rollout_config.response_length)
        return AgentLoopOutput(
            prompt_ids=result.prompt_ids, response_ids=result.response_ids[:n],
            response_mask=result.response_mask[:n], num_turns=result.num_turns,
            metrics=AgentLoopMetrics(generate_sequences=result.generate_seconds,
                                     tool_calls=result.tool_seconds),
            extra_fields=result.extra_fields())


# Registered under cir_agent unless an agent loop config already named it: verl's worker loads
# that config first, and hydra imports this module while making the first loop, so an
# unconditional registration would replace the configured entry (its settings) by a bare one.
if AGENT_NAME not in _agent_loop_registry:
    register(AGENT_NAME)(CirAgentLoop)

#: The keyword arguments verl's worker passes to every agent loop.
_BASE_KWARGS = ("trainer_config", "server_manager", "tokenizer", "processor", "dataset_cls",
                "data_config", "hf_model_type")


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """OmegaConf values (hydra hands DictConfig nodes through) as plain Python."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - verl always brings omegaconf
        return values
    return {k: OmegaConf.to_container(v, resolve=True)
            if isinstance(v, DictConfig | ListConfig) else v for k, v in values.items()}
