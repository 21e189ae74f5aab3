"""``cirkit eval``: replayable search-agent evaluation.

Benchmarks are read as published (:func:`load_benchmark`), rollouts run through
:mod:`cirkit.rollout`, each trajectory is graded (``em``, ``f1``, ``cover_em`` from
:mod:`cirkit.answers`, or an LLM ``judge`` whose calls go through the store), and the report
(:func:`grade_run`) is byte-deterministic. :func:`pack_run` bundles a run with its store;
:func:`replay_pack` reproduces its report offline; :func:`compare_runs` pairs two runs.
"""

from ._compare import compare_runs, compare_scores, mcnemar_exact
from ._graders import (
    GRADERS,
    JUDGE_KEY_ENVS,
    JUDGE_VERDICTS,
    Judge,
    JudgeCall,
    JudgeTemplate,
    parse_verdict,
    score_rule,
)
from ._metrics import (
    BOOTSTRAP_RESAMPLES,
    GradedRow,
    bootstrap_interval,
    pass_at_k,
    summarize,
    topics_of,
)
from ._pack import PACK_MANIFEST, PACK_STORE, PackInfo, ReplayResult, pack_run, replay_pack
from ._report import PLOTS, dumps_report, markdown_report, plot_accuracy, write_report
from ._run import (
    EVAL_FILE,
    GRADES_FILE,
    Benchmark,
    EvalSpec,
    grade_run,
    load_benchmark,
    read_grades,
    rollout_dir,
    stage_benchmarks,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "EVAL_FILE",
    "GRADERS",
    "GRADES_FILE",
    "JUDGE_KEY_ENVS",
    "JUDGE_VERDICTS",
    "PACK_MANIFEST",
    "PACK_STORE",
    "PLOTS",
    "Benchmark",
    "EvalSpec",
    "GradedRow",
    "Judge",
    "JudgeCall",
    "JudgeTemplate",
    "PackInfo",
    "ReplayResult",
    "bootstrap_interval",
    "compare_runs",
    "compare_scores",
    "dumps_report",
    "grade_run",
    "load_benchmark",
    "markdown_report",
    "mcnemar_exact",
    "pack_run",
    "parse_verdict",
    "pass_at_k",
    "plot_accuracy",
    "read_grades",
    "replay_pack",
    "rollout_dir",
    "score_rule",
    "stage_benchmarks",
    "summarize",
    "topics_of",
    "write_report",
]
