"""Performance by subgroup (density, age band, manufacturer, site ...) and at clinical operating points.

For each subgroup of the cases - and the whole set - the analysis reports AUROC, AUPRC (trapezoidal,
the meta-repository's) and, at each operating point, sensitivity, specificity and the recall rate, with
percentile bootstrap CIs, the subgroup's size and positives, the difference from the whole set with a
bootstrap test, and per key a test of heterogeneity across its subgroups.

How the numbers are made
------------------------
* **One set of bootstrap replicates for everything.** A replicate resamples exams (or cases) from the
  whole set, as the rest of the evaluation does (:func:`~.bootstrap.bootstrap_counts`, the same random
  stream); each subgroup's value in a replicate is computed on the subgroup's cases that the replicate
  drew. Subgroups therefore keep their share of the data only on average (their size varies between
  replicates, as it would in a new sample), and every subgroup, the whole set and every model are
  evaluated on the same replicates, so differences between them are bootstrapped jointly. A replicate in
  which a subgroup lacks a class gives that subgroup no value (counted as skipped).
* **Operating points are thresholds chosen on the whole set** (a deployed model has one threshold): at a
  specificity, at a sensitivity, at a recall rate (the share of exams with any case at or above the
  threshold), at a fixed score, or at the readers' mean specificity. A subgroup's sensitivity and
  specificity are those of that threshold in the subgroup. In each replicate the threshold is chosen
  again on the replicate's whole set, so the CIs include the uncertainty of choosing it.
* **Tests.** Difference from the whole set: the percentile CI of the replicates' (subgroup - whole set)
  and a two-sided bootstrap p-value, ``(2 min(#d <= 0, #d >= 0) + 1) / (B + 1)``, capped at 1.
  Heterogeneity across a key's subgroups (its 'missing' group left out): a Wald test of "all subgroups
  equal", ``W = d' (C S C')^+ d`` with ``d`` the differences of the subgroups' values from the first
  subgroup and ``S`` the bootstrap covariance of the subgroups' values, chi-square with ``rank(C S C')``
  degrees of freedom; the joint replicates make it valid when subgroups share exams (the two breasts of
  one exam with different densities). Between models, within each subgroup, the paired DeLong test.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ._subgroup_replicates import (
    AT_THRESHOLD,
    RANKING,
    CaseGroup,
    Engine,
    OperatingRule,
    Predictor,
    Values,
    add_mean,
    make_groups,
    parse_operating_point,
    run,
)
from .bootstrap import DEFAULT_REPLICATES, percentile_interval
from .validation import EvaluationInputError, check_fraction, check_labels, check_scores

__all__ = [
    "MISSING", "OVERALL", "MIN_POSITIVES_FOR_INTERVAL", "DEFAULT_OPERATING_POINTS", "Grouping", "OperatingRule",
    "parse_operating_point", "parse_bins", "group_values", "SubgroupAnalysis", "analyse_subgroups",
    "subgroup_metrics", "operating_points",
]

MISSING = "missing"
"""Label of the cases without a value for the key."""

OVERALL = "all"
"""Label of the whole set in the tables."""

MIN_POSITIVES_FOR_INTERVAL = 5
"""A subgroup with fewer positive (or negative) cases gets no interval for the metrics that need them: a
percentile interval from so few cases would look precise without being so."""

MAX_SKIPPED_FRACTION = 0.05
"""Warn when more than this share of replicates had no value for a subgroup (one class only): its interval
is then conditional on the replicates that had both classes."""

DEFAULT_OPERATING_POINTS = ("specificity=0.9",)

METRIC_LABELS = {"auroc": "AUROC", "auprc_trapezoid": "AUPRC", "sensitivity": "sensitivity",
                 "specificity": "specificity", "recall_rate": "recall rate"}
MAX_GROUPS = 50  # per key: more is an identifier, not a subgroup


# ----------------------------------------------------------------------------------------------
# Subgroups of the cases
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Grouping:
    """The subgroups one key makes of the cases: a label per subgroup and each case's subgroup."""

    key: str
    labels: tuple[str, ...]  # display order; MISSING last when present
    codes: np.ndarray  # (n,) index into labels
    edges: tuple[float, ...] | None = None  # bin edges of a binned numeric key
    note: str | None = None  # e.g. how bins were chosen

    def members(self, label: str) -> np.ndarray:
        """Indices of the cases in subgroup ``label``."""
        return np.flatnonzero(self.codes == self.labels.index(label))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "groups": list(self.labels),
                "bins": None if self.edges is None else list(self.edges), "note": self.note}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _format_edge(value: float) -> str:
    return f"{value:g}"


