"""Typed results of the MRMC analyses: what :func:`.obuchowski_rockette` and :func:`.ai_versus_readers` return.

Every figure is an attribute with a name that says what it is (``result.rrrc.test.p_value``); ``to_dict()``
gives the nested dictionaries ``mrmc.json`` holds, with the component names of the literature as keys
(``"Var(Error)"``, ``"MS(T*R)"``) in the file's order. Fields that do not apply to a design (a modality test
with one modality, random-reader analyses with one reader) are None and left out of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import MRMCData

__all__ = [
    "FIGURE_OF_MERIT", "AI_METHOD", "ModalityDifference", "ReaderDifference", "SingleModality", "FTest",
    "ChiSquareTest", "RandomReadersAnalysis", "FixedReadersAnalysis", "AnovaTable", "ORVarianceComponents",
    "ModalityComponents", "ReaderComponents", "DBMVarianceComponents", "MRMCResult", "DifferenceEstimate",
    "DifferenceComponents", "NonInferiorityTest", "AIVersusReadersResult",
]

FIGURE_OF_MERIT = "empirical AUC (trapezoidal / Wilcoxon)"
AI_METHOD = ("Hillis single-treatment OR analysis of AUC(AI) - AUC(reader) (1T-RRRC); the model is fixed, "
             "readers and cases random")


def _without_none(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs if value is not None}


# ----------------------------------------------------------------------------------------------
# Pieces of the OR analysis
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModalityDifference:
    """AUC(first) - AUC(second) of two modalities' reader means, its test and CI."""

    modalities: tuple[str, str]
    difference: float
    standard_error: float
    df: float  # inf for a normal (z) reference distribution
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    statistic_name: str = "t"  # 't' or 'z'

    def to_dict(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "difference": self.difference,
                "standard_error": self.standard_error, "df": self.df, self.statistic_name: self.statistic,
                "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class ReaderDifference:
    """One reader's own modality difference (fixed readers): a z test."""

    reader: str
    modalities: tuple[str, str]
    difference: float
    standard_error: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"reader": self.reader, "modalities": list(self.modalities), "difference": self.difference,
                "standard_error": self.standard_error, "z": self.z, "p_value": self.p_value, "ci_low": self.ci_low,
                "ci_high": self.ci_high}


@dataclass(frozen=True)
class SingleModality:
    """The readers' mean AUC in one modality with its CI; the terms its standard error came from."""

    auc: float
    standard_error: float
    ci_low: float
    ci_high: float
    df: float | None = None  # None: normal quantiles (fixed readers)
    ms_r: float | None = None  # MS(R) of the modality (random readers and cases)
    var_error: float | None = None  # Var(Error) of the modality (fixed readers)
    cov2: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none([("auc", self.auc), ("standard_error", self.standard_error), ("df", self.df),
                              ("ci_low", self.ci_low), ("ci_high", self.ci_high), ("MS(R)", self.ms_r),
                              ("Var(Error)", self.var_error), ("Cov2", self.cov2)])


@dataclass(frozen=True)
class FTest:
    """The F test of equal modality AUCs (random readers) and the pairwise differences."""

    F: float
    df_numerator: int
    df_denominator: float
    p_value: float
    differences: list[ModalityDifference]
    error_term: float | None = None  # RRRC: MS(T*R) + r max(Cov2 - Cov3, 0)

    def to_dict(self) -> dict[str, Any]:
        return _without_none([("F", self.F), ("df_numerator", self.df_numerator),
                              ("df_denominator", self.df_denominator), ("error_term", self.error_term),
                              ("p_value", self.p_value), ("differences", [d.to_dict() for d in self.differences])])


@dataclass(frozen=True)
class ChiSquareTest:
    """The chi-square test of equal modality AUCs (fixed readers) and the pairwise differences."""

    chi2: float
    df: int
    error_term: float
    p_value: float
    differences: list[ModalityDifference]

    def to_dict(self) -> dict[str, Any]:
        return {"chi2": self.chi2, "df": self.df, "error_term": self.error_term, "p_value": self.p_value,
                "differences": [d.to_dict() for d in self.differences]}


