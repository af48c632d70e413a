"""Comparing models on the same cases: paired DeLong tests, paired bootstrap, operating points.

The DeLong kernel (structural components, covariance, paired test) is in :mod:`.delong`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from ..data.exams import Exam
from .bootstrap import (
    DEFAULT_REPLICATES,
    MIN_CASES_FOR_BOOTSTRAP,
    RANKING_METRICS,
    BootstrapProblem,
    operating_metric_name,
    percentile_interval,
    run_bootstrap,
)
from .delong import DeLongTest, delong_covariance, delong_from_covariance
from .io import read_predictions, resolve_exam_list
from .levels import LevelData, breast_level_data, image_level_data
from .metrics import (
    brier_score,
    calibration_curve,
    operating_point_at_sensitivity,
    operating_point_at_specificity,
    ranking_metrics,
)
from .predictions import MetricEstimate
from .validation import EvaluationInputError, check_binary_problem, check_fraction, check_labels, check_scores

__all__ = [
    "paired_bootstrap_difference", "OperatingPointEstimate", "ModelSummary", "PairComparison", "ComparisonResult",
    "compare_scores", "compare_models", "DEFAULT_SPECIFICITIES", "DEFAULT_SENSITIVITIES",
]

DEFAULT_SPECIFICITIES = (0.9, 0.95)
DEFAULT_SENSITIVITIES = (0.8, 0.9)


def paired_bootstrap_difference(y_true: Any, score_a: Any, score_b: Any, n_replicates: int = DEFAULT_REPLICATES,
                                random_state: int | np.random.RandomState | None = 0, metric: str = "auroc",
                                confidence: float = 0.95, groups: Any = None) -> MetricEstimate:
    """Difference metric(a) - metric(b) with a paired percentile bootstrap CI (same resampled cases).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    score_a, score_b : arrays of shape (n,).
    n_replicates : bootstrap replicates.
    random_state : seed or ``numpy.random.RandomState``.
    metric : 'auroc', 'auprc_trapezoid' or 'average_precision'; another name raises ``ValueError``
        (:class:`~.validation.EvaluationInputError`) naming it, before any work.
    confidence : CI coverage.
    groups : optional cluster of each case, resampled together.
    """
    from .bootstrap import bootstrap_metrics

    if not isinstance(metric, str) or metric not in RANKING_METRICS:
        raise EvaluationInputError(f"unknown metric {metric!r}; choose from {RANKING_METRICS}")
    # each vector checked on its own, so that a bad one is named (np.vstack would fail on its shape first)
    n = check_labels(y_true).size
    scores = np.vstack([check_scores(score_a, n, "score_a"), check_scores(score_b, n, "score_b")])
    y, s = check_binary_problem(y_true, scores, score_ndim=2)
    point = ranking_metrics(y, s[0])[metric] - ranking_metrics(y, s[1])[metric]
    result = bootstrap_metrics(y, s, n_replicates, random_state, metrics=(metric,), groups=groups,
                               confidence=confidence)
    values = result.replicates[metric]
    low, high = percentile_interval(values[:, 0] - values[:, 1], confidence)
    return MetricEstimate(float(point), low, high)


@dataclass
class OperatingPointEstimate:
    """Sensitivity at a target specificity (or the reverse), with the threshold that achieves it."""

    target: float
    value: float
    reached: float
    threshold: float
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "achieved": self.reached, "threshold": self.threshold}


@dataclass
class ModelSummary:
    """One model's metrics in a comparison."""

    name: str
    metrics: dict[str, MetricEstimate]
    sensitivity_at_specificity: dict[float, OperatingPointEstimate]
    specificity_at_sensitivity: dict[float, OperatingPointEstimate]
    brier_score: float | None
    calibration: dict[str, list[float]] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "sensitivity_at_specificity": {f"{t:g}": v.to_dict() for t, v in self.sensitivity_at_specificity.items()},
            "specificity_at_sensitivity": {f"{t:g}": v.to_dict() for t, v in self.specificity_at_sensitivity.items()},
            "brier_score": self.brier_score,
            "calibration": self.calibration,
        }


@dataclass
class PairComparison:
    """Model a against model b: DeLong test and paired-bootstrap CI of the AUROC difference."""

    model_a: str
    model_b: str
    delong: DeLongTest
    bootstrap_difference: MetricEstimate

    def to_dict(self) -> dict[str, Any]:
        return {"model_a": self.model_a, "model_b": self.model_b, "auroc_difference": self.delong.difference,
                "delong": self.delong.to_dict(),
                "bootstrap_ci": [self.bootstrap_difference.ci_low, self.bootstrap_difference.ci_high]}


