"""CIR rollouts: token-in/token-out generation, code blocks run in the sandbox, observations
masked, everything outside (completions, tool calls, code runs) through the store.

The loop (:func:`run_rollout`) needs only a :class:`Generate` callable and a :data:`Runner`;
the record it returns is a :class:`cirkit.trajectory.Trajectory`.
"""

from cirkit.inputs import Question
from cirkit.inputs import read_questions as load_questions
from cirkit.tokenizer import ModelTokenizer
from cirkit.trajectory import ROLLOUT_FORMAT_VERSION, trajectory_id

from ._engine import Generate, RolloutConfig, RolloutLimits, run_rollout
from ._exec import CodeRun, Runner, exec_runner, sandbox_setup
from ._job import RolloutJob, run_job
from ._run import RunStats, run_all
from ._writer import RolloutWriter, read_trajectories

#: The rollout's tokenizer: :class:`cirkit.tokenizer.ModelTokenizer` (the name it had here).
ChatTokenizer = ModelTokenizer

__all__ = [
    "ROLLOUT_FORMAT_VERSION",
    "ChatTokenizer",
    "CodeRun",
    "Generate",
    "Question",
    "RolloutConfig",
    "RolloutJob",
    "RolloutLimits",
    "RolloutWriter",
    "RunStats",
    "Runner",
    "exec_runner",
    "load_questions",
    "read_trajectories",
    "run_all",
    "run_job",
    "run_rollout",
    "sandbox_setup",
    "trajectory_id",
]
