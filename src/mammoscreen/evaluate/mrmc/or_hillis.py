"""Multi-reader multi-case (MRMC) ROC analysis: Obuchowski-Rockette with Hillis's degrees of freedom.

The figure of merit is the empirical (trapezoidal, Wilcoxon) AUC of each reader in each modality
("treatment"). Its covariance over cases is estimated by the jackknife (leave one case out; the
default, as OR-DBM MRMC and RJafroc) or by DeLong's method, and the Obuchowski-Rockette (OR) model
decomposes it into Var(Error), Cov1 (same reader, different modalities), Cov2 (different readers,
same modality) and Cov3 (different readers and modalities). Three generalisations are reported:

* RRRC - random readers and random cases (Hillis 2007, 2008): F = MS(T) / [MS(T*R) + r max(Cov2 -
  Cov3, 0)] with Hillis's denominator degrees of freedom
  ddf = [MS(T*R) + r max(Cov2 - Cov3, 0)]^2 / {MS(T*R)^2 / [(t - 1)(r - 1)]};
* FRRC - fixed readers, random cases: chi^2 = (t - 1) MS(T) / [Var(Error) - Cov1 + (r - 1) max(Cov2 -
  Cov3, 0)] with t - 1 df, and each reader's own modality difference;
* RRFC - random readers, fixed cases: F = MS(T) / MS(T*R) with (t - 1, (t - 1)(r - 1)) df.

Single-modality CIs use that modality's reader mean square and covariances. The "AI versus readers"
analysis (Hillis's single-treatment method applied to the differences AUC(AI) - AUC(reader), with
the model as a fixed reader; RJafroc calls it 1T-RRRC) compares a standalone model with the readers'
mean, optionally against a non-inferiority margin.

The DBM variance components are reported too (from jackknife pseudovalues), for comparison with
output of OR-DBM MRMC.

References: Obuchowski & Rockette (1995) Commun Stat Simul Comput 24:285; Hillis (2007) Stat Med
26:596; Hillis, Berbaum & Metz (2008) Acad Radiol 15:647; Dorfman, Berbaum & Metz (1992) Invest
Radiol 27:723; DeLong, DeLong & Clarke-Pearson (1988) Biometrics 44:837.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .compare import delong_components
from .validation import EvaluationInputError, check_fraction, check_scores

__all__ = [
    "MRMCData", "read_imrmc", "read_mrmc_csv", "read_mrmc", "mrmc_data_from_frame", "mrmc_from_reader_study",
    "reader_aucs", "jackknife_aucs", "auc_covariance", "or_components", "obuchowski_rockette",
    "dbm_variance_components", "ai_versus_readers", "MRMCResult", "AIVersusReadersResult", "analyse_mrmc_file",
]

COVARIANCE_METHODS = ("jackknife", "delong")


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

@dataclass
class MRMCData:
    """A fully crossed reader study: ``scores[modality, reader, case]`` and the truth of each case."""

    modalities: list[str]
    readers: list[str]
    cases: list[str]
    truth: np.ndarray
    scores: np.ndarray
    source: str = "MRMC data"

    def __post_init__(self) -> None:
        t, r, c = len(self.modalities), len(self.readers), len(self.cases)
        if self.scores.shape != (t, r, c):
            raise EvaluationInputError(f"{self.source}: scores have shape {self.scores.shape}, expected "
                                       f"(modalities, readers, cases) = {(t, r, c)}")
        if self.truth.shape != (c,):
            raise EvaluationInputError(f"{self.source}: truth must have one label per case ({c})")
        if not np.all(np.isfinite(self.scores)):
            raise EvaluationInputError(f"{self.source}: some scores are NaN or infinite; every reading needs a "
                                       "finite score")
        n_abnormal = int(self.truth.sum())
        if n_abnormal == 0 or n_abnormal == c:
            raise EvaluationInputError(f"{self.source}: all {c} cases are {'abnormal' if n_abnormal else 'normal'}; "
                                       "ROC analysis needs both normal (truth 0) and abnormal (truth 1) cases")

    @property
    def n_normal(self) -> int:
        return int((self.truth == 0).sum())

    @property
    def n_abnormal(self) -> int:
        return int((self.truth == 1).sum())

    def select(self, modalities: Sequence[str] | None = None, readers: Sequence[str] | None = None) -> "MRMCData":
        """A copy restricted to some modalities and/or readers (in the given order)."""
        mods = list(modalities) if modalities is not None else list(self.modalities)
        reads = list(readers) if readers is not None else list(self.readers)
        for kind, wanted, have in (("modality", mods, self.modalities), ("reader", reads, self.readers)):
            unknown = [w for w in wanted if w not in have]
            if unknown:
                raise EvaluationInputError(f"{self.source}: unknown {kind} {unknown}; the data has {have}")
        ti = [self.modalities.index(m) for m in mods]
        ri = [self.readers.index(r) for r in reads]
        return MRMCData(mods, reads, list(self.cases), self.truth.copy(), self.scores[np.ix_(ti, ri)].copy(),
                        self.source)


def _truth_value(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value not in (0.0, 1.0):
        raise EvaluationInputError(f"{where}: truth must be 0 (normal) or 1 (abnormal), got {text!r}")
    return int(value)


def mrmc_data_from_frame(frame: pd.DataFrame, truth: dict[str, int] | None = None,
                         source: str = "MRMC data") -> MRMCData:
    """Build :class:`MRMCData` from long-format rows ``reader, case, modality, score`` (+ ``truth``).

    Truth comes from ``truth`` (case -> 0/1) or a ``truth`` column, which must agree within a case.
    The design must be fully crossed: every reader scores every case in every modality.
    """
    required = ["reader", "case", "modality", "score"] + ([] if truth is not None else ["truth"])
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise EvaluationInputError(f"{source}: missing column(s) {missing}; a tidy MRMC CSV needs "
                                   "'reader,case,modality,score,truth' (one row per reading)")
    if frame.empty:
        raise EvaluationInputError(f"{source}: no readings (a header but no rows); a tidy MRMC CSV needs one row "
                                   "'reader,case,modality,score,truth' per reading")
    frame = frame.copy()
    for column in ("reader", "case", "modality"):
        frame[column] = frame[column].astype(str).str.strip()
    scores = pd.to_numeric(frame["score"], errors="coerce")
    bad = ~np.isfinite(scores.to_numpy(dtype=float))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise EvaluationInputError(f"{source}: score {frame['score'].iloc[row]!r} of reader {frame['reader'].iloc[row]}, "
                                   f"case {frame['case'].iloc[row]}, modality {frame['modality'].iloc[row]} is not a "
                                   f"finite number ({int(bad.sum())} such rows)")
    frame["score"] = scores.astype(float)
    if truth is None:
        truth = {}
        for case, values in frame.groupby("case", sort=False)["truth"]:
            labels = {_truth_value(str(v).strip(), f"{source}, case {case}") for v in values}
            if len(labels) > 1:
                raise EvaluationInputError(f"{source}: case {case} has conflicting truth values {sorted(labels)}")
            truth[case] = labels.pop()
    duplicated = frame.duplicated(["modality", "reader", "case"], keep=False)
    if duplicated.any():
        first = frame[duplicated].iloc[0]
        raise EvaluationInputError(f"{source}: reader {first['reader']} scored case {first['case']} in modality "
                                   f"{first['modality']} more than once ({int(duplicated.sum())} duplicated rows); "
                                   "keep one score per reading")
    modalities = list(dict.fromkeys(frame["modality"]))
    readers = list(dict.fromkeys(frame["reader"]))
    cases = list(dict.fromkeys(frame["case"]))
    no_truth = [c for c in cases if c not in truth]
    if no_truth:
        raise EvaluationInputError(f"{source}: {len(no_truth)} case(s) have scores but no truth, e.g. {no_truth[:5]}")
    unread = [c for c in truth if c not in set(cases)]
    if unread:
        raise EvaluationInputError(f"{source}: {len(unread)} case(s) have a truth but no scores, e.g. {unread[:5]}; "
                                   "remove them or add their readings")
    expected = len(modalities) * len(readers) * len(cases)
    if len(frame) != expected:
        present = set(zip(frame["modality"], frame["reader"], frame["case"]))
        absent = [(m, r, c) for m in modalities for r in readers for c in cases if (m, r, c) not in present]
        m, r, c = absent[0]
        raise EvaluationInputError(
            f"{source}: the design is not fully crossed - {len(absent)} of {expected} readings are missing, e.g. "
            f"reader {r}, case {c}, modality {m}. The OR analysis needs every reader to score every case in "
            "every modality")
    t_index = {m: i for i, m in enumerate(modalities)}
    r_index = {r: i for i, r in enumerate(readers)}
    c_index = {c: i for i, c in enumerate(cases)}
    array = np.full((len(modalities), len(readers), len(cases)), np.nan)
    array[frame["modality"].map(t_index).to_numpy(), frame["reader"].map(r_index).to_numpy(),
          frame["case"].map(c_index).to_numpy()] = frame["score"].to_numpy()
    return MRMCData(modalities, readers, cases, np.array([truth[c] for c in cases], dtype=np.int8), array, source)


_HEADER_KEYS = {"N0": "normal cases", "N1": "abnormal cases", "NR": "readers", "NM": "modalities"}


def read_imrmc(path: str | os.PathLike) -> MRMCData:
    """Read the iMRMC text format.

    A free-text header with ``N0:``, ``N1:``, ``NR:``, ``NM:`` lines, then ``BEGIN DATA:`` and one
    row per reading ``readerID,caseID,modalityID,score``; truth rows are ``-1,caseID,truth,0|1``.
    The header counts are checked against the data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    source = str(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise EvaluationInputError(f"{source}: not a text file ({e})") from None
    header: dict[str, int] = {}
    start = None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text.upper().startswith("BEGIN DATA"):
            start = number
            break
        match = re.match(r"^(N0|N1|NR|NM)\s*:\s*(\S+)\s*$", text, flags=re.IGNORECASE)
        if match:
            try:
                header[match.group(1).upper()] = int(match.group(2))
            except ValueError:
                raise EvaluationInputError(f"{source}, line {number}: {match.group(1)} must be a whole number, got "
                                           f"{match.group(2)!r}") from None
    if start is None:
        raise EvaluationInputError(f"{source}: no 'BEGIN DATA:' line; is this an iMRMC file? (header lines N0:, N1:, "
                                   "NR:, NM:, then BEGIN DATA: and rows 'reader,case,modality,score')")
    truth: dict[str, int] = {}
    rows = []
    for number, line in enumerate(lines[start:], start + 1):
        text = line.strip()
        if not text:
            continue
        fields = [f.strip() for f in text.split(",")]
        if len(fields) != 4:
            raise EvaluationInputError(f"{source}, line {number}: expected 4 comma-separated fields "
                                       f"'reader,case,modality,score', got {text!r}")
        reader, case, modality, value = fields
        if modality.lower() == "truth" or reader == "-1":
            label = _truth_value(value, f"{source}, line {number}")
            if case in truth and truth[case] != label:
                raise EvaluationInputError(f"{source}, line {number}: case {case} has two different truth rows")
            truth[case] = label
            continue
        try:
            score = float(value)
        except ValueError:
            raise EvaluationInputError(f"{source}, line {number}: score {value!r} is not a number") from None
        rows.append((reader, case, modality, score))
    if not rows:
        raise EvaluationInputError(f"{source}: no readings after 'BEGIN DATA:'")
    frame = pd.DataFrame(rows, columns=["reader", "case", "modality", "score"])
    data = mrmc_data_from_frame(frame, truth, source)
    found = {"N0": data.n_normal, "N1": data.n_abnormal, "NR": len(data.readers), "NM": len(data.modalities)}
    for key, value in header.items():
        if found[key] != value:
            raise EvaluationInputError(f"{source}: the header says {key}:{value} but the data have {found[key]} "
                                       f"{_HEADER_KEYS[key]}; the file may be truncated or edited")
    return data


def read_mrmc_csv(path: str | os.PathLike) -> MRMCData:
    """Read a tidy CSV with columns ``reader,case,modality,score,truth`` (one row per reading)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    from .io import check_csv_shape

    check_csv_shape(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise EvaluationInputError(f"{path}: not a readable CSV file ({e})") from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return mrmc_data_from_frame(frame, source=str(path))


def mrmc_from_reader_study(frame: pd.DataFrame, readers: Sequence[str] | None = None,
                           hybrid_with: str | None = None, source: str = "reader study") -> MRMCData:
    """MRMC data from a reader-study table (``results.pkl`` layout): one row per case (breast).

    The readers' probabilities form modality 'readers'; with ``hybrid_with`` (a model column), a
    second modality 'hybrid' holds each reader's mean with that model's probability.
    """
    from .readers import reader_study_labels, split_reader_study_columns

    reader_columns, model_columns = split_reader_study_columns(frame, readers, None, source)
    truth = reader_study_labels(frame, source)

    def numbers(column: str) -> np.ndarray:  # text in a score column is reported, not a traceback
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        return check_scores(values, truth.size, f"column {column!r}", source)

    scores = [np.vstack([numbers(c) for c in reader_columns])]
    modalities = ["readers"]
    if hybrid_with is not None:
        model = numbers(_model_column(frame, hybrid_with, model_columns, source))
        scores.append((scores[0] + model[None, :]) / 2)
        modalities.append("hybrid")
    cases = _case_names(frame)
    return MRMCData(modalities, [_display(c) for c in reader_columns], cases, truth, np.stack(scores), source)


def _model_column(frame: pd.DataFrame, name: str, model_columns: Sequence[str], source: str) -> str:
    """The column of model ``name``, given as a column ('AI_GMIC_top5_POM') or a display name ('GMIC_top5')."""
    from .readers import display_name

    if name in frame.columns:
        return name
    for column in model_columns:
        if display_name(column) == name:
            return column
    raise EvaluationInputError(f"{source}: no model column {name!r}; models: {list(model_columns)}")


def _case_names(frame: pd.DataFrame) -> list[str]:
    if "case_ID" in frame.columns and "side" in frame.columns:
        return [f"{c}{s}" for c, s in zip(frame["case_ID"].astype(str), frame["side"].astype(str))]
    return [str(i) for i in range(len(frame))]


def _display(column: str) -> str:
    return column[:-4] if column.endswith("_POM") else column


def read_mrmc(path: str | os.PathLike) -> MRMCData:
    """Read MRMC data from ``.imrmc`` (iMRMC) or a tidy ``.csv`` (``reader,case,modality,score,truth``)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return read_mrmc_csv(path)
    return read_imrmc(path)


# ----------------------------------------------------------------------------------------------
# Figures of merit and their covariance
# ----------------------------------------------------------------------------------------------

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


def or_components(covariance: np.ndarray) -> dict[str, float]:
    """Var(Error), Cov1, Cov2, Cov3: averages of the AUC covariance over the OR model's cell pairs.

    Cov1: same reader, different modalities; Cov2: different readers, same modality; Cov3: different
    readers and modalities. Averages over an empty set (one modality or one reader) are NaN.
    """
    t, r = covariance.shape[:2]
    same_t = np.eye(t, dtype=bool)[:, None, :, None]
    same_r = np.eye(r, dtype=bool)[None, :, None, :]

    def mean(mask: np.ndarray) -> float:
        mask = np.broadcast_to(mask, covariance.shape)
        return float(covariance[mask].mean()) if mask.any() else math.nan

    return {"Var(Error)": mean(same_t & same_r), "Cov1": mean(~same_t & same_r),
            "Cov2": mean(same_t & ~same_r), "Cov3": mean(~same_t & ~same_r)}


# ----------------------------------------------------------------------------------------------
# Obuchowski-Rockette analysis
# ----------------------------------------------------------------------------------------------

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


@dataclass
class MRMCResult:
    """Every figure of an OR analysis, as nested dicts (see :meth:`to_dict`)."""

    data: MRMCData
    covariance_method: str
    confidence: float
    aucs: np.ndarray
    covariance: np.ndarray
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        return {"tool": "mammoscreen mrmc", "version": __version__, **self.figures}


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
    var_error, cov1, cov2, cov3 = (components[k] for k in ("Var(Error)", "Cov1", "Cov2", "Cov3"))

    modality_means = aucs.mean(axis=1)
    reader_means = aucs.mean(axis=0)
    grand = float(aucs.mean())
    figures: dict[str, Any] = {
        "data": {"source": data.source, "modalities": data.modalities, "readers": data.readers, "n_cases": c,
                 "n_normal": data.n_normal, "n_abnormal": data.n_abnormal},
        "figure_of_merit": "empirical AUC (trapezoidal / Wilcoxon)",
        "covariance_method": covariance,
        "confidence": confidence,
        "auc": {m: {rd: float(aucs[i, j]) for j, rd in enumerate(data.readers)} for i, m in enumerate(data.modalities)},
        "modality_means": {m: float(modality_means[i]) for i, m in enumerate(data.modalities)},
        "notes": tie_notes(data),
    }

    ms_r_each = [float(((aucs[i] - modality_means[i]) ** 2).sum() / (r - 1)) if r > 1 else math.nan for i in range(t)]
    per_modality = {}
    for i, m in enumerate(data.modalities):
        block = cov[i, :, i, :]
        off = block[~np.eye(r, dtype=bool)]
        per_modality[m] = {"MS(R)": ms_r_each[i], "Var(Error)": float(np.diag(block).mean()),
                           "Cov2": float(off.mean()) if off.size else math.nan}
    per_reader = {}
    for j, rd in enumerate(data.readers):
        block = cov[:, j, :, j]
        off = block[~np.eye(t, dtype=bool)]
        per_reader[rd] = {"Var(Error)": float(np.diag(block).mean()), "Cov1": float(off.mean()) if off.size else math.nan}

    anova: dict[str, Any] = {"MS(R)": float(t * ((reader_means - grand) ** 2).sum() / (r - 1)) if r > 1 else math.nan,
                             "df(R)": r - 1, "MS(R) per modality": {m: ms_r_each[i] for i, m in enumerate(data.modalities)}}
    if t > 1:
        anova["MS(T)"] = float(r * ((modality_means - grand) ** 2).sum() / (t - 1))
        anova["df(T)"] = t - 1
        if r > 1:
            interaction = aucs - modality_means[:, None] - reader_means[None, :] + grand
            anova["MS(T*R)"] = float((interaction ** 2).sum() / ((t - 1) * (r - 1)))
            anova["df(T*R)"] = (t - 1) * (r - 1)
    figures["anova"] = anova

    or_vc: dict[str, float] = {}
    if t > 1 and r > 1:
        ms_tr = anova["MS(T*R)"]
        var_tr = ms_tr - var_error + cov1 + cov2 - cov3
        var_r = (anova["MS(R)"] - var_error - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
        or_vc = {"Var(R)": var_r, "Var(T*R)": var_tr}
    elif r > 1:
        or_vc = {"Var(R)": anova["MS(R)"] - var_error + cov2}
    or_vc.update(components)
    figures["or_variance_components"] = or_vc
    figures["per_modality_components"] = per_modality
    figures["per_reader_components"] = per_reader
    if covariance == "jackknife":
        figures["dbm_variance_components"] = dbm_variance_components(data)

    pairs = list(combinations(range(t), 2))

    def difference_row(a: int, b: int, se: float, df: float, kind: str) -> dict[str, Any]:
        estimate = float(modality_means[a] - modality_means[b])
        statistic = _ratio(estimate, se)
        low, high = _t_interval(estimate, se, df, confidence)
        return {"modalities": [data.modalities[a], data.modalities[b]], "difference": estimate,
                "standard_error": se, "df": df, kind: statistic, "p_value": _t_p_value(statistic, df),
                "ci_low": low, "ci_high": high}

    # Random readers, random cases.
    if r > 1:
        rrrc: dict[str, Any] = {}
        if t > 1:
            ms_t, ms_tr = anova["MS(T)"], anova["MS(T*R)"]
            error_term = ms_tr + r * max(cov2 - cov3, 0.0)
            ddf = math.inf if ms_tr == 0 else error_term ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1)))
            f_stat = _ratio(ms_t, error_term)
            rrrc.update({"F": f_stat, "df_numerator": t - 1, "df_denominator": ddf, "error_term": error_term,
                         "p_value": float(stats.f.sf(f_stat, t - 1, ddf)) if math.isfinite(ddf) else
                         float(stats.chi2.sf(f_stat * (t - 1), t - 1)),
                         "differences": [difference_row(a, b, math.sqrt(2 * error_term / r), ddf, "t")
                                         for a, b in pairs]})
        single = {}
        for i, m in enumerate(data.modalities):
            se, ddf = hillis_single_rrrc(ms_r_each[i], per_modality[m]["Cov2"], r)
            low, high = _t_interval(float(modality_means[i]), se, ddf, confidence)
            single[m] = {"auc": float(modality_means[i]), "standard_error": se, "df": ddf, "ci_low": low,
                         "ci_high": high, "MS(R)": ms_r_each[i], "Cov2": per_modality[m]["Cov2"]}
        rrrc["single_modality"] = single
        figures["rrrc"] = rrrc
    else:
        figures["notes"].append("one reader: the random-reader analyses (RRRC, RRFC) need at least two readers")

    # Fixed readers, random cases.
    frrc: dict[str, Any] = {}
    if t > 1:
        error_term = var_error - cov1 + ((r - 1) * max(cov2 - cov3, 0.0) if r > 1 else 0.0)
        chi2 = _ratio((t - 1) * anova["MS(T)"], error_term)
        frrc.update({"chi2": chi2, "df": t - 1, "error_term": error_term, "p_value": float(stats.chi2.sf(chi2, t - 1)),
                     "differences": [difference_row(a, b, math.sqrt(2 * error_term / r), math.inf, "z")
                                     for a, b in pairs]})
        per_reader_rows = []
        for a, b in pairs:
            for j, rd in enumerate(data.readers):
                estimate = float(aucs[a, j] - aucs[b, j])
                se = math.sqrt(max(cov[a, j, a, j] + cov[b, j, b, j] - 2 * cov[a, j, b, j], 0.0))
                z = _ratio(estimate, se)
                low, high = _t_interval(estimate, se, math.inf, confidence)
                per_reader_rows.append({"reader": rd, "modalities": [data.modalities[a], data.modalities[b]],
                                        "difference": estimate, "standard_error": se, "z": z,
                                        "p_value": _t_p_value(z, math.inf), "ci_low": low, "ci_high": high})
        frrc["per_reader"] = per_reader_rows
    single = {}
    for i, m in enumerate(data.modalities):
        comp = per_modality[m]
        cov2_i = comp["Cov2"] if r > 1 else 0.0
        se = math.sqrt((comp["Var(Error)"] + (r - 1) * max(cov2_i, 0.0)) / r)
        low, high = _t_interval(float(modality_means[i]), se, math.inf, confidence)
        single[m] = {"auc": float(modality_means[i]), "standard_error": se, "ci_low": low, "ci_high": high,
                     "Var(Error)": comp["Var(Error)"], "Cov2": comp["Cov2"]}
    frrc["single_modality"] = single
    figures["frrc"] = frrc

    # Random readers, fixed cases.
    if r > 1:
        rrfc: dict[str, Any] = {}
        if t > 1:
            ms_tr = anova["MS(T*R)"]
            df = (t - 1) * (r - 1)
            f_stat = _ratio(anova["MS(T)"], ms_tr)
            rrfc.update({"F": f_stat, "df_numerator": t - 1, "df_denominator": df,
                         "p_value": float(stats.f.sf(f_stat, t - 1, df)),
                         "differences": [difference_row(a, b, math.sqrt(2 * ms_tr / r), df, "t") for a, b in pairs]})
        single = {}
        for i, m in enumerate(data.modalities):
            se = math.sqrt(ms_r_each[i] / r)
            low, high = _t_interval(float(modality_means[i]), se, r - 1, confidence)
            single[m] = {"auc": float(modality_means[i]), "standard_error": se, "df": r - 1, "ci_low": low,
                         "ci_high": high}
        rrfc["single_modality"] = single
        figures["rrfc"] = rrfc
    if t == 1:
        figures["notes"].append("one modality: no modality comparison; single-modality CIs only")
    return MRMCResult(data, covariance, confidence, aucs, cov, figures)