@dataclass
class ComparisonResult:
    """Everything ``mammoscreen compare`` reports."""

    level: str
    n_cases: int
    n_positive: int
    models: dict[str, ModelSummary]
    pairs: list[PairComparison]
    n_bootstrap: int
    seed: int | None
    confidence: float
    bootstrap: dict[str, int] | None
    y_true: np.ndarray
    scores: dict[str, np.ndarray]
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "tool": "mammoscreen compare", "version": __version__, "level": self.level,
            "n_cases": self.n_cases, "n_positive": self.n_positive, "n_negative": self.n_cases - self.n_positive,
            "sources": self.sources,
            "bootstrap": {"replicates": self.n_bootstrap, "seed": self.seed, "confidence": self.confidence,
                          "replicates_used": self.bootstrap, "paired": True},
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "pairs": [p.to_dict() for p in self.pairs],
            "notes": self.notes,
        }


def compare_scores(y_true: Any, scores: Mapping[str, Any], *, n_bootstrap: int = DEFAULT_REPLICATES,
                   seed: int | np.random.RandomState | None = 0, confidence: float = 0.95,
                   specificities: Sequence[float] = DEFAULT_SPECIFICITIES,
                   sensitivities: Sequence[float] = DEFAULT_SENSITIVITIES, calibration_bins: int = 10,
                   groups: Any = None, level: str = "cases") -> ComparisonResult:
    """Compare several models' scores on the same cases.

    Every model is bootstrapped on the same replicates (paired), so the CIs of differences account for
    the correlation between models.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1.
    scores : mapping model name -> array of shape (n,).
    n_bootstrap : replicates (0: no bootstrap CIs).
    seed : bootstrap seed or ``numpy.random.RandomState``.
    confidence : coverage of all CIs.
    specificities : targets for sensitivity-at-specificity.
    sensitivities : targets for specificity-at-sensitivity.
    calibration_bins : bins of the reliability diagram.
    groups : optional cluster of each case for the bootstrap.
    level : what a case is (for the report).
    """
    if not scores:
        raise EvaluationInputError("compare needs at least one model")
    confidence = check_fraction(confidence, "confidence")
    specificities = tuple(check_fraction(t, "specificity") for t in specificities)
    sensitivities = tuple(check_fraction(t, "sensitivity") for t in sensitivities)
    names = list(scores)
    n = check_labels(y_true).size  # each model's scores checked on its own, so that a bad one is named
    matrix = np.vstack([check_scores(scores[name], n, f"scores[{name!r}]") for name in names])
    y, s = check_binary_problem(y_true, matrix, score_ndim=2)
    notes: list[str] = []

    summaries: dict[str, ModelSummary] = {}
    for k, name in enumerate(names):
        point = ranking_metrics(y, s[k])
        sens = {t: _operating(operating_point_at_specificity(y, s[k], t), t, "sensitivity") for t in specificities}
        spec = {t: _operating(operating_point_at_sensitivity(y, s[k], t), t, "specificity") for t in sensitivities}
        if np.all((s[k] >= 0) & (s[k] <= 1)):
            observed, predicted, count = calibration_curve(y, s[k], n_bins=calibration_bins)
            calibration = {"mean_predicted": predicted.tolist(), "fraction_positive": observed.tolist(),
                           "count": count.tolist()}
            brier = brier_score(y, s[k])
        else:
            calibration, brier = None, None
            notes.append(f"model {name!r}: scores outside [0, 1] are not probabilities; no calibration or Brier score")
        summaries[name] = ModelSummary(name, {m: MetricEstimate(point[m]) for m in RANKING_METRICS}, sens, spec,
                                       brier, calibration)

    auc, cov = delong_covariance(y, s)
    pairs = [PairComparison(names[a], names[b], delong_from_covariance(auc, cov, a, b, confidence),
                            MetricEstimate(float(auc[a] - auc[b])))
             for a, b in combinations(range(len(names)), 2)]

    bootstrap_summary = None
    if n_bootstrap and y.size < MIN_CASES_FOR_BOOTSTRAP:
        notes.append(f"no bootstrap: fewer than {MIN_CASES_FOR_BOOTSTRAP} cases")
    elif n_bootstrap:
        problem = BootstrapProblem(y, s, RANKING_METRICS, specificities, sensitivities)
        result = run_bootstrap([problem], n_bootstrap, seed, groups, confidence)[0]
        bootstrap_summary = result.summary()
        if result.n_used:
            for k, name in enumerate(names):
                summary = summaries[name]
                for m in RANKING_METRICS:
                    summary.metrics[m].ci_low, summary.metrics[m].ci_high = percentile_interval(
                        result.replicates[m][:, k], confidence)
                for t, estimate in summary.sensitivity_at_specificity.items():
                    values = result.replicates[operating_metric_name("sensitivity_at_specificity", t)][:, k]
                    estimate.ci_low, estimate.ci_high = percentile_interval(values, confidence)
                for t, estimate in summary.specificity_at_sensitivity.items():
                    values = result.replicates[operating_metric_name("specificity_at_sensitivity", t)][:, k]
                    estimate.ci_low, estimate.ci_high = percentile_interval(values, confidence)
            index = {name: k for k, name in enumerate(names)}
            for pair in pairs:
                values = result.replicates["auroc"]
                diff = values[:, index[pair.model_a]] - values[:, index[pair.model_b]]
                low, high = percentile_interval(diff, confidence)
                pair.bootstrap_difference.ci_low, pair.bootstrap_difference.ci_high = low, high
    seed_value = seed if not isinstance(seed, np.random.RandomState) else None
    return ComparisonResult(level, int(y.size), int(y.sum()), summaries, pairs, int(n_bootstrap), seed_value,
                            confidence, bootstrap_summary, y, {name: s[k] for k, name in enumerate(names)}, notes=notes)


