"""A standalone model against a group of readers: Hillis's single-treatment OR method on the differences
AUC(AI) - AUC(reader) (1T-RRRC), the model a fixed reader, with an optional non-inferiority test."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

from ..validation import EvaluationInputError, check_fraction, check_labels
from .covariance import auc_covariance, reader_aucs
from .data import MRMCData
from .or_hillis import _ratio, _t_interval, _t_p_value, hillis_single_rrrc
from .results import AIVersusReadersResult, DifferenceComponents, DifferenceEstimate, NonInferiorityTest

__all__ = ["AIVersusReadersResult", "ai_versus_readers"]


def ai_versus_readers(truth: Any, reader_scores: Any, ai_score: Any, *, reader_names: Sequence[str] | None = None,
                      ai_name: str = "AI", covariance: str = "jackknife", confidence: float = 0.95,
                      margin: float | None = None, source: str = "reader study") -> AIVersusReadersResult:
    """Compare a standalone model with a group of readers on the same cases (single modality).

    The model is a fixed "reader"; the readers are a random sample. With D_j = AUC(AI) - AUC(reader j),
    Hillis's single-treatment OR method applied to the D_j gives SE^2 = [MS(R) + r max(Cov2_D, 0)] / r
    and ddf = [MS(R) + r max(Cov2_D, 0)]^2 / [MS(R)^2 / (r - 1)], where Cov2_D is the mean covariance of
    different readers' differences (the case-sampling correlation that pairs them) and MS(R) the
    readers' AUC mean square. With ``margin`` (e.g. 0.05), a one-sided non-inferiority test of
    H0: AUC(AI) - mean reader AUC <= -margin is added.

    Parameters
    ----------
    truth : array of shape (c,), 0/1.
    reader_scores : array of shape (r, c), each reader's scores of the cases.
    ai_score : array of shape (c,), the model's scores.
    reader_names, ai_name : labels for the output.
    covariance : 'jackknife' or 'delong'.
    confidence : CI coverage (two-sided).
    margin : non-inferiority margin on the AUC scale (None: no non-inferiority test).
    """
    confidence = check_fraction(confidence, "confidence")
    reader_scores = np.atleast_2d(np.asarray(reader_scores, dtype=float))
    ai_score = np.asarray(ai_score, dtype=float)
    r = reader_scores.shape[0]
    if r < 2:
        raise EvaluationInputError(f"{source}: comparing a model with readers needs at least two readers, got {r}")
    names = list(reader_names) if reader_names is not None else [str(j + 1) for j in range(r)]
    all_scores = np.vstack([reader_scores, ai_score[None, :]])[None]
    data = MRMCData(["single"], names + [ai_name], [str(k) for k in range(ai_score.size)],
                    check_labels(truth, "truth", source), all_scores, source)
    aucs = reader_aucs(data)[0]
    cov = auc_covariance(data, covariance)[0, :, 0, :]
    reader_auc, ai_auc = aucs[:r], float(aucs[r])
    diffs = ai_auc - reader_auc
    # Covariance of the differences: C_jk - C_j,AI - C_AI,k + C_AI,AI.
    cov_d = cov[:r, :r] - cov[:r, r][:, None] - cov[r, :r][None, :] + cov[r, r]
    off = ~np.eye(r, dtype=bool)
    var_error_d = float(np.diag(cov_d).mean())
    cov2_d = float(cov_d[off].mean())
    mean_diff = float(diffs.mean())
    ms_r = float(((diffs - mean_diff) ** 2).sum() / (r - 1))
    se, ddf = hillis_single_rrrc(ms_r, cov2_d, r)
    t_stat = _ratio(mean_diff, se)
    low, high = _t_interval(mean_diff, se, ddf, confidence)
    rrrc = DifferenceEstimate(mean_diff, se, ddf, t_stat, _t_p_value(t_stat, ddf), low, high)
    se_fc = math.sqrt(ms_r / r)
    t_fc = _ratio(mean_diff, se_fc)
    low_fc, high_fc = _t_interval(mean_diff, se_fc, r - 1, confidence)
    rrfc = DifferenceEstimate(mean_diff, se_fc, r - 1, t_fc, _t_p_value(t_fc, r - 1), low_fc, high_fc)
    non_inferiority = None
    if margin is not None:
        margin = float(margin)
        if not 0 < margin < 1:
            raise EvaluationInputError(f"the non-inferiority margin must lie between 0 and 1 (AUC scale), got {margin}")
        t_ni = _ratio(mean_diff + margin, se)
        p_ni = float(stats.t.sf(t_ni, ddf) if math.isfinite(ddf) else stats.norm.sf(t_ni))
        alpha = 1 - confidence
        quantile = stats.t.ppf(1 - alpha, ddf) if math.isfinite(ddf) else stats.norm.ppf(1 - alpha)
        non_inferiority = NonInferiorityTest(margin, f"H0: AUC({ai_name}) - mean reader AUC <= -{margin:g}", t_ni,
                                             ddf, p_ni, float(mean_diff - quantile * se), alpha, bool(p_ni < alpha))
    return AIVersusReadersResult(
        covariance_method=covariance, confidence=confidence, ai=ai_name, ai_auc=ai_auc,
        reader_aucs={name: float(a) for name, a in zip(names, reader_auc)}, mean_reader_auc=float(reader_auc.mean()),
        variance_components=DifferenceComponents(ms_r - var_error_d + cov2_d, var_error_d, cov2_d, ms_r),
        rrrc=rrrc, rrfc=rrfc, non_inferiority=non_inferiority)