def dbm_variance_components(data: MRMCData) -> dict[str, float]:
    """Dorfman-Berbaum-Metz variance components from jackknife pseudovalues of the AUC.

    Pseudovalues c AUC - (c - 1) AUC(-k), shifted so that each reader-modality mean equals its AUC,
    go through a three-way (modality x reader x case) ANOVA; the components follow from the mean
    squares. Needs at least two modalities and two readers.
    """
    t, r, c = data.scores.shape
    if t < 2 or r < 2:
        return {}
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
    return {"Var(R)": float((ms_r - ms_tr - ms_rc + ms_trc) / (t * c)),
            "Var(C)": float((ms_c - ms_tc - ms_rc + ms_trc) / (t * r)),
            "Var(T*R)": float((ms_tr - ms_trc) / c),
            "Var(T*C)": float((ms_tc - ms_trc) / r),
            "Var(R*C)": float((ms_rc - ms_trc) / t),
            "Var(T*R*C)+Var(Error)": float(ms_trc)}


# ----------------------------------------------------------------------------------------------
# A standalone model against the readers
# ----------------------------------------------------------------------------------------------

@dataclass
class AIVersusReadersResult:
    """AUC(AI) - mean reader AUC, with readers and cases random (1T-RRRC) and readers random only."""

    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.figures


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
                    np.asarray(truth).astype(np.int8), all_scores, source)
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
    rrrc: dict[str, Any] = {"difference": mean_diff, "standard_error": se, "df": ddf, "t": t_stat,
                            "p_value": _t_p_value(t_stat, ddf), "ci_low": low, "ci_high": high}
    se_fc = math.sqrt(ms_r / r)
    t_fc = _ratio(mean_diff, se_fc)
    low_fc, high_fc = _t_interval(mean_diff, se_fc, r - 1, confidence)
    rrfc = {"difference": mean_diff, "standard_error": se_fc, "df": r - 1, "t": t_fc,
            "p_value": _t_p_value(t_fc, r - 1), "ci_low": low_fc, "ci_high": high_fc}
    figures: dict[str, Any] = {
        "method": "Hillis single-treatment OR analysis of AUC(AI) - AUC(reader) (1T-RRRC); the model is fixed, "
                  "readers and cases random",
        "covariance_method": covariance, "confidence": confidence,
        "ai": ai_name, "ai_auc": ai_auc,
        "reader_aucs": {name: float(a) for name, a in zip(names, reader_auc)},
        "mean_reader_auc": float(reader_auc.mean()),
        "variance_components": {"Var(R)": ms_r - var_error_d + cov2_d, "Var(Error)": var_error_d, "Cov2": cov2_d,
                                "MS(R)": ms_r},
        "rrrc": rrrc,
        "rrfc": rrfc,
    }
    if margin is not None:
        margin = float(margin)
        if not 0 < margin < 1:
            raise EvaluationInputError(f"the non-inferiority margin must lie between 0 and 1 (AUC scale), got {margin}")
        t_ni = _ratio(mean_diff + margin, se)
        p_ni = float(stats.t.sf(t_ni, ddf) if math.isfinite(ddf) else stats.norm.sf(t_ni))
        alpha = 1 - confidence
        lower_bound = mean_diff - (stats.t.ppf(1 - alpha, ddf) if math.isfinite(ddf) else stats.norm.ppf(1 - alpha)) * se
        figures["non_inferiority"] = {
            "margin": margin, "hypothesis": f"H0: AUC({ai_name}) - mean reader AUC <= -{margin:g}",
            "t": t_ni, "df": ddf, "p_value": p_ni, "one_sided_lower_bound": float(lower_bound),
            "alpha": alpha, "non_inferior": bool(p_ni < alpha)}
    return AIVersusReadersResult(figures)


