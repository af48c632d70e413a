"""Evaluation: metrics over arrays, bootstrap CIs, model comparison, reader studies and MRMC.

Array-level functions follow ``sklearn.metrics`` (``roc_auc``, ``auprc_trapezoid``,
``average_precision``, ``bootstrap_metrics``, ``delong_test`` ...); file-level functions return result
objects (``evaluate_predictions``, ``compare_models``, ``evaluate_reader_study``,
``obuchowski_rockette``) whose ``to_dict()`` is what the commands write, and :mod:`.reports` /
:mod:`.plots` turn them into files.
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
from .mrmc import (
    AIVersusReadersResult,
    MRMCData,
    MRMCResult,
    ai_versus_readers,
    analyse_mrmc_file,
    auc_covariance,
    dbm_variance_components,
    mrmc_from_reader_study,
    obuchowski_rockette,
    read_imrmc,
    read_mrmc,
    read_mrmc_csv,
    reader_aucs,
)
from .predictions import EvaluationResult, LevelResult, MetricEstimate, evaluate_level, evaluate_predictions
from .readers import ReaderStudyResult, evaluate_reader_study
from .validation import EvaluationInputError

__all__ = [
    "EvaluationInputError",
    # metrics over arrays
    "roc_auc", "auprc_trapezoid", "average_precision", "ranking_metrics", "roc_curve", "precision_recall_curve",
    "OperatingPoint", "operating_point_at_specificity", "operating_point_at_sensitivity",
    "sensitivity_at_specificity", "specificity_at_sensitivity", "calibration_curve", "brier_score",
    # bootstrap
    "BootstrapResult", "bootstrap_counts", "bootstrap_metrics", "percentile_interval",
    # comparisons
    "DeLongTest", "delong_covariance", "delong_test", "paired_bootstrap_difference", "ComparisonResult",
    "compare_scores", "compare_models",
    # prediction files
    "MetricEstimate", "LevelResult", "EvaluationResult", "evaluate_level", "evaluate_predictions",
    # reader studies and MRMC
    "ReaderStudyResult", "evaluate_reader_study", "MRMCData", "MRMCResult", "AIVersusReadersResult",
    "read_imrmc", "read_mrmc_csv", "read_mrmc", "mrmc_from_reader_study", "reader_aucs", "auc_covariance",
    "obuchowski_rockette", "dbm_variance_components", "ai_versus_readers", "analyse_mrmc_file",
]
