"""CIR rollouts: token-in/token-out generation, code blocks run in the sandbox, observations
masked, everything outside (completions, tool calls, code runs) through the store."""

from ..inputs import Question
from ..inputs import read_questions as load_questions
from ._chat import ChatTokenizer
from ._engine import (
    RolloutConfig,
    RolloutLimits,
    exec_runner,
    run_rollout,
    trajectory_id,
)
from ._job import RolloutJob, run_job
from ._run import RunStats, run_all
from ._writer import ROLLOUT_FORMAT_VERSION, RolloutWriter, read_trajectories

__all__ = [
    "ROLLOUT_FORMAT_VERSION",
    "ChatTokenizer",
    "Question",
    "RolloutConfig",
    "RolloutJob",
    "RolloutLimits",
    "RolloutWriter",
    "RunStats",
    "exec_runner",
    "load_questions",
    "read_trajectories",
    "run_all",
    "run_job",
    "run_rollout",
    "trajectory_id",
]