def parse_bins(spec: Any) -> tuple[float, ...] | int | None:
    """Bins from a command-line style spec: '50,60,70' -> edges (50, 60, 70); 'q4' -> 4 quantile bins.

    Edges are left-closed: '< 50', '[50, 60)', '[60, 70)', '>= 70'. A sequence of numbers is taken as
    edges; an int-like 'qN' as N bins of about equal size; None stays None.
    """
    if spec is None:
        return None
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        spec = f"q{spec}"
    if isinstance(spec, str):
        text = spec.strip().lower()
        match = re.fullmatch(r"q(\d+)", text)
        if match:
            count = int(match.group(1))
            if not 2 <= count <= 20:
                raise EvaluationInputError(f"quantile bins 'q{count}': choose between q2 and q20")
            return count
        try:
            spec = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise EvaluationInputError(f"bins {spec!r}: expected edges such as '50,60,70' or quantiles such as "
                                       "'q4'") from None
    try:
        edges = tuple(float(e) for e in spec)
    except (TypeError, ValueError):
        raise EvaluationInputError(f"bins {spec!r}: expected edges such as '50,60,70' or quantiles such as "
                                   "'q4'") from None
    if not edges or not all(math.isfinite(e) for e in edges):
        raise EvaluationInputError(f"bins {spec!r}: give at least one finite edge")
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise EvaluationInputError(f"bins {list(edges)}: edges must increase")
    return edges


def _bin_labels(edges: Sequence[float]) -> list[str]:
    labels = [f"<{_format_edge(edges[0])}"]
    labels += [f"[{_format_edge(a)}, {_format_edge(b)})" for a, b in zip(edges, edges[1:])]
    labels.append(f">={_format_edge(edges[-1])}")
    return labels


def group_values(values: Sequence[Any], key: str = "group", bins: Any = None, *,
                 numbers_only: bool = False) -> Grouping:
    """Subgroups from one value per case (None: missing).

    Parameters
    ----------
    values : one value per case: text, number, bool or None.
    key : the key's name (for the tables).
    bins : for numeric values, edges ('50,60,70' or a sequence: left-closed bins) or quantiles ('q4').
        None: categories - except numeric keys with more than 8 distinct values, which are cut into
        quartiles (noted in the result).
    numbers_only : ``bins`` were given for every key: ignore them for a key whose values are text
        (instead of refusing them).
    """
    values = list(values)
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    numeric = bool(present) and all(_is_number(v) for v in present)
    spec = parse_bins(bins)
    if numbers_only and not numeric:
        spec = None
    note = None
    if spec is not None and present and not numeric:
        example = next(v for v in present if not _is_number(v))
        raise EvaluationInputError(f"{key!r} has values that are not numbers (e.g. {example!r}) and cannot be "
                                   "binned; drop --bins for it (or give bins per key: --bins age=50,60,70)")
    if spec is None and numeric and len(set(present)) > 8:
        spec, note = 4, "more than 8 distinct values: cut into quartiles"
    missing = np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    edges = None
    if spec is not None and present:
        numbers = np.array([float(v) if not m else np.nan for v, m in zip(values, missing)])
        if isinstance(spec, int):
            quantiles = np.quantile(numbers[~missing], np.arange(1, spec) / spec)
            edges = tuple(float(e) for e in np.unique(quantiles))
            note = (note or f"{spec} quantile bins") + f", edges {', '.join(_format_edge(e) for e in edges)}"
        else:
            edges = spec
        labels = _bin_labels(edges)
        # Left-closed: a value equal to an edge belongs to the bin that starts there.
        codes = np.searchsorted(np.asarray(edges), numbers, side="right")
        used = sorted(set(codes[~missing].tolist()))
        labels = [labels[c] for c in used]
        remap = {c: k for k, c in enumerate(used)}
        codes = np.array([remap.get(int(c), -1) for c in codes])
    else:
        distinct = list(dict.fromkeys(present if numeric else [str(v) for v in present]))
        if len(distinct) > MAX_GROUPS:
            raise EvaluationInputError(f"{key!r} has {len(distinct)} distinct values: too many subgroups (at most "
                                       f"{MAX_GROUPS}); is it an identifier? Bin it with --bins if it is a number")
        ordered = sorted(distinct, key=(lambda v: float(v)) if numeric else str)
        labels = [str(v) for v in ordered]
        position = {v: k for k, v in enumerate(ordered)}
        codes = np.array([-1 if m else position[v if numeric else str(v)] for v, m in zip(values, missing)])
    if missing.any():
        labels.append(MISSING)
        codes = np.where(missing, len(labels) - 1, codes)
    return Grouping(key, tuple(labels), codes.astype(np.int64), edges, note)


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------

