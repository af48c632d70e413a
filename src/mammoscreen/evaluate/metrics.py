"""Binary classification metrics over arrays, in the style of ``sklearn.metrics``.

Every function takes ``y_true`` (0/1 labels) and ``y_score`` (higher = more likely positive), checks
them, and returns plain numbers or arrays. Values equal scikit-learn's to rounding error (the test
suite checks 1e-12 on random data):

==============================  =============================================================
``roc_auc``                     ``sklearn.metrics.roc_auc_score``
``auprc_trapezoid``             ``sklearn.metrics.auc(recall, precision)`` over
                                ``precision_recall_curve`` - the meta-repository's "AUPRC"
``average_precision``           ``sklearn.metrics.average_precision_score``
``roc_curve``                   ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``
``precision_recall_curve``      ``sklearn.metrics.precision_recall_curve``
``calibration_curve``           ``sklearn.calibration.calibration_curve``
``brier_score``                 ``sklearn.metrics.brier_score_loss``
``expected_calibration_error``  (no scikit-learn function) count-weighted mean of
                                ``|observed - predicted|`` over ``calibration_curve``'s bins
==============================  =============================================================

The two areas under the precision-recall curve differ: the trapezoidal rule interpolates linearly
between curve points (what the meta-repository reports as AUPRC), average precision uses the
step function. Report which one you use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._ranking import RankedScores, unit_counts
from .validation import (
    EvaluationInputError,
    check_binary_problem,
    check_fraction,
    check_labels,
    check_probabilities,
    check_scores,
)

__all__ = [
    "roc_auc", "auprc_trapezoid", "average_precision", "ranking_metrics", "roc_curve",
    "precision_recall_curve", "OperatingPoint", "operating_point_at_specificity",
    "operating_point_at_sensitivity", "operating_point_at_recall_rate", "sensitivity_at_specificity",
    "specificity_at_sensitivity", "calibration_curve", "brier_score", "expected_calibration_error",
]


def ranking_metrics(y_true: Any, y_score: Any) -> dict[str, float]:
    """AUROC, trapezoidal AUPRC and average precision in one pass.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    y, s = check_binary_problem(y_true, y_score)
    values = RankedScores(y, s).ranking_metrics(unit_counts(y.size))
    return {name: float(v[0]) for name, v in values.items()}