def _operating(point, target: float, kind: str) -> OperatingPointEstimate:
    if kind == "sensitivity":
        return OperatingPointEstimate(target, point.sensitivity, point.specificity, point.threshold)
    return OperatingPointEstimate(target, point.specificity, point.sensitivity, point.threshold)


def _align(reference: LevelData, other: LevelData, name: str, reference_name: str) -> np.ndarray:
    """Scores of ``other`` in the case order of ``reference``; the cases and labels must be the same."""
    if reference.case_names == other.case_names:
        order = np.arange(len(other.case_names))
    else:
        position = {case: i for i, case in enumerate(other.case_names)}
        missing = [case for case in reference.case_names if case not in position]
        extra = len(other.case_names) - (len(reference.case_names) - len(missing))
        if missing or extra:
            raise EvaluationInputError(
                f"{name} and {reference_name} do not cover the same cases at this level ({len(missing)} of "
                f"{reference_name}'s cases missing from {name}, e.g. {missing[:3]}; {max(extra, 0)} extra); models can "
                "only be compared on the same cases")
        order = np.array([position[case] for case in reference.case_names])
    labels = other.y_true[order]
    differ = np.flatnonzero(labels != reference.y_true)
    if differ.size:
        cases = [reference.case_names[i] for i in differ[:3]]
        raise EvaluationInputError(
            f"{name} and {reference_name} have different labels for {differ.size} case(s), e.g. {cases}; were they "
            "evaluated on the same exam list?")
    return other.y_score[order]


def compare_models(predictions: Sequence[str | os.PathLike], names: Sequence[str] | None = None,
                   exam_list: str | os.PathLike | Sequence[Exam] | None = None, *, level: str | None = None,
                   n_bootstrap: int = DEFAULT_REPLICATES, seed: int | None = 0, confidence: float = 0.95,
                   specificities: Sequence[float] = DEFAULT_SPECIFICITIES,
                   sensitivities: Sequence[float] = DEFAULT_SENSITIVITIES,
                   calibration_bins: int = 10) -> ComparisonResult:
    """Compare the prediction files of several models on the same exams.

    Parameters
    ----------
    predictions : prediction CSVs (image- or breast-level, the meta-repository's formats).
    names : display name of each model (default: the file names without extension).
    exam_list : exam list (required for breast level).
    level : 'image' or 'breast' (default: breast when an exam list is given, else image).
    n_bootstrap, seed, confidence, specificities, sensitivities, calibration_bins : as
        :func:`compare_scores`.
    """
    predictions = list(predictions)
    if len(predictions) < 1:
        raise EvaluationInputError("compare needs at least one prediction file")
    if names is None:
        names = [_default_name(p, i) for i, p in enumerate(predictions)]
        if len(set(names)) < len(names):
            names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    names = list(names)
    if len(names) != len(predictions):
        raise EvaluationInputError(f"got {len(names)} names for {len(predictions)} prediction files; give one name "
                                   "per file")
    if len(set(names)) < len(names):
        raise EvaluationInputError(f"model names must be unique, got {names}")
    exams, exam_path = resolve_exam_list(exam_list)
    tables = [read_predictions(p) for p in predictions]
    if level is None:
        level = "breast" if exams is not None or any(t.level == "breast" for t in tables) else "image"
    if level not in ("image", "breast"):
        raise EvaluationInputError(f"level must be 'image' or 'breast', got {level!r}")
    data = []
    for table in tables:
        if level == "image":
            data.append(image_level_data(table, exams, exam_path or "exam list"))
        else:
            data.append(breast_level_data(table, exams, exam_path or "exam list"))
    scores = {names[0]: data[0].y_score}
    for k in range(1, len(data)):
        scores[names[k]] = _align(data[0], data[k], names[k], names[0])
    result = compare_scores(data[0].y_true, scores, n_bootstrap=n_bootstrap, seed=seed, confidence=confidence,
                            specificities=specificities, sensitivities=sensitivities,
                            calibration_bins=calibration_bins, level=level)
    result.sources = {name: str(p) for name, p in zip(names, predictions)}
    for table in tables:
        result.notes.extend(table.warnings)
    return result


def _default_name(path: Any, index: int) -> str:
    try:
        return os.path.splitext(os.path.basename(os.fspath(path)))[0] or f"model {index + 1}"
    except TypeError:
        return f"model {index + 1}"