# ----------------------------------------------------------------------------------------------
# One call for a whole file (what ``mammoscreen mrmc`` runs)
# ----------------------------------------------------------------------------------------------

def _is_reader_study_table(path: Path) -> bool:
    if path.suffix.lower() in (".pkl", ".pickle", ".p"):
        return True
    if path.suffix.lower() != ".csv":
        return False
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError):
        return False
    columns = {str(c).strip().lower() for c in header}
    return not {"reader", "case", "modality", "score"} <= columns and "label" in columns


def analyse_mrmc_file(path: str | os.PathLike, *, covariance: str = "jackknife", confidence: float = 0.95,
                      modalities: Sequence[str] | None = None, readers: Sequence[str] | None = None,
                      ai: str | None = None, margin: float | None = None,
                      hybrid_with: str | None = None) -> tuple[MRMCResult, dict[str, AIVersusReadersResult]]:
    """Read an MRMC file and run the OR analysis, plus the AI-versus-readers comparison with ``ai``.

    Parameters
    ----------
    path : ``.imrmc`` (iMRMC), tidy ``.csv`` (reader,case,modality,score,truth), or a reader-study table
        (``results.pkl`` layout, .csv or .pkl) whose reader columns form modality 'readers'.
    covariance : 'jackknife' or 'delong'.
    confidence : CI coverage.
    modalities, readers : analyse only these (default: all).
    ai : the standalone model: a reader ID of an iMRMC/tidy file (taken out of the readers and compared
        with them in each modality), or a model column of a reader-study table (e.g. AI_GMIC_top5_POM).
    margin : non-inferiority margin for the AI comparison.
    hybrid_with : reader-study tables only - add modality 'hybrid', each reader's mean with this model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MRMC file not found: {path}")
    ai_results: dict[str, AIVersusReadersResult] = {}
    if _is_reader_study_table(path):
        from .io import read_reader_study
        from .readers import display_name, split_reader_study_columns

        frame = read_reader_study(path)
        data = mrmc_from_reader_study(frame, readers, hybrid_with, str(path))
        if modalities is not None:
            data = data.select(modalities=modalities)
        if ai is not None:
            _, model_columns = split_reader_study_columns(frame, readers, None, str(path))
            column = _model_column(frame, ai, model_columns, str(path))
            ai_score = check_scores(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float),
                                    data.truth.size, f"column {column!r}", str(path))
            for i, modality in enumerate(data.modalities):
                ai_results[modality] = ai_versus_readers(
                    data.truth, data.scores[i], ai_score, reader_names=data.readers, ai_name=display_name(column),
                    covariance=covariance, confidence=confidence, margin=margin, source=str(path))
        return obuchowski_rockette(data, covariance, confidence), ai_results
    if hybrid_with is not None:
        raise EvaluationInputError(f"{path}: --hybrid needs a reader-study table (columns label, <reader>_POM, AI_<model>_POM)")
    data = read_mrmc(path)
    data = data.select(modalities=modalities, readers=readers)
    if ai is not None:
        if ai not in data.readers:
            raise EvaluationInputError(f"{path}: no reader {ai!r} to use as the AI; readers: {data.readers}")
        others = [r for r in data.readers if r != ai]
        k = data.readers.index(ai)
        for i, modality in enumerate(data.modalities):
            ai_results[modality] = ai_versus_readers(
                data.truth, data.scores[i, [data.readers.index(r) for r in others]], data.scores[i, k],
                reader_names=others, ai_name=ai, covariance=covariance, confidence=confidence, margin=margin,
                source=str(path))
        data = data.select(readers=others)
    return obuchowski_rockette(data, covariance, confidence), ai_results
