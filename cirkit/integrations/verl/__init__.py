"""verl glue: the ``cir_agent`` agent loop and the CIR reward.

* ``CirAgentLoop`` (needs verl, imported on first use): verl's ``AgentLoopBase`` running
  ``cirkit rollout``'s loop, registered as ``cir_agent``; verl finds it through the agent loop
  config ``AGENT_LOOP_CONFIG`` (or a copy with your settings).
* ``compute_score`` (in ``reward.py``, whose path ``REWARD_PATH`` is verl's
  ``custom_reward_function.path``): the answer after ``</think>`` scored by EM, F1 or cover-EM.
* ``run_cir_agent``, ``AgentSettings``, ``RowContext``, ``VerlGenerate``: the same loop without
  verl's classes, for other trainers and for tests.

See the how-to "Train a CIR model with verl on recorded tools".
"""

from pathlib import Path
from typing import TYPE_CHECKING

from cirkit._lazy import lazy_exports

from ._settings import AGENT_NAME, AgentSettings, RowContext
from .reward import compute_score

if TYPE_CHECKING:
    from ._agent import AgentResult, close_shared, run_cir_agent
    from ._agent_loop import CirAgentLoop
    from ._generate import VerlGenerate, completion_of

#: The agent loop config naming ``cir_agent`` (``rollout.agent.agent_loop_config_path``).
AGENT_LOOP_CONFIG = Path(__file__).with_name("agent_loop.yaml")
#: The reward file (``custom_reward_function.path``; ``name`` is ``compute_score``).
REWARD_PATH = Path(__file__).with_name("reward.py")

__all__ = [
    "AGENT_LOOP_CONFIG",
    "AGENT_NAME",
    "REWARD_PATH",
    "AgentResult",
    "AgentSettings",
    "CirAgentLoop",
    "RowContext",
    "VerlGenerate",
    "close_shared",
    "completion_of",
    "compute_score",
    "run_cir_agent",
]

__getattr__ = lazy_exports(__name__, {
    "AgentResult": "._agent", "run_cir_agent": "._agent", "close_shared": "._agent",
    "CirAgentLoop": "._agent_loop",
    "VerlGenerate": "._generate", "completion_of": "._generate"}, globals())
