"""Evaluation: metrics over arrays, bootstrap CIs, and the evaluation of prediction files.

Array-level functions follow ``sklearn.metrics`` (``roc_auc``, ``auprc_trapezoid``,
``average_precision``, ``bootstrap_metrics`` ...); ``evaluate_predictions`` returns a result object
whose ``to_dict()`` is what the command writes, and :mod:`.reports` / :mod:`.plots` turn it into files.
"""

from .bootstrap import BootstrapResult, bootstrap_counts, bootstrap_metrics, percentile_interval
from .compare import (
    ComparisonResult,
    DeLongTest,
    compare_models,
    compare_scores,
    delong_covariance,
    delong_test,
    paired_bootstrap_difference,
)
from .metrics import (
    OperatingPoint,
    auprc_trapezoid,
    average_precision,
    brier_score,
    calibration_curve,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
    precision_recall_curve,
    ranking_metrics,
    roc_auc,
    roc_curve,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)
from .predictions import EvaluationResult, LevelResult, MetricEstimate, evaluate_level, evaluate_predictions
from .readers import ReaderStudyResult, evaluate_reader_study
from .validation import EvaluationInputError

__all__ = [
    "EvaluationInputError",
    "roc_auc", "auprc_trapezoid", "average_precision", "ranking_metrics", "roc_curve", "precision_recall_curve",
    "OperatingPoint", "operating_point_at_specificity", "operating_point_at_sensitivity",
    "sensitivity_at_specificity", "specificity_at_sensitivity", "calibration_curve", "brier_score",
    "BootstrapResult", "bootstrap_counts", "bootstrap_metrics", "percentile_interval",
    "MetricEstimate", "LevelResult", "EvaluationResult", "evaluate_level", "evaluate_predictions",
    "DeLongTest", "delong_covariance", "delong_test", "paired_bootstrap_difference", "ComparisonResult",
    "compare_scores", "compare_models",
    "ReaderStudyResult", "evaluate_reader_study",
]