@dataclass(frozen=True)
class RandomReadersAnalysis:
    """RRRC or RRFC: the modality test (None with one modality) and each modality's CI."""

    single_modality: dict[str, SingleModality]
    test: FTest | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**(self.test.to_dict() if self.test is not None else {}),
                "single_modality": {m: s.to_dict() for m, s in self.single_modality.items()}}


@dataclass(frozen=True)
class FixedReadersAnalysis:
    """FRRC: the modality test and each reader's difference (None with one modality), each modality's CI."""

    single_modality: dict[str, SingleModality]
    test: ChiSquareTest | None = None
    per_reader: list[ReaderDifference] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.test.to_dict() if self.test is not None else {}
        if self.per_reader is not None:
            out["per_reader"] = [row.to_dict() for row in self.per_reader]
        out["single_modality"] = {m: s.to_dict() for m, s in self.single_modality.items()}
        return out


@dataclass(frozen=True)
class AnovaTable:
    """Mean squares of the reader-modality AUCs (NaN for MS(R) with one reader)."""

    ms_r: float
    df_r: int
    ms_r_per_modality: dict[str, float]
    ms_t: float | None = None  # two or more modalities
    df_t: int | None = None
    ms_tr: float | None = None  # two or more modalities and readers
    df_tr: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none([("MS(R)", self.ms_r), ("df(R)", self.df_r),
                              ("MS(R) per modality", dict(self.ms_r_per_modality)), ("MS(T)", self.ms_t),
                              ("df(T)", self.df_t), ("MS(T*R)", self.ms_tr), ("df(T*R)", self.df_tr)])


@dataclass(frozen=True)
class ORVarianceComponents:
    """The OR model's covariances (averages of the AUC covariance) and, with two or more readers, the reader
    variances derived from the mean squares."""

    var_error: float
    cov1: float
    cov2: float
    cov3: float
    var_r: float | None = None
    var_tr: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none([("Var(R)", self.var_r), ("Var(T*R)", self.var_tr), ("Var(Error)", self.var_error),
                              ("Cov1", self.cov1), ("Cov2", self.cov2), ("Cov3", self.cov3)])


@dataclass(frozen=True)
class ModalityComponents:
    ms_r: float
    var_error: float
    cov2: float

    def to_dict(self) -> dict[str, Any]:
        return {"MS(R)": self.ms_r, "Var(Error)": self.var_error, "Cov2": self.cov2}


@dataclass(frozen=True)
class ReaderComponents:
    var_error: float
    cov1: float

    def to_dict(self) -> dict[str, Any]:
        return {"Var(Error)": self.var_error, "Cov1": self.cov1}


@dataclass(frozen=True)
class DBMVarianceComponents:
    """Dorfman-Berbaum-Metz variance components from jackknife pseudovalues."""

    var_r: float
    var_c: float
    var_tr: float
    var_tc: float
    var_rc: float
    var_trc_error: float  # Var(T*R*C) + Var(Error): not separable without replicated readings

    def to_dict(self) -> dict[str, Any]:
        return {"Var(R)": self.var_r, "Var(C)": self.var_c, "Var(T*R)": self.var_tr, "Var(T*C)": self.var_tc,
                "Var(R*C)": self.var_rc, "Var(T*R*C)+Var(Error)": self.var_trc_error}


