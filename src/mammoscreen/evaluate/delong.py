"""DeLong's test of correlated AUROCs: structural components, their covariance, the paired test.

DeLong, DeLong & Clarke-Pearson (1988) estimate the covariance of correlated AUROCs from the
structural components of the Mann-Whitney statistic. Here they are computed with the fast midrank
algorithm of Sun & Xu (2014): with midranks of each positive among the positives (``T_X``), of each
negative among the negatives (``T_Y``) and of every case among all cases (``T_Z``), the components
are ``V10 = (T_Z - T_X) / n`` for positives and ``V01 = 1 - (T_Z - T_Y) / m`` for negatives (m
positives, n negatives), and ``Cov(AUC) = S10 / m + S01 / n`` with S10, S01 their sample
covariance matrices across models. Cost O(k (m + n) log(m + n)) for k models instead of O(k m n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from .validation import check_binary_problem, check_fraction, check_labels, check_scores

__all__ = ["delong_components", "delong_covariance", "DeLongTest", "delong_test", "delong_from_covariance"]


def delong_components(y_true: np.ndarray, y_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUROCs and DeLong structural components of each row of ``y_scores`` (already validated).

    Returns (auc of shape (k,), V10 of shape (k, m) over positives, V01 of shape (k, n) over negatives).
    """
    positive = y_true == 1
    m = int(positive.sum())
    n = y_true.size - m
    pos_scores = y_scores[:, positive]
    neg_scores = y_scores[:, ~positive]
    rank_all = stats.rankdata(np.concatenate([pos_scores, neg_scores], axis=1), axis=1)
    rank_pos = stats.rankdata(pos_scores, axis=1)
    rank_neg = stats.rankdata(neg_scores, axis=1)
    # A positive's rank among all cases minus its rank among positives = negatives it beats (ties 1/2).
    v10 = (rank_all[:, :m] - rank_pos) / n
    v01 = 1.0 - (rank_all[:, m:] - rank_neg) / m
    auc = v10.mean(axis=1)
    return auc, v10, v01


def delong_covariance(y_true: Any, y_scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs of several models on the same cases and DeLong's estimate of their covariance.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_scores : array of shape (k, n), one row of scores per model.

    Returns
    -------
    auc : array of shape (k,).
    covariance : array of shape (k, k).
    """
    y, s = check_binary_problem(y_true, np.atleast_2d(y_scores), score_ndim=2)
    auc, v10, v01 = delong_components(y, s)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((s.shape[0], s.shape[0]))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((s.shape[0], s.shape[0]))
    return auc, s10 / m + s01 / n


@dataclass(frozen=True)
class DeLongTest:
    """Paired DeLong test of AUROC(a) - AUROC(b) = 0, with a normal-theory CI of the difference."""

    auc_a: float
    auc_b: float
    difference: float
    standard_error: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def delong_test(y_true: Any, score_a: Any, score_b: Any, confidence: float = 0.95) -> DeLongTest:
    """Paired DeLong test comparing two models' AUROCs on the same cases (two-sided).

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    score_a, score_b : arrays of shape (n,), the two models' scores for the same cases.
    confidence : coverage of the CI of the difference.
    """
    confidence = check_fraction(confidence, "confidence")
    n = check_labels(y_true).size  # each vector checked on its own, so that a bad one is named
    scores = np.vstack([check_scores(score_a, n, "score_a"), check_scores(score_b, n, "score_b")])
    auc, cov = delong_covariance(y_true, scores)
    return delong_from_covariance(auc, cov, 0, 1, confidence)


def delong_from_covariance(auc: np.ndarray, cov: np.ndarray, a: int, b: int, confidence: float) -> DeLongTest:
    difference = float(auc[a] - auc[b])
    variance = float(cov[a, a] + cov[b, b] - 2 * cov[a, b])
    se = math.sqrt(max(variance, 0.0))
    if se > 0:
        z = difference / se
        p = float(2 * stats.norm.sf(abs(z)))
    else:
        # Identical rankings: no variance and no difference.
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        p = 1.0 if difference == 0 else 0.0
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return DeLongTest(float(auc[a]), float(auc[b]), difference, se, float(z), p, difference - half, difference + half,
                      confidence)