ROW_COLUMNS = ("level", "key", "group", "predictor", "metric", "operating_point", "threshold", "n_cases",
               "n_exams", "n_positive", "n_negative", "value", "ci_low", "ci_high", "difference",
               "difference_ci_low", "difference_ci_high", "p_value", "replicates_used", "warning")


@dataclass
class SubgroupRow:
    """One metric of one predictor in one subgroup (or the whole set: key '' and group 'all')."""

    level: str
    key: str
    group: str
    predictor: str
    metric: str
    operating_point: str
    threshold: float | None
    n_cases: int
    n_exams: int
    n_positive: int
    n_negative: int
    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    difference: float | None = None  # subgroup - whole set
    difference_ci_low: float | None = None
    difference_ci_high: float | None = None
    p_value: float | None = None
    replicates_used: int | None = None
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in ROW_COLUMNS}


@dataclass
class SubgroupAnalysis:
    """Every subgroup row of one level, the heterogeneity tests, paired model tests and operating points."""

    level: str
    rows: list[SubgroupRow]
    groupings: list[Grouping]
    heterogeneity: list[dict[str, Any]]
    paired: list[dict[str, Any]]  # DeLong between models within each subgroup
    operating_points: list[dict[str, Any]]  # per predictor and rule: threshold and whole-set values
    n_bootstrap: int
    seed: int | None
    confidence: float
    resample: str
    warnings: list[str] = field(default_factory=list)
    # The arrays behind the rows (for ROC curves per subgroup); not written to files.
    y_true: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    readers: list[str] = field(default_factory=list)
    # Reader studies: each model at the readers' mean specificity minus the readers' mean, per subgroup.
    versus_readers: list[dict[str, Any]] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """The tidy table: one row per (key, group, predictor, metric, operating point)."""
        return pd.DataFrame([row.to_dict() for row in self.rows], columns=list(ROW_COLUMNS))

    def row(self, key: str, group: str, metric: str, predictor: str | None = None,
            operating_point: str = "") -> SubgroupRow:
        """The row of one metric (the first predictor when ``predictor`` is None)."""
        for r in self.rows:
            if (r.key == key and r.group == group and r.metric == metric and r.operating_point == operating_point
                    and (predictor is None or r.predictor == predictor)):
                return r
        raise KeyError((key, group, metric, predictor, operating_point))

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "groupings": [g.to_dict() for g in self.groupings],
                "rows": [r.to_dict() for r in self.rows], "heterogeneity": self.heterogeneity,
                "paired_delong": self.paired, "operating_points": self.operating_points,
                "models_versus_readers": self.versus_readers,
                "models": self.models, "readers": self.readers,
                "bootstrap": {"replicates": self.n_bootstrap, "seed": self.seed, "confidence": self.confidence,
                              "resampling_unit": self.resample},
                "warnings": self.warnings}


def _bootstrap_p_value(difference: np.ndarray) -> float:
    """Two-sided bootstrap p-value of 'no difference', with the +1 correction (never exactly 0)."""
    b = difference.size
    below = int(np.sum(difference <= 0))
    above = int(np.sum(difference >= 0))
    return float(min(1.0, (2 * min(below, above) + 1) / (b + 1)))


def _wald(replicates: np.ndarray, point: np.ndarray) -> tuple[float, int, float, int] | None:
    """(statistic, df, p, replicates used) of 'all columns equal' from point values and joint replicates."""
    from scipy import stats

    used = replicates[~np.isnan(replicates).any(axis=1)]
    k = point.size
    if k < 2 or used.shape[0] < 10:
        return None
    contrast = np.zeros((k - 1, k))
    contrast[:, 0] = -1.0
    contrast[np.arange(k - 1), np.arange(1, k)] = 1.0
    middle = contrast @ np.atleast_2d(np.cov(used, rowvar=False)) @ contrast.T
    d = contrast @ point
    df = int(np.linalg.matrix_rank(middle))
    if df == 0:
        return None
    statistic = float(d @ np.linalg.pinv(middle) @ d)
    return statistic, df, float(stats.chi2.sf(statistic, df)), int(used.shape[0])


