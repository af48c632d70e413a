"""The engine behind the ranking metrics: sort the scores once, then evaluate any case weighting.

A bootstrap replicate is a vector of integer counts (how many times each case was drawn), so a
replicate's AUROC, precision-recall area or operating point can be computed from cumulative counts
over the once-sorted scores, for a whole block of replicates at a time, without re-sorting. The point
estimate is the same computation with every count equal to 1, so point estimates and bootstrap
replicates share one definition.

All counting is done in int64, so the Mann-Whitney statistic is exact; each metric is then one
floating-point division (AUROC) or a short sum, and agrees with scikit-learn's curve-based values to
rounding error.
"""

from __future__ import annotations

import numpy as np

# About 64k elements per temporary array (512 kB of float64): sized for a typical L2 cache.
_CACHE_ELEMENTS = 1 << 16


def _cumulative(counts: np.ndarray) -> np.ndarray:
    """Cumulative sums along axis 1 with a leading column of zeros: out[:, j] = sum of counts[:, :j]."""
    out = np.zeros((counts.shape[0], counts.shape[1] + 1), dtype=np.int64)
    np.cumsum(counts, axis=1, out=out[:, 1:])
    return out


class RankedScores:
    """One score vector and its labels, sorted once, with metrics for any matrix of case counts.

    ``counts`` arguments are int arrays of shape (replicates, n_cases); row r says how many times each
    case occurs in replicate r. Rows without both classes give NaN (callers skip them).
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray):
        self.n_cases = y_score.size
        order = np.argsort(y_score, kind="stable")
        sorted_scores = y_score[order]
        sorted_labels = y_true[order]
        positive = sorted_labels == 1

        # Cases of each class in ascending score order, and their scores.
        self.positive_order = order[positive]
        self.negative_order = order[~positive]
        positive_scores = sorted_scores[positive]
        negative_scores = sorted_scores[~positive]

        # Only distinct scores that some positive case has matter for AUROC and precision-recall:
        # every other threshold adds no positives and so adds no area.
        self.positive_values = np.unique(positive_scores)
        v = self.positive_values
        self._neg_below = np.searchsorted(negative_scores, v, side="left")
        self._neg_upto = np.searchsorted(negative_scores, v, side="right")
        self._pos_below = np.searchsorted(positive_scores, v, side="left")
        self._pos_upto = np.searchsorted(positive_scores, v, side="right")

        # All distinct scores (descending) for ROC operating points.
        distinct_desc = np.unique(sorted_scores)[::-1]
        self.thresholds_desc = distinct_desc
        # For each distinct threshold t: number of positives / negatives with score >= t equals
        # (class size) - (number with score < t).
        self._neg_below_all = np.searchsorted(negative_scores, distinct_desc, side="left")
        self._pos_below_all = np.searchsorted(positive_scores, distinct_desc, side="left")

    # ------------------------------------------------------------------------------------------
    def _class_counts(self, counts: np.ndarray):
        cum_pos = _cumulative(counts[:, self.positive_order])
        cum_neg = _cumulative(counts[:, self.negative_order])
        return cum_pos, cum_neg

    def ranking_metrics(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """AUROC, trapezoidal AUPRC and average precision of each row of ``counts``."""
        # Rows are independent; blocks of rows keep the many temporaries in the CPU cache.
        block = max(1, _CACHE_ELEMENTS // max(counts.shape[1], 1))
        if counts.shape[0] <= block:
            return self._ranking_metrics_block(counts)
        parts = [self._ranking_metrics_block(counts[i:i + block]) for i in range(0, counts.shape[0], block)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _ranking_metrics_block(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        cum_pos, cum_neg = self._class_counts(counts)
        n_pos = cum_pos[:, -1:]
        n_neg = cum_neg[:, -1:]
        # At each distinct positive score v: positives/negatives strictly below v and up to v.
        pos_below = cum_pos[:, self._pos_below]
        pos_upto = cum_pos[:, self._pos_upto]
        neg_below = cum_neg[:, self._neg_below]
        neg_upto = cum_neg[:, self._neg_upto]
        pos_at = pos_upto - pos_below
        valid = (n_pos[:, 0] > 0) & (n_neg[:, 0] > 0)

        # Mann-Whitney: each positive beats the negatives below it and ties half of those equal to it.
        twice_u = (pos_at * (neg_below + neg_upto)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auroc = twice_u / (2.0 * n_pos[:, 0] * n_neg[:, 0])

            # Precision-recall: the curve point at threshold v (score >= v) and the point just above v
            # (score > v). Recall rises only at thresholds holding positives, by pos_at / n_pos.
            tp_at = n_pos - pos_below
            fp_at = n_neg - neg_below
            precision_at = tp_at / (tp_at + fp_at)
            tp_above = n_pos - pos_upto
            fp_above = n_neg - neg_upto
            called_above = tp_above + fp_above
            # No case above the threshold: the curve's starting point (recall 0, precision 1).
            precision_above = np.where(called_above > 0, tp_above / np.maximum(called_above, 1), 1.0)
            precision_at = np.where(pos_at > 0, precision_at, 0.0)
            average_precision = (pos_at * precision_at).sum(axis=1) / n_pos[:, 0]
            auprc = (pos_at * (precision_at + precision_above)).sum(axis=1) / (2.0 * n_pos[:, 0])
        nan = np.where(valid, 0.0, np.nan)
        return {"auroc": auroc + nan, "auprc_trapezoid": auprc + nan, "average_precision": average_precision + nan}

    def roc_counts(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(true positives, false positives, positives, negatives) at each threshold, descending.

        Column 0 is the threshold +inf (nothing called positive); column j >= 1 is
        ``thresholds_desc[j - 1]`` (cases with score >= it called positive).
        """
        cum_pos, cum_neg = self._class_counts(counts)
        n_pos = cum_pos[:, -1:]
        n_neg = cum_neg[:, -1:]
        tp = np.empty((counts.shape[0], self.thresholds_desc.size + 1), dtype=np.int64)
        fp = np.empty_like(tp)
        tp[:, 0] = 0
        fp[:, 0] = 0
        tp[:, 1:] = n_pos - cum_pos[:, self._pos_below_all]
        fp[:, 1:] = n_neg - cum_neg[:, self._neg_below_all]
        return tp, fp, n_pos[:, 0], n_neg[:, 0]

    def sensitivity_at_specificity(self, counts: np.ndarray, specificity: float | np.ndarray):
        """Highest sensitivity among thresholds with specificity >= ``specificity``, per row.

        ``specificity`` is one target or one per row. Returns (sensitivity, specificity reached, threshold
        column) arrays.
        """
        tp, fp, n_pos, n_neg = self.roc_counts(counts)
        target = np.reshape(specificity, (-1, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            spec = (n_neg[:, None] - fp) / n_neg[:, None]
            # Specificity falls and sensitivity rises as the threshold drops: the last threshold that
            # keeps the specificity is the most sensitive one (column 0 always qualifies).
            column = np.maximum((spec >= target).sum(axis=1) - 1, 0)
            rows = np.arange(tp.shape[0])
            sens = tp[rows, column] / n_pos
            reached = spec[rows, column]
        return sens, reached, column

    def specificity_at_sensitivity(self, counts: np.ndarray, sensitivity: float | np.ndarray):
        """Highest specificity among thresholds with sensitivity >= ``sensitivity``, per row.

        ``sensitivity`` is one target or one per row. Returns (specificity, sensitivity reached, threshold
        column) arrays.
        """
        tp, fp, n_pos, n_neg = self.roc_counts(counts)
        target = np.reshape(sensitivity, (-1, 1))
        with np.errstate(invalid="ignore", divide="ignore"):
            sens = tp / n_pos[:, None]
            # The first (highest) threshold reaching the sensitivity has the highest specificity; the
            # lowest threshold reaches sensitivity 1, so a column always exists.
            column = np.minimum((sens < target).sum(axis=1), tp.shape[1] - 1)
            rows = np.arange(tp.shape[0])
            spec = (n_neg - fp[rows, column]) / n_neg
            reached = sens[rows, column]
        return spec, reached, column

    def threshold_of_column(self, column: int) -> float:
        """The score threshold of a ``roc_counts`` column (+inf for column 0)."""
        return float("inf") if column == 0 else float(self.thresholds_desc[column - 1])

    def thresholds_of_columns(self, columns: np.ndarray) -> np.ndarray:
        """:meth:`threshold_of_column` for an array of columns."""
        return np.concatenate([[np.inf], self.thresholds_desc])[columns]


def threshold_at_rate(unit_scores: np.ndarray, unit_counts: np.ndarray, rate: float) -> np.ndarray:
    """Per row of ``unit_counts``, the lowest threshold calling at most ``rate`` of the units positive.

    A unit (e.g. an exam) is called positive when its score is >= the threshold; ``unit_counts`` (rows,
    units) weights the units as a bootstrap replicate does. +inf (nobody called) when even the highest
    score would call too many.
    """
    distinct_desc = np.unique(unit_scores)[::-1]
    order = np.argsort(unit_scores, kind="stable")
    sorted_scores = unit_scores[order]
    cumulative = _cumulative(unit_counts[:, order])
    total = cumulative[:, -1:]
    # Units with score >= t: all minus those below t.
    called = total - cumulative[:, np.searchsorted(sorted_scores, distinct_desc, side="left")]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = called / total
    # The called fraction rises as the threshold drops: keep the last threshold within the rate.
    column = (fraction <= rate + 1e-12).sum(axis=1)
    return np.concatenate([[np.inf], distinct_desc])[column]


def unit_counts(n_cases: int) -> np.ndarray:
    """A single 'replicate' in which every case counts once: the point estimate."""
    return np.ones((1, n_cases), dtype=np.int64)
