"""Experiments (paper Section IV): baselines, runs, repeats and CIs, tables, plots, report.

``run_experiment(params)`` measures; ``write_outputs(result, folder)`` writes the tables,
figures, ledger and report; ``reproduce(params, out)`` does both in a folder derived from the
parameters and reuses a finished one. Importing this package imports neither torch nor
matplotlib.
"""

from carbonedge.experiments.outputs import Outcome, reproduce, write_outputs
from carbonedge.experiments.params import (
    AMP4EC,
    CE_MODES,
    CE_POLICIES,
    CE_SLO,
    MONOLITHIC,
    PAPER_MODELS,
    ExperimentParams,
    ce_label,
    config_labels,
)
from carbonedge.experiments.records import (
    ConfigSummary,
    Environment,
    ExperimentResult,
    RunRecord,
    SweepRecord,
    summaries,
    summarize,
)
from carbonedge.experiments.runner import ExperimentError, run_experiment
from carbonedge.experiments.stats import MeanCI, mean_ci, percentile, t_quantile_975

__all__ = [
    "AMP4EC",
    "CE_MODES",
    "CE_POLICIES",
    "CE_SLO",
    "MONOLITHIC",
    "PAPER_MODELS",
    "ConfigSummary",
    "Environment",
    "ExperimentError",
    "ExperimentParams",
    "ExperimentResult",
    "MeanCI",
    "Outcome",
    "RunRecord",
    "SweepRecord",
    "ce_label",
    "config_labels",
    "mean_ci",
    "percentile",
    "reproduce",
    "run_experiment",
    "summaries",
    "summarize",
    "t_quantile_975",
    "write_outputs",
]