def _too_few(metric: str, n_pos: int, n_neg: int, n_units: int, minimum: int) -> str | None:
    """Why ``metric`` gets no interval in a subgroup of this size, or None."""
    needs = {"auroc": ("positive", "negative"), "auprc_trapezoid": ("positive", "negative"),
             "sensitivity": ("positive",), "specificity": ("negative",), "recall_rate": ("exam",)}[metric]
    counts = {"positive": n_pos, "negative": n_neg, "exam": n_units}
    short = [what for what in needs if counts[what] < minimum]
    return f"too few {' and '.join(short)} cases for an interval" if short else None


def _skipped_note(metric: str, share: float) -> str:
    what = "drew no case of this subgroup" if metric == "recall_rate" else "lacked a class in this subgroup"
    return f"{share:.0%} of replicates {what}; the interval is conditional on the others"


def _scores_dict(y_score: Any, n: int) -> dict[str, np.ndarray]:
    if isinstance(y_score, Mapping):
        if not y_score:
            raise EvaluationInputError("no scores given")
        return {str(name): check_scores(s, n, f"scores of {name!r}") for name, s in y_score.items()}
    return {"model": check_scores(y_score, n)}


def _none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass
class _Setting:
    """What every helper of :func:`analyse_subgroups` needs."""

    level: str
    n_bootstrap: int
    confidence: float
    min_positives: int
    names: list[str]  # predictors, the readers' mean last when there are readers
    rules_of: list[tuple[OperatingRule, ...]]
    groups: list[CaseGroup]
    point: Values
    replicates: Values
    thresholds: dict[tuple[int, str], float]

    def entries(self, p: int) -> list[tuple[str, str]]:
        """(metric, operating point) of predictor ``p``."""
        return [(m, "") for m in RANKING] + [(m, rule.name) for rule in self.rules_of[p] for m in AT_THRESHOLD]


def _rows(setting: _Setting, warnings: list[str]) -> list[SubgroupRow]:
    """Every row: point value, interval, difference from the whole set."""
    rows = []
    for g, group in enumerate(setting.groups):
        n_pos = int(group.positive.sum())
        n_neg = int(group.cases.size - n_pos)
        n_units = int(group.units.size)
        small = [f"{count} {what}" for count, what in ((n_pos, "positive"), (n_neg, "negative"))
                 if count < setting.min_positives]
        if small and setting.n_bootstrap:
            where = "the whole set" if g == 0 else f"{group.key} = {group.label}"
            warnings.append(f"{setting.level} level, {where}: only {' and '.join(small)} case(s); no interval for "
                            f"the metrics that need at least {setting.min_positives}")
        for p, name in enumerate(setting.names):
            for metric, op in setting.entries(p):
                value = _none(float(setting.point[g, p, metric, op][0]))
                row = SubgroupRow(setting.level, group.key, group.label, name, metric, op,
                                  setting.thresholds.get((p, op)) if op else None, int(group.cases.size), n_units,
                                  n_pos, n_neg, value)
                if setting.n_bootstrap and value is not None:
                    row.warning = _too_few(metric, n_pos, n_neg, n_units, setting.min_positives)
                    if row.warning is None:
                        _interval(row, setting, g, p, metric, op)
                        if row.warning:
                            warnings.append(f"{setting.level} level, {group.key or 'whole set'} = {group.label}, "
                                            f"{name}, {METRIC_LABELS[metric]}: {row.warning}")
                rows.append(row)
    return rows


def _interval(row: SubgroupRow, setting: _Setting, g: int, p: int, metric: str, op: str) -> None:
    """The row's percentile interval and, for a subgroup, its difference from the whole set."""
    values = setting.replicates[g, p, metric, op]
    used = int(np.sum(~np.isnan(values)))
    row.replicates_used = used
    if not used:
        return
    row.ci_low, row.ci_high = percentile_interval(values, setting.confidence)
    skipped = 1 - used / setting.n_bootstrap
    if skipped > MAX_SKIPPED_FRACTION:
        row.warning = _skipped_note(metric, skipped)
    overall = setting.point[0, p, metric, op][0]
    if g == 0 or math.isnan(overall):
        return
    difference = values - setting.replicates[0, p, metric, op]
    difference = difference[~np.isnan(difference)]
    if difference.size:
        row.difference = row.value - float(overall)
        row.difference_ci_low, row.difference_ci_high = percentile_interval(difference, setting.confidence)
        row.p_value = _bootstrap_p_value(difference)


