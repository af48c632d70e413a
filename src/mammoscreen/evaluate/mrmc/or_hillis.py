"""The Obuchowski-Rockette analysis with Hillis's degrees of freedom (RRRC, FRRC, RRFC), and the DBM
variance components for comparison with OR-DBM MRMC (see the package docstring for the formulae)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
from scipy import stats

from ..validation import check_fraction
from .covariance import auc_covariance, jackknife_aucs, or_components, reader_aucs
from .data import MRMCData
from .results import (
    AnovaTable,
    ChiSquareTest,
    DBMVarianceComponents,
    FixedReadersAnalysis,
    FTest,
    ModalityComponents,
    ModalityDifference,
    MRMCResult,
    ORVarianceComponents,
    RandomReadersAnalysis,
    ReaderComponents,
    ReaderDifference,
    SingleModality,
)

__all__ = ["MRMCResult", "obuchowski_rockette", "dbm_variance_components", "hillis_single_rrrc", "tie_notes"]


def _t_interval(estimate: float, se: float, df: float, confidence: float) -> tuple[float, float]:
    quantile = stats.norm.ppf(0.5 + confidence / 2) if math.isinf(df) else stats.t.ppf(0.5 + confidence / 2, df)
    return estimate - quantile * se, estimate + quantile * se


def _t_p_value(statistic: float, df: float) -> float:
    if math.isnan(statistic):
        return math.nan
    return float(2 * (stats.norm.sf(abs(statistic)) if math.isinf(df) else stats.t.sf(abs(statistic), df)))


def _ratio(numerator: float, denominator: float) -> float:
    if denominator > 0:
        return numerator / denominator
    return math.nan if numerator == 0 else math.inf


def hillis_single_rrrc(ms_r: float, cov2: float, n_readers: int) -> tuple[float, float]:
    """(standard error, Hillis ddf) of a readers' mean AUC with readers and cases random.

    SE^2 = [MS(R) + r max(Cov2, 0)] / r; ddf = [MS(R) + r max(Cov2, 0)]^2 / [MS(R)^2 / (r - 1)].
    """
    term = ms_r + n_readers * max(cov2, 0.0)
    se = math.sqrt(term / n_readers)
    ddf = math.inf if ms_r == 0 else term ** 2 / (ms_r ** 2 / (n_readers - 1))
    return se, ddf


def tie_notes(data: MRMCData) -> list[str]:
    """Notes on readers whose scores are all equal: such a reader ranks no case above another (AUC 0.5 from ties),
    and when every reader does, the variances are 0 and F, p and the intervals say nothing."""
    tied = [(m, rd) for i, m in enumerate(data.modalities) for j, rd in enumerate(data.readers)
            if np.ptp(data.scores[i, j]) == 0]
    if not tied:
        return []
    if len(tied) == len(data.modalities) * len(data.readers):
        return ["every reader gives every case the same score in every modality: the data carry no ranking "
                "information - each AUC is 0.5 from ties alone, every variance is 0, so F and p are undefined (nan) "
                "and the intervals have no width; check that the score column holds the readers' ratings"]
    shown = ", ".join(f"{rd} in {m}" for m, rd in tied[:5]) + (f", ... ({len(tied)} in all)" if len(tied) > 5 else "")
    return [f"{shown}: the same score for every case - no ranking information (AUC 0.5 from ties alone)"]



def obuchowski_rockette(data: MRMCData, covariance: str = "jackknife", confidence: float = 0.95) -> MRMCResult:
    """Obuchowski-Rockette MRMC analysis of the empirical AUC (RRRC, FRRC, RRFC) with Hillis's ddf.

    Parameters
    ----------
    data : fully crossed reader study.
    covariance : 'jackknife' (default) or 'delong'.
    confidence : coverage of the confidence intervals.
    """
    confidence = check_fraction(confidence, "confidence")
    t, r, c = data.scores.shape
    aucs = reader_aucs(data)
    cov = auc_covariance(data, covariance)
    components = or_components(cov)
    var_error, cov1, cov2, cov3 = components.var_error, components.cov1, components.cov2, components.cov3

    modality_means = aucs.mean(axis=1)
    reader_means = aucs.mean(axis=0)
    grand = float(aucs.mean())
    notes = tie_notes(data)

    ms_r_each = [float(((aucs[i] - modality_means[i]) ** 2).sum() / (r - 1)) if r > 1 else math.nan for i in range(t)]
    per_modality = {}
    for i, m in enumerate(data.modalities):
        block = cov[i, :, i, :]
        off = block[~np.eye(r, dtype=bool)]
        per_modality[m] = ModalityComponents(ms_r_each[i], float(np.diag(block).mean()),
                                             float(off.mean()) if off.size else math.nan)
    per_reader = {}
    for j, rd in enumerate(data.readers):
        block = cov[:, j, :, j]
        off = block[~np.eye(t, dtype=bool)]
        per_reader[rd] = ReaderComponents(float(np.diag(block).mean()), float(off.mean()) if off.size else math.nan)

    ms_r = float(t * ((reader_means - grand) ** 2).sum() / (r - 1)) if r > 1 else math.nan
    ms_t = ms_tr = None
    if t > 1:
        ms_t = float(r * ((modality_means - grand) ** 2).sum() / (t - 1))
        if r > 1:
            interaction = aucs - modality_means[:, None] - reader_means[None, :] + grand
            ms_tr = float((interaction ** 2).sum() / ((t - 1) * (r - 1)))
    anova = AnovaTable(ms_r, r - 1, {m: ms_r_each[i] for i, m in enumerate(data.modalities)}, ms_t,
                       t - 1 if t > 1 else None, ms_tr, (t - 1) * (r - 1) if ms_tr is not None else None)

    var_r = var_tr = None
    if ms_tr is not None:
        var_tr = ms_tr - var_error + cov1 + cov2 - cov3
        var_r = (ms_r - var_error - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
    elif r > 1:
        var_r = ms_r - var_error + cov2
    or_vc = ORVarianceComponents(var_error, cov1, cov2, cov3, var_r, var_tr)
    dbm = dbm_variance_components(data) if covariance == "jackknife" else None

    pairs = list(combinations(range(t), 2))

    def difference(a: int, b: int, se: float, df: float, kind: str) -> ModalityDifference:
        estimate = float(modality_means[a] - modality_means[b])
        statistic = _ratio(estimate, se)
        low, high = _t_interval(estimate, se, df, confidence)
        return ModalityDifference((data.modalities[a], data.modalities[b]), estimate, se, df, statistic,
                                  _t_p_value(statistic, df), low, high, kind)

    # Random readers, random cases.
    rrrc = None
    if r > 1:
        test = None
        if ms_t is not None and ms_tr is not None:
            error_term = ms_tr + r * max(cov2 - cov3, 0.0)
            ddf = math.inf if ms_tr == 0 else error_term ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))
            f_stat = _ratio(ms_t, error_term)
            p = (float(stats.f.sf(f_stat, t - 1, ddf)) if math.isfinite(ddf)
                 else float(stats.chi2.sf(f_stat * (t - 1), t - 1)))
            test = FTest(f_stat, t - 1, ddf, p, [difference(a, b, math.sqrt(2 * error_term / r), ddf, "t")
                                                 for a, b in pairs], error_term)
        single = {}
        for i, m in enumerate(data.modalities):
            se, ddf = hillis_single_rrrc(ms_r_each[i], per_modality[m].cov2, r)
            low, high = _t_interval(float(modality_means[i]), se, ddf, confidence)
            single[m] = SingleModality(float(modality_means[i]), se, low, high, df=ddf, ms_r=ms_r_each[i],
                                       cov2=per_modality[m].cov2)
        rrrc = RandomReadersAnalysis(single, test)
    else:
        notes.append("one reader: the random-reader analyses (RRRC, RRFC) need at least two readers")

    # Fixed readers, random cases.
    chi_test = per_reader_rows = None
    if ms_t is not None:
        error_term = var_error - cov1 + ((r - 1) * max(cov2 - cov3, 0.0) if r > 1 else 0.0)
        chi2 = _ratio((t - 1) * ms_t, error_term)
        chi_test = ChiSquareTest(chi2, t - 1, error_term, float(stats.chi2.sf(chi2, t - 1)),
                                 [difference(a, b, math.sqrt(2 * error_term / r), math.inf, "z") for a, b in pairs])
        per_reader_rows = []
        for a, b in pairs:
            for j, rd in enumerate(data.readers):
                estimate = float(aucs[a, j] - aucs[b, j])
                se = math.sqrt(max(cov[a, j, a, j] + cov[b, j, b, j] - 2 * cov[a, j, b, j], 0.0))
                z = _ratio(estimate, se)
                low, high = _t_interval(estimate, se, math.inf, confidence)
                per_reader_rows.append(ReaderDifference(rd, (data.modalities[a], data.modalities[b]), estimate, se, z,
                                                        _t_p_value(z, math.inf), low, high))
    single = {}
    for i, m in enumerate(data.modalities):
        comp = per_modality[m]
        cov2_i = comp.cov2 if r > 1 else 0.0
        se = math.sqrt((comp.var_error + (r - 1) * max(cov2_i, 0.0)) / r)
        low, high = _t_interval(float(modality_means[i]), se, math.inf, confidence)
        single[m] = SingleModality(float(modality_means[i]), se, low, high, var_error=comp.var_error, cov2=comp.cov2)
    frrc = FixedReadersAnalysis(single, chi_test, per_reader_rows)

    # Random readers, fixed cases.
    rrfc = None
    if r > 1:
        f_test = None
        if ms_t is not None and ms_tr is not None:
            df = (t - 1) * (r - 1)
            f_stat = _ratio(ms_t, ms_tr)
            f_test = FTest(f_stat, t - 1, df, float(stats.f.sf(f_stat, t - 1, df)),
                           [difference(a, b, math.sqrt(2 * ms_tr / r), df, "t") for a, b in pairs])
        single = {}
        for i, m in enumerate(data.modalities):
            se = math.sqrt(ms_r_each[i] / r)
            low, high = _t_interval(float(modality_means[i]), se, r - 1, confidence)
            single[m] = SingleModality(float(modality_means[i]), se, low, high, df=r - 1)
        rrfc = RandomReadersAnalysis(single, f_test)
    if t == 1:
        notes.append("one modality: no modality comparison; single-modality CIs only")
    return MRMCResult(data, covariance, confidence, aucs, cov, anova, or_vc, per_modality, per_reader, frrc, rrrc,
                      rrfc, dbm, notes)


def dbm_variance_components(data: MRMCData) -> DBMVarianceComponents | None:
    """Dorfman-Berbaum-Metz variance components from jackknife pseudovalues of the AUC.

    Pseudovalues c AUC - (c - 1) AUC(-k), shifted so that each reader-modality mean equals its AUC,
    go through a three-way (modality x reader x case) ANOVA; the components follow from the mean
    squares. Needs at least two modalities and two readers (None otherwise).
    """
    t, r, c = data.scores.shape
    if t < 2 or r < 2:
        return None
    aucs = reader_aucs(data)
    pseudo = c * aucs[None] - (c - 1) * jackknife_aucs(data)
    pseudo += (aucs - pseudo.mean(axis=0))[None]
    y = pseudo.transpose(1, 2, 0)  # modality, reader, case
    g = y.mean()
    m_t, m_r, m_c = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=(0, 1))
    m_tr, m_tc, m_rc = y.mean(axis=2), y.mean(axis=1), y.mean(axis=0)
    ms_r = t * c * ((m_r - g) ** 2).sum() / (r - 1)
    ms_c = t * r * ((m_c - g) ** 2).sum() / (c - 1)
    ms_tr = c * ((m_tr - m_t[:, None] - m_r[None, :] + g) ** 2).sum() / ((t - 1) * (r - 1))
    ms_tc = r * ((m_tc - m_t[:, None] - m_c[None, :] + g) ** 2).sum() / ((t - 1) * (c - 1))
    ms_rc = t * ((m_rc - m_r[:, None] - m_c[None, :] + g) ** 2).sum() / ((r - 1) * (c - 1))
    residual = (y - m_tr[:, :, None] - m_tc[:, None, :] - m_rc[None, :, :] + m_t[:, None, None]
                + m_r[None, :, None] + m_c[None, None, :] - g)
    ms_trc = (residual ** 2).sum() / ((t - 1) * (r - 1) * (c - 1))
    return DBMVarianceComponents(var_r=float((ms_r - ms_tr - ms_rc + ms_trc) / (t * c)),
                                 var_c=float((ms_c - ms_tc - ms_rc + ms_trc) / (t * r)),
                                 var_tr=float((ms_tr - ms_trc) / c),
                                 var_tc=float((ms_tc - ms_trc) / r),
                                 var_rc=float((ms_rc - ms_trc) / t),
                                 var_trc_error=float(ms_trc))