def roc_auc(y_true: Any, y_score: Any) -> float:
    """Area under the ROC curve (ties count one half), as ``sklearn.metrics.roc_auc_score``.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    return ranking_metrics(y_true, y_score)["auroc"]


def auprc_trapezoid(y_true: Any, y_score: Any) -> float:
    """Area under the precision-recall curve by the trapezoidal rule (the meta-repository's AUPRC).

    Equals ``sklearn.metrics.auc(recall, precision)`` for ``precision, recall, _ =
    sklearn.metrics.precision_recall_curve(y_true, y_score)``.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    return ranking_metrics(y_true, y_score)["auprc_trapezoid"]


def average_precision(y_true: Any, y_score: Any) -> float:
    """Average precision (step-wise area under the precision-recall curve).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    return ranking_metrics(y_true, y_score)["average_precision"]


def _curve_counts(y_true: Any, y_score: Any):
    y, s = check_binary_problem(y_true, y_score)
    ranked = RankedScores(y, s)
    tp, fp, n_pos, n_neg = ranked.roc_counts(unit_counts(y.size))
    return ranked, tp[0], fp[0], int(n_pos[0]), int(n_neg[0])


def roc_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct score: (false positive rate, true positive rate, thresholds).

    The first point is (0, 0) with threshold ``inf``; thresholds then descend and a case is called
    positive when its score is >= the threshold.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    ranked, tp, fp, n_pos, n_neg = _curve_counts(y_true, y_score)
    thresholds = np.concatenate([[np.inf], ranked.thresholds_desc])
    return fp / n_neg, tp / n_pos, thresholds


def precision_recall_curve(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve: (precision, recall, thresholds) in ascending threshold order.

    As scikit-learn: one point per distinct score, then a final point (precision 1, recall 0) with no
    threshold.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; higher means more likely positive.
    """
    ranked, tp, fp, n_pos, _ = _curve_counts(y_true, y_score)
    tp, fp = tp[1:][::-1], fp[1:][::-1]
    precision = np.concatenate([tp / (tp + fp), [1.0]])
    recall = np.concatenate([tp / n_pos, [0.0]])
    return precision, recall, ranked.thresholds_desc[::-1].copy()


@dataclass(frozen=True)
class OperatingPoint:
    """A threshold on the scores and the sensitivity and specificity it gives (and, when chosen for a
    recall rate, the fraction of exams it recalls)."""

    threshold: float
    sensitivity: float
    specificity: float
    recall_rate: float | None = None


def operating_point_at_specificity(y_true: Any, y_score: Any, specificity: float) -> OperatingPoint:
    """The most sensitive threshold whose specificity is at least ``specificity`` (no interpolation).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; a case is positive when score >= threshold.
    specificity : float in [0, 1], the minimum specificity.
    """
    specificity = check_fraction(specificity, "specificity")
    y, s = check_binary_problem(y_true, y_score)
    ranked = RankedScores(y, s)
    sens, spec, column = ranked.sensitivity_at_specificity(unit_counts(y.size), specificity)
    return OperatingPoint(ranked.threshold_of_column(int(column[0])), float(sens[0]), float(spec[0]))


def operating_point_at_sensitivity(y_true: Any, y_score: Any, sensitivity: float) -> OperatingPoint:
    """The most specific threshold whose sensitivity is at least ``sensitivity`` (no interpolation).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores; a case is positive when score >= threshold.
    sensitivity : float in [0, 1], the minimum sensitivity.
    """
    sensitivity = check_fraction(sensitivity, "sensitivity")
    y, s = check_binary_problem(y_true, y_score)
    ranked = RankedScores(y, s)
    spec, sens, column = ranked.specificity_at_sensitivity(unit_counts(y.size), sensitivity)
    return OperatingPoint(ranked.threshold_of_column(int(column[0])), float(sens[0]), float(spec[0]))


def exam_scores(y_score: np.ndarray, groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """(exam of each case as 0..E-1, highest score of each exam): an exam is recalled when any of its
    cases (images or breasts) is called positive."""
    groups = np.asarray(groups)
    if groups.shape != y_score.shape:
        raise EvaluationInputError(f"groups must have one entry per case ({y_score.size}), got shape {groups.shape}")
    _, exam_of_case = np.unique(groups, return_inverse=True)
    highest = np.full(int(exam_of_case.max()) + 1, -np.inf)
    np.maximum.at(highest, exam_of_case, y_score)
    return exam_of_case, highest


def operating_point_at_recall_rate(y_true: Any, y_score: Any, recall_rate: float, groups: Any = None) -> OperatingPoint:
    """The lowest threshold that recalls at most ``recall_rate`` of the exams (no interpolation).

    An exam is recalled when any of its cases has a score >= the threshold; sensitivity and specificity
    are those of the cases at that threshold.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores.
    recall_rate : float in [0, 1], e.g. 0.1 to recall 10 % of the exams.
    groups : exam of each case (e.g. for images or breasts); None: every case is its own exam.
    """
    from ._ranking import threshold_at_rate

    recall_rate = check_fraction(recall_rate, "recall rate")
    y, s = check_binary_problem(y_true, y_score)
    exam_of_case, highest = exam_scores(s, np.arange(s.size) if groups is None else groups)
    threshold = float(threshold_at_rate(highest, np.ones((1, highest.size), dtype=np.int64), recall_rate)[0])
    called = s >= threshold
    return OperatingPoint(threshold, float(called[y == 1].mean()), float((~called[y == 0]).mean()),
                          float(np.mean(highest >= threshold)))


def sensitivity_at_specificity(y_true: Any, y_score: Any, specificity: float) -> float:
    """Highest sensitivity reachable with specificity >= ``specificity``.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores.
    specificity : float in [0, 1].
    """
    return operating_point_at_specificity(y_true, y_score, specificity).sensitivity


def specificity_at_sensitivity(y_true: Any, y_score: Any, sensitivity: float) -> float:
    """Highest specificity reachable with sensitivity >= ``sensitivity``.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), finite scores.
    sensitivity : float in [0, 1].
    """
    return operating_point_at_sensitivity(y_true, y_score, sensitivity).specificity


def _check_calibration_inputs(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    y = check_labels(y_true)
    p = check_scores(y_prob, y.size, name="y_prob")
    check_probabilities(p)
    return y, p


def calibration_curve(y_true: Any, y_prob: Any, n_bins: int = 10,
                      strategy: str = "uniform") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability diagram data: (observed fraction positive, mean predicted probability, count) per bin.

    Empty bins are left out, as in ``sklearn.calibration.calibration_curve`` (whose first two outputs
    these equal); the third output is the number of cases in each bin.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1.
    y_prob : array of shape (n,), predicted probabilities in [0, 1].
    n_bins : number of bins.
    strategy : 'uniform' (equal-width bins on [0, 1]) or 'quantile' (equal-count bins).
    """
    y, p = _check_calibration_inputs(y_true, y_prob)
    if int(n_bins) < 1:
        raise EvaluationInputError(f"n_bins must be at least 1, got {n_bins}")
    n_bins = int(n_bins)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))
    else:
        raise EvaluationInputError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}")
    # A probability on an inner edge belongs to the bin below it; 1.0 falls in the last bin.
    bin_of = np.searchsorted(edges[1:-1], p, side="left")
    count = np.bincount(bin_of, minlength=edges.size)
    prob_sum = np.bincount(bin_of, weights=p, minlength=edges.size)
    true_sum = np.bincount(bin_of, weights=y.astype(np.float64), minlength=edges.size)
    used = count > 0
    return true_sum[used] / count[used], prob_sum[used] / count[used], count[used]


def brier_score(y_true: Any, y_prob: Any) -> float:
    """Mean squared difference between predicted probability and outcome (lower is better).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1.
    y_prob : array of shape (n,), predicted probabilities in [0, 1].
    """
    y, p = _check_calibration_inputs(y_true, y_prob)
    return float(np.mean((p - y) ** 2))


def expected_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 10, strategy: str = "uniform") -> float:
    """Expected calibration error: the gap between observed fraction positive and mean predicted
    probability in each bin of :func:`calibration_curve`, averaged with the bins' case counts as weights.

    0 means perfectly calibrated on these bins; the value depends on the binning, so report ``n_bins``
    and ``strategy`` with it.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1.
    y_prob : array of shape (n,), predicted probabilities in [0, 1].
    n_bins : number of bins.
    strategy : 'uniform' (equal-width bins on [0, 1]) or 'quantile' (equal-count bins).
    """
    observed, predicted, count = calibration_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy)
    return float(np.sum(count * np.abs(observed - predicted)) / np.sum(count))