def _heterogeneity(setting: _Setting, groupings: Sequence[Grouping], rows: list[SubgroupRow]) -> list[dict[str, Any]]:
    """Per key, predictor and metric: the Wald test of 'all subgroups equal' (the missing group left out)."""
    with_interval = {(r.key, r.group, r.predictor, r.metric, r.operating_point) for r in rows if r.ci_low is not None}
    out = []
    for grouping in groupings:
        members = [g for g, group in enumerate(setting.groups) if group.key == grouping.key and group.label != MISSING]
        for p, name in enumerate(setting.names):
            for metric, op in setting.entries(p):
                usable = [g for g in members
                          if (grouping.key, setting.groups[g].label, name, metric, op) in with_interval]
                if len(usable) < 2:
                    continue
                test = _wald(np.column_stack([setting.replicates[g, p, metric, op] for g in usable]),
                             np.array([setting.point[g, p, metric, op][0] for g in usable]))
                if test is not None:
                    statistic, df, p_value, used = test
                    out.append({"level": setting.level, "key": grouping.key, "predictor": name, "metric": metric,
                                "operating_point": op, "groups": [setting.groups[g].label for g in usable],
                                "test": "bootstrap Wald chi-square (all subgroups equal)", "statistic": statistic,
                                "df": df, "p_value": p_value, "replicates_used": used})
    return out


def _versus_readers(setting: _Setting, models: Sequence[str], readers_mean: int, decision: OperatingRule,
                    ) -> list[dict[str, Any]]:
    """Each model's sensitivity at the readers' mean specificity minus the readers' mean sensitivity."""
    rule = OperatingRule("readers_specificity").name
    out = []
    for g, group in enumerate(setting.groups):
        for p, name in enumerate(models):
            model_value = setting.point[g, p, "sensitivity", rule][0]
            readers_value = setting.point[g, readers_mean, "sensitivity", decision.name][0]
            entry = {"level": setting.level, "key": group.key, "group": group.label, "model": name,
                     "metric": "sensitivity", "model_value": _none(model_value), "readers_mean": _none(readers_value),
                     "difference": _none(model_value - readers_value), "ci_low": None, "ci_high": None,
                     "p_value": None}
            if setting.n_bootstrap and entry["difference"] is not None:
                d = (setting.replicates[g, p, "sensitivity", rule]
                     - setting.replicates[g, readers_mean, "sensitivity", decision.name])
                d = d[~np.isnan(d)]
                if d.size:
                    entry["ci_low"], entry["ci_high"] = percentile_interval(d, setting.confidence)
                    entry["p_value"] = _bootstrap_p_value(d)
            out.append(entry)
    return out


def _paired_delong(y: np.ndarray, models: Mapping[str, np.ndarray], groups: list[CaseGroup], confidence: float,
                   level: str) -> list[dict[str, Any]]:
    """DeLong test of each pair of models within each subgroup (the same cases: paired)."""
    from itertools import combinations

    from .delong import delong_covariance, delong_from_covariance

    names = list(models)
    matrix = np.vstack([models[name] for name in names])
    out = []
    for group in groups:
        labels = y[group.cases]
        if not 0 < labels.sum() < labels.size:
            continue
        auc, covariance = delong_covariance(labels, matrix[:, group.cases])
        for a, b in combinations(range(len(names)), 2):
            test = delong_from_covariance(auc, covariance, a, b, confidence)
            out.append({"level": level, "key": group.key, "group": group.label, "model_a": names[a],
                        "model_b": names[b], **test.to_dict()})
    return out


def _groupings(groups: Any, bins: Any, n: int) -> list[Grouping]:
    if isinstance(groups, Mapping):
        per_key = isinstance(bins, Mapping)
        groupings = [group_values(list(values), str(key), bins.get(key) if per_key else bins,
                                  numbers_only=not per_key) for key, values in groups.items()]
    else:
        groupings = list(groups or [])
    for grouping in groupings:
        if grouping.codes.shape != (n,):
            raise EvaluationInputError(f"{grouping.key!r}: {grouping.codes.size} values for {n} cases")
    return groupings


