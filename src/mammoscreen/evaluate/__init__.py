"""Evaluation: metrics over arrays and bootstrap confidence intervals, in the style of ``sklearn.metrics``."""

from .bootstrap import BootstrapResult, bootstrap_counts, bootstrap_metrics, percentile_interval
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
from .validation import EvaluationInputError

__all__ = [
    "EvaluationInputError",
    "roc_auc", "auprc_trapezoid", "average_precision", "ranking_metrics", "roc_curve", "precision_recall_curve",
    "OperatingPoint", "operating_point_at_specificity", "operating_point_at_sensitivity",
    "sensitivity_at_specificity", "specificity_at_sensitivity", "calibration_curve", "brier_score",
    "BootstrapResult", "bootstrap_counts", "bootstrap_metrics", "percentile_interval",
]
