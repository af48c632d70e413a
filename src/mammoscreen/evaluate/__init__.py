"""Evaluation: metrics over arrays, bootstrap CIs, model comparison, reader studies and MRMC.

Array-level functions follow ``sklearn.metrics`` (``roc_auc``, ``auprc_trapezoid``,
``average_precision``, ``bootstrap_metrics``, ``delong_test``, ``subgroup_metrics`` ...); file-level
functions return result objects (``evaluate_predictions``, ``compare_models``, ``evaluate_reader_study``,
``evaluate_subgroups``, ``obuchowski_rockette``) whose ``to_dict()`` is what the commands write, and
:mod:`.result_files` / :mod:`.subgroup_files` / :mod:`.plots` turn them into files.

Names are imported on first use, so that ``mammoscreen evaluate`` does not pay for the
statistics modules (scipy) that only ``compare`` and ``mrmc`` need.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "validation": (
        "EvaluationInputError",
    ),
    "metrics": (
        "roc_auc", "auprc_trapezoid", "average_precision", "ranking_metrics", "roc_curve",
        "precision_recall_curve", "OperatingPoint", "operating_point_at_specificity",
        "operating_point_at_sensitivity", "operating_point_at_recall_rate", "sensitivity_at_specificity",
        "specificity_at_sensitivity", "calibration_curve", "brier_score", "expected_calibration_error",
    ),
    "bootstrap": (
        "BootstrapResult", "bootstrap_counts", "bootstrap_metrics", "percentile_interval",
    ),
    "delong": (
        "DeLongTest", "delong_covariance", "delong_test",
    ),
    "compare": (
        "paired_bootstrap_difference", "ComparisonResult", "compare_scores", "compare_models",
    ),
    "levels": (
        "LevelData", "image_level_data", "breast_level_data",
    ),
    "predictions": (
        "MetricEstimate", "LevelResult", "EvaluationResult", "evaluate_level", "evaluate_predictions",
    ),
    "readers": (
        "ReaderStudyResult", "evaluate_reader_study",
    ),
    "subgroups": (
        "subgroup_metrics", "analyse_subgroups", "operating_points", "SubgroupAnalysis",
    ),
    "subgroup_evaluation": (
        "SubgroupEvaluation", "evaluate_subgroups", "compare_subgroups", "reader_study_subgroups",
    ),
    "mrmc": (
        "MRMCData", "MRMCResult", "AIVersusReadersResult", "read_imrmc", "read_mrmc_csv", "read_mrmc",
        "mrmc_from_reader_study", "reader_aucs", "auc_covariance", "obuchowski_rockette",
        "dbm_variance_components", "ai_versus_readers", "analyse_mrmc_file",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [name for names in _EXPORTS.values() for name in names]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