def analyse_subgroups(y_true: Any, y_score: Any, groups: Mapping[str, Any] | Sequence[Grouping] | None = None, *,
                      bins: Any = None, clusters: Any = None,
                      operating_points: Sequence[Any] = DEFAULT_OPERATING_POINTS,
                      n_bootstrap: int = DEFAULT_REPLICATES, random_state: int | np.random.RandomState | None = 0,
                      confidence: float = 0.95, min_positives: int = MIN_POSITIVES_FOR_INTERVAL,
                      readers: Mapping[str, Any] | None = None, reader_threshold: float = 0.0,
                      level: str = "cases", paired_tests: bool = True) -> SubgroupAnalysis:
    """Metrics of every subgroup and the whole set, with CIs and tests, for one or several predictors.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), or a mapping model name -> array (models share the replicates).
    groups : mapping key -> one value per case (binned with ``bins``), or prepared :class:`Grouping`\\ s;
        None or empty: the whole set only (operating points and their CIs).
    bins : bins for numeric keys: one spec for all numeric keys ('50,60,70', 'q4'; text keys stay
        categories) or a mapping key -> spec.
    clusters : resampling unit of each case (e.g. the exam of each image or breast); None: each case.
        The recall rate counts these units (an exam is recalled when any of its cases is called).
    operating_points : rules choosing a threshold on the whole set (see :func:`parse_operating_point`).
    n_bootstrap : replicates (0: point values only).
    random_state : seed or ``numpy.random.RandomState``.
    confidence : coverage of the intervals.
    min_positives : fewer positives (negatives, exams) in a subgroup: no interval for the metrics needing them.
    readers : optional mapping reader name -> scores (e.g. probabilities of malignancy): each is evaluated
        at its own decision (score > ``reader_threshold``), their mean is added, and the rule 'readers'
        puts each model at the readers' mean specificity.
    reader_threshold : a reader calls a case positive when the score is above it.
    level : what a case is ('image', 'breast'; for the tables).
    paired_tests : with several models, a paired DeLong test between each pair within each subgroup.
    """
    confidence = check_fraction(confidence, "confidence")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise EvaluationInputError(f"the number of bootstrap replicates must be 0 or more, got {n_bootstrap!r}")
    y = check_labels(y_true)
    n = y.size
    if y.sum() in (0, n):
        raise EvaluationInputError(f"all {n} cases have the same label: subgroup metrics need both classes")
    models = _scores_dict(y_score, n)
    reader_scores = {str(k): check_scores(v, n, f"scores of reader {k!r}") for k, v in (readers or {}).items()}
    if set(models) & set(reader_scores):
        raise EvaluationInputError(f"{sorted(set(models) & set(reader_scores))} are both models and readers")
    rules = tuple(dict.fromkeys(parse_operating_point(r) for r in operating_points))
    if any(r.kind == "readers_specificity" for r in rules) and not reader_scores:
        raise EvaluationInputError("the operating point 'readers' (the readers' mean specificity) needs readers")
    groupings = _groupings(groups, bins, n)
    if clusters is None:
        unit_of_case = np.arange(n)
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (n,):
            raise EvaluationInputError(f"clusters must have one entry per case ({n}), got shape {clusters.shape}")
        unit_of_case = np.unique(clusters, return_inverse=True)[1]

    case_groups = make_groups(y, unit_of_case, groupings, OVERALL)
    decision = OperatingRule("decision", float(reader_threshold))
    predictors = ([Predictor(name, scores, rules, "model") for name, scores in models.items()]
                  + [Predictor(name, scores, (decision,), "reader") for name, scores in reader_scores.items()])
    engine = Engine(y, predictors, case_groups, unit_of_case, {name: float(reader_threshold) for name in reader_scores})
    point, replicates = run(engine, n_bootstrap, random_state, clustered=clusters is not None)
    names = [pr.name for pr in predictors]
    rules_of = [pr.rules for pr in predictors]
    if reader_scores:  # the readers' mean, replicate by replicate
        members = list(range(len(models), len(predictors)))
        for values in (point, replicates):
            if values:
                add_mean(values, members, len(predictors))
        names.append(f"readers' mean ({len(reader_scores)})")
        rules_of.append((decision,))
    whole = engine.thresholds(np.ones((1, n), dtype=np.int64), np.ones((1, engine.first_case.size), dtype=np.int64))
    setting = _Setting(level, int(n_bootstrap), confidence, min_positives, names, rules_of, case_groups, point,
                       replicates, {key: float(value[0]) for key, value in whole.items()})

    warnings: list[str] = []
    rows = _rows(setting, warnings)
    heterogeneity = _heterogeneity(setting, groupings, rows) if n_bootstrap else []
    paired = _paired_delong(y, models, case_groups, confidence, level) if paired_tests and len(models) > 1 else []
    versus = (_versus_readers(setting, list(models), len(predictors), decision)
              if reader_scores and any(r.kind == "readers_specificity" for r in rules) else [])
    operating = [{"predictor": pr.name, "rule": rule.name, "kind": rule.kind, "target": rule.target,
                  "threshold": setting.thresholds[p, rule.name],
                  **{m: _none(float(point[0, p, m, rule.name][0])) for m in AT_THRESHOLD}}
                 for p, pr in enumerate(predictors) for rule in pr.rules]
    seed = random_state if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) else None
    return SubgroupAnalysis(level, rows, groupings, heterogeneity, paired, operating, int(n_bootstrap), seed,
                            confidence, "case" if clusters is None else "exam", warnings, y,
                            {**models, **reader_scores}, list(models), list(reader_scores), versus)