@dataclass
class MRMCResult:
    """Every figure of an OR analysis; :meth:`to_dict` is what ``mrmc.json`` holds."""

    data: MRMCData
    covariance_method: str
    confidence: float
    aucs: np.ndarray  # (modalities, readers)
    covariance: np.ndarray  # (t, r, t, r)
    anova: AnovaTable
    or_variance_components: ORVarianceComponents
    per_modality_components: dict[str, ModalityComponents]
    per_reader_components: dict[str, ReaderComponents]
    frrc: FixedReadersAnalysis
    rrrc: RandomReadersAnalysis | None = None  # None with one reader
    rrfc: RandomReadersAnalysis | None = None  # None with one reader
    dbm_variance_components: DBMVarianceComponents | None = None  # jackknife, two or more modalities and readers
    notes: list[str] | None = None

    @property
    def auc(self) -> dict[str, dict[str, float]]:
        """AUC of each reader in each modality: ``auc[modality][reader]``."""
        return {m: {rd: float(self.aucs[i, j]) for j, rd in enumerate(self.data.readers)}
                for i, m in enumerate(self.data.modalities)}

    @property
    def modality_means(self) -> dict[str, float]:
        """The readers' mean AUC in each modality."""
        means = self.aucs.mean(axis=1)
        return {m: float(means[i]) for i, m in enumerate(self.data.modalities)}

    def to_dict(self) -> dict[str, Any]:
        from ... import __version__

        data = self.data
        out: dict[str, Any] = {
            "tool": "mammoscreen mrmc", "version": __version__,
            "data": {"source": data.source, "modalities": data.modalities, "readers": data.readers,
                     "n_cases": len(data.cases), "n_normal": data.n_normal, "n_abnormal": data.n_abnormal},
            "figure_of_merit": FIGURE_OF_MERIT,
            "covariance_method": self.covariance_method,
            "confidence": self.confidence,
            "auc": self.auc,
            "modality_means": self.modality_means,
            "notes": list(self.notes or []),
            "anova": self.anova.to_dict(),
            "or_variance_components": self.or_variance_components.to_dict(),
            "per_modality_components": {m: c.to_dict() for m, c in self.per_modality_components.items()},
            "per_reader_components": {rd: c.to_dict() for rd, c in self.per_reader_components.items()},
        }
        if self.covariance_method == "jackknife":
            dbm = self.dbm_variance_components
            out["dbm_variance_components"] = dbm.to_dict() if dbm is not None else {}
        if self.rrrc is not None:
            out["rrrc"] = self.rrrc.to_dict()
        out["frrc"] = self.frrc.to_dict()
        if self.rrfc is not None:
            out["rrfc"] = self.rrfc.to_dict()
        return out


# ----------------------------------------------------------------------------------------------
# A standalone model against the readers
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DifferenceEstimate:
    """AUC(AI) - mean reader AUC with its t test and CI."""

    difference: float
    standard_error: float
    df: float
    t: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        return {"difference": self.difference, "standard_error": self.standard_error, "df": self.df, "t": self.t,
                "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class DifferenceComponents:
    """Variance components of the differences AUC(AI) - AUC(reader)."""

    var_r: float
    var_error: float
    cov2: float
    ms_r: float

    def to_dict(self) -> dict[str, Any]:
        return {"Var(R)": self.var_r, "Var(Error)": self.var_error, "Cov2": self.cov2, "MS(R)": self.ms_r}


@dataclass(frozen=True)
class NonInferiorityTest:
    """One-sided test of H0: AUC(AI) - mean reader AUC <= -margin."""

    margin: float
    hypothesis: str
    t: float
    df: float
    p_value: float
    one_sided_lower_bound: float
    alpha: float
    non_inferior: bool

    def to_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "hypothesis": self.hypothesis, "t": self.t, "df": self.df,
                "p_value": self.p_value, "one_sided_lower_bound": self.one_sided_lower_bound, "alpha": self.alpha,
                "non_inferior": self.non_inferior}


@dataclass(frozen=True)
class AIVersusReadersResult:
    """AUC(AI) - mean reader AUC, with readers and cases random (1T-RRRC) and readers random only (RRFC)."""

    covariance_method: str
    confidence: float
    ai: str
    ai_auc: float
    reader_aucs: dict[str, float]
    mean_reader_auc: float
    variance_components: DifferenceComponents
    rrrc: DifferenceEstimate
    rrfc: DifferenceEstimate
    non_inferiority: NonInferiorityTest | None = None
    method: str = AI_METHOD

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method, "covariance_method": self.covariance_method, "confidence": self.confidence,
            "ai": self.ai, "ai_auc": self.ai_auc, "reader_aucs": dict(self.reader_aucs),
            "mean_reader_auc": self.mean_reader_auc, "variance_components": self.variance_components.to_dict(),
            "rrrc": self.rrrc.to_dict(), "rrfc": self.rrfc.to_dict(),
        }
        if self.non_inferiority is not None:
            out["non_inferiority"] = self.non_inferiority.to_dict()
        return out
