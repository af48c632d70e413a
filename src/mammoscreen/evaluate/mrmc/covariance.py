"""Figures of merit of an MRMC study and their covariance over cases.

The empirical (Wilcoxon) AUC of each reader in each modality; its covariance by the jackknife (leave one case
out, from DeLong's structural components without recomputation) or by DeLong's method; and the OR model's
averages of that covariance (Var(Error), Cov1, Cov2, Cov3).
"""

from __future__ import annotations

import math

import numpy as np

from ..delong import delong_components
from ..validation import EvaluationInputError
from .data import MRMCData
from .results import ORVarianceComponents

__all__ = ["COVARIANCE_METHODS", "reader_aucs", "jackknife_aucs", "auc_covariance", "or_components"]

COVARIANCE_METHODS = ("jackknife", "delong")


def _flat_components(data: MRMCData):
    t, r, c = data.scores.shape
    return delong_components(data.truth, data.scores.reshape(t * r, c))


def reader_aucs(data: MRMCData) -> np.ndarray:
    """Empirical (Wilcoxon) AUC of each reader in each modality, shape (modalities, readers)."""
    auc, _, _ = _flat_components(data)
    return auc.reshape(data.scores.shape[:2])


def jackknife_aucs(data: MRMCData) -> np.ndarray:
    """Leave-one-case-out AUCs, shape (cases, modalities, readers).

    Removing abnormal case i leaves AUC (m AUC - V10_i) / (m - 1); removing normal case j leaves
    (n AUC - V01_j) / (n - 1), where V10, V01 are DeLong's structural components (m abnormal, n
    normal cases) - no recomputation per case.
    """
    t, r, c = data.scores.shape
    if data.n_abnormal < 2 or data.n_normal < 2:
        raise EvaluationInputError(f"{data.source}: the jackknife needs at least 2 normal and 2 abnormal cases")
    auc, v10, v01 = _flat_components(data)
    m, n = v10.shape[1], v01.shape[1]
    out = np.empty((c, t * r))
    abnormal = data.truth == 1
    out[abnormal] = ((m * auc[:, None] - v10) / (m - 1)).T
    out[~abnormal] = ((n * auc[:, None] - v01) / (n - 1)).T
    return out.reshape(c, t, r)


def auc_covariance(data: MRMCData, method: str = "jackknife") -> np.ndarray:
    """Covariance of the reader-modality AUCs over cases, shape (t, r, t, r).

    ``jackknife``: (c - 1)/c times the sum of squared deviations of the leave-one-case-out AUCs
    (OR-DBM MRMC's and RJafroc's default); ``delong``: S10/m + S01/n from DeLong's components.
    """
    t, r, c = data.scores.shape
    if method == "jackknife":
        values = jackknife_aucs(data).reshape(c, t * r)
        deviations = values - values.mean(axis=0)
        cov = (c - 1) / c * deviations.T @ deviations
    elif method == "delong":
        _, v10, v01 = _flat_components(data)
        cov = np.atleast_2d(np.cov(v10)) / v10.shape[1] + np.atleast_2d(np.cov(v01)) / v01.shape[1]
    else:
        raise EvaluationInputError(f"covariance must be one of {COVARIANCE_METHODS}, got {method!r}")
    return cov.reshape(t, r, t, r)


def or_components(covariance: np.ndarray) -> ORVarianceComponents:
    """Var(Error), Cov1, Cov2, Cov3: averages of the AUC covariance over the OR model's cell pairs.

    Cov1: same reader, different modalities; Cov2: different readers, same modality; Cov3: different
    readers and modalities. Averages over an empty set (one modality or one reader) are NaN. (Var(R) and
    Var(T*R) need the mean squares too: :func:`.obuchowski_rockette` fills them in.)
    """
    t, r = covariance.shape[:2]
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]

    def mean(mask: np.ndarray) -> float:
        mask = np.broadcast_to(mask, covariance.shape)
        return float(covariance[mask].mean()) if mask.any() else math.nan

    return ORVarianceComponents(var_error=mean(same_t & same_r), cov1=mean(~same_t & same_r),
                                cov2=mean(same_t & ~same_r), cov3=mean(~same_t & ~same_r))