def subgroup_metrics(y_true: Any, y_score: Any, groups: Any, *, key: str = "group", bins: Any = None,
                     clusters: Any = None, operating_points: Sequence[Any] = DEFAULT_OPERATING_POINTS,
                     n_bootstrap: int = DEFAULT_REPLICATES, random_state: int | np.random.RandomState | None = 0,
                     confidence: float = 0.95, min_positives: int = MIN_POSITIVES_FOR_INTERVAL) -> pd.DataFrame:
    """AUROC, AUPRC, sensitivity, specificity and recall rate per subgroup, with bootstrap CIs: a tidy table.

    One row per (subgroup, metric, operating point), the whole set first (``group == 'all'``); columns
    ``group, n_cases, n_exams, n_positive, n_negative, metric, operating_point, threshold, value, ci_low,
    ci_high, difference, difference_ci_low, difference_ci_high, p_value, replicates_used, warning`` (and
    ``level, key, predictor``). See :func:`analyse_subgroups` for the heterogeneity tests and several
    models at once.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,), scores (higher = more likely positive).
    groups : one value per case (text, number, bool; None = missing).
    key : name of the grouping (the ``key`` column).
    bins : for numeric values: edges '50,60,70' (left-closed: <50, [50, 60), [60, 70), >=70) or 'q4'.
    clusters : resampling unit (e.g. exam) of each case; None: each case.
    operating_points : e.g. ('specificity=0.9', 'recall_rate=0.1'); thresholds chosen on the whole set.
    n_bootstrap, random_state, confidence, min_positives : as :func:`analyse_subgroups`.

    Example
    -------
    >>> table = subgroup_metrics(labels, scores, density, key="density")  # doctest: +SKIP
    >>> table[table.metric == "auroc"][["group", "n_cases", "value", "ci_low", "ci_high"]]  # doctest: +SKIP
    """
    groups = list(groups)
    analysis = analyse_subgroups(y_true, y_score, {key: groups}, bins=bins, clusters=clusters,
                                 operating_points=operating_points, n_bootstrap=n_bootstrap,
                                 random_state=random_state, confidence=confidence, min_positives=min_positives)
    return analysis.to_frame()


def operating_points(y_true: Any, y_score: Any, rules: Sequence[Any] = DEFAULT_OPERATING_POINTS, *,
                     clusters: Any = None, n_bootstrap: int = DEFAULT_REPLICATES,
                     random_state: int | np.random.RandomState | None = 0, confidence: float = 0.95) -> pd.DataFrame:
    """Sensitivity, specificity and recall rate at each operating point of the whole set, with CIs.

    ``rules``: 'specificity=0.9', 'sensitivity=0.8', 'recall_rate=0.1' (exams recalled; ``clusters`` gives
    each case's exam), 'threshold=0.5'. The threshold is chosen again in each bootstrap replicate, so the
    intervals include the uncertainty of choosing it. One row per (rule, metric).
    """
    analysis = analyse_subgroups(y_true, y_score, None, clusters=clusters, operating_points=rules,
                                 n_bootstrap=n_bootstrap, random_state=random_state, confidence=confidence)
    frame = analysis.to_frame()
    return frame[frame.operating_point != ""].reset_index(drop=True)
