"""The machinery behind :mod:`.subgroups`: operating rules, and one evaluator for every (subgroup,
predictor, metric) over a matrix of case counts - a row per bootstrap replicate, or a single row of ones for
the point values, so that both share one definition."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ._ranking import RankedScores, threshold_at_rate
from .bootstrap import as_random_state, bootstrap_counts
from .validation import EvaluationInputError, check_fraction

RANKING = ("auroc", "auprc_trapezoid")
AT_THRESHOLD = ("sensitivity", "specificity", "recall_rate")

# ----------------------------------------------------------------------------------------------
# Operating points
# ----------------------------------------------------------------------------------------------

_RULE_ALIASES = {"spec": "specificity", "specificity": "specificity", "sens": "sensitivity",
                 "sensitivity": "sensitivity", "recall": "recall_rate", "recall_rate": "recall_rate",
                 "recall-rate": "recall_rate", "threshold": "threshold", "score": "threshold"}


@dataclass(frozen=True)
class OperatingRule:
    """How a threshold is chosen on the whole set: at a specificity, a sensitivity, a recall rate, a fixed
    score, the readers' mean specificity ('readers_specificity'), or a reader's own decision
    ('decision': score > target)."""

    kind: str
    target: float | None = None

    @property
    def name(self) -> str:
        if self.kind == "readers_specificity":
            return "readers' mean specificity"
        if self.kind == "decision":
            return f"reader decision (score > {self.target:g})"
        return f"{self.kind}={self.target:g}"


def parse_operating_point(spec: str | OperatingRule) -> OperatingRule:
    """'specificity=0.9' (or 'spec=0.9'), 'sensitivity=0.8', 'recall_rate=0.1' (or 'recall=0.1'),
    'threshold=0.5' (a fixed score), or 'readers' (the readers' mean specificity)."""
    if isinstance(spec, OperatingRule):
        return spec
    text = str(spec).strip().lower().replace(" ", "")
    if text in ("readers", "readers_specificity", "reader"):
        return OperatingRule("readers_specificity")
    name, sep, value = text.partition("=")
    if not sep:
        name, sep, value = text.partition(":")
    kind = _RULE_ALIASES.get(name)
    if kind is None or not sep:
        raise EvaluationInputError(f"operating point {spec!r}: write specificity=0.9, sensitivity=0.8, "
                                   "recall_rate=0.1, threshold=0.5 or readers")
    try:
        target = float(value)
    except ValueError:
        raise EvaluationInputError(f"operating point {spec!r}: {value!r} is not a number") from None
    if kind == "threshold":
        if not math.isfinite(target):
            raise EvaluationInputError(f"operating point {spec!r}: the threshold must be finite")
    else:
        target = check_fraction(target, kind.replace("_", " "))
    return OperatingRule(kind, target)


# ----------------------------------------------------------------------------------------------
# The engine: every subgroup and predictor on one set of replicates
# ----------------------------------------------------------------------------------------------

@dataclass
class CaseGroup:
    key: str
    label: str
    cases: np.ndarray  # indices
    positive: np.ndarray  # bool over cases
    units: np.ndarray  # distinct resampling units of the cases
    unit_of_member: np.ndarray  # index into units for each case


@dataclass
class Predictor:
    name: str
    scores: np.ndarray
    rules: tuple[OperatingRule, ...]
    kind: str  # 'model' or 'reader'


class Engine:
    """Evaluates every (subgroup, predictor, metric) for a matrix of case counts (one row per replicate)."""

    def __init__(self, y: np.ndarray, predictors: list[Predictor], groups: list[CaseGroup], unit_of_case: np.ndarray,
                 reader_decisions: Mapping[str, float]):
        self.y = y
        self.predictors = predictors
        self.groups = groups
        self.unit_of_case = unit_of_case
        self.first_case = np.unique(unit_of_case, return_index=True)[1]
        self.reader_decisions = dict(reader_decisions)
        self.whole = _RankedScoresCache(y)
        # Per (group, predictor): the ranked scores (None when the group lacks a class) and, per unit of the
        # group, its highest score (recall rate: a unit is recalled when any of its cases is called).
        self.ranked: dict[tuple[int, int], RankedScores | None] = {}
        self.unit_highest: dict[tuple[int, int], np.ndarray] = {}
        for g, group in enumerate(groups):
            labels = y[group.cases]
            both = 0 < labels.sum() < labels.size
            for p, predictor in enumerate(predictors):
                scores = predictor.scores[group.cases]
                self.ranked[g, p] = RankedScores(labels, scores) if both else None
                highest = np.full(group.units.size, -np.inf)
                np.maximum.at(highest, group.unit_of_member, scores)
                self.unit_highest[g, p] = highest
        self.whole_highest = {}
        for p, predictor in enumerate(predictors):
            highest = np.full(self.first_case.size, -np.inf)
            np.maximum.at(highest, unit_of_case, predictor.scores)
            self.whole_highest[p] = highest

    def thresholds(self, counts: np.ndarray, unit_counts: np.ndarray) -> dict[tuple[int, str], np.ndarray]:
        """The threshold of every (predictor, rule) in each row, chosen on the row's whole set."""
        out: dict[tuple[int, str], np.ndarray] = {}
        readers_spec = None
        for p, predictor in enumerate(self.predictors):
            ranked = self.whole.get(predictor.scores)
            for rule in predictor.rules:
                if rule.kind == "threshold":
                    t = np.full(counts.shape[0], rule.target)
                elif rule.kind == "decision":
                    t = np.full(counts.shape[0], np.nextafter(rule.target, np.inf))  # score > target
                elif rule.kind == "specificity":
                    t = ranked.thresholds_of_columns(ranked.sensitivity_at_specificity(counts, rule.target)[2])
                elif rule.kind == "sensitivity":
                    t = ranked.thresholds_of_columns(ranked.specificity_at_sensitivity(counts, rule.target)[2])
                elif rule.kind == "recall_rate":
                    t = threshold_at_rate(self.whole_highest[p], unit_counts, rule.target)
                elif rule.kind == "readers_specificity":
                    if readers_spec is None:
                        readers_spec = self._readers_specificity(counts)
                    target = np.where(np.isnan(readers_spec), 1.0, readers_spec)
                    t = ranked.thresholds_of_columns(ranked.sensitivity_at_specificity(counts, target)[2])
                else:
                    raise EvaluationInputError(f"unknown operating rule {rule.kind!r}")
                out[p, rule.name] = t
        return out

    def _readers_specificity(self, counts: np.ndarray) -> np.ndarray:
        negative = self.y == 0
        n_neg = counts[:, negative].sum(axis=1)
        specs = []
        for predictor in self.predictors:
            if predictor.kind != "reader":
                continue
            cut = self.reader_decisions[predictor.name]
            not_called = negative & (predictor.scores <= cut)
            specs.append(counts[:, not_called].sum(axis=1) / np.maximum(n_neg, 1))
        if not specs:
            raise EvaluationInputError("the readers' mean specificity needs reader scores (a reader study)")
        return np.where(n_neg > 0, np.mean(specs, axis=0), np.nan)

    def evaluate(self, counts: np.ndarray) -> dict[tuple[int, int, str, str], np.ndarray]:
        """(group, predictor, metric, operating point name or '') -> values, one per row of ``counts``."""
        unit_counts = counts[:, self.first_case]
        thresholds = self.thresholds(counts, unit_counts)
        out: dict[tuple[int, int, str, str], np.ndarray] = {}
        for g, group in enumerate(self.groups):
            member_counts = counts[:, group.cases]
            n_pos = member_counts[:, group.positive].sum(axis=1)
            n_neg = member_counts[:, ~group.positive].sum(axis=1)
            group_unit_counts = unit_counts[:, group.units]
            n_units = group_unit_counts.sum(axis=1)
            for p, predictor in enumerate(self.predictors):
                ranked = self.ranked[g, p]
                if ranked is not None:
                    values = ranked.ranking_metrics(member_counts)
                    for metric in RANKING:
                        out[g, p, metric, ""] = values[metric]
                else:
                    for metric in RANKING:
                        out[g, p, metric, ""] = np.full(counts.shape[0], np.nan)
                scores = predictor.scores[group.cases]
                for rule in predictor.rules:
                    t = thresholds[p, rule.name][:, None]
                    called = scores[None, :] >= t
                    tp = (member_counts * (called & group.positive)).sum(axis=1)
                    tn = (member_counts * (~called & ~group.positive)).sum(axis=1)
                    recalled = (group_unit_counts * (self.unit_highest[g, p][None, :] >= t)).sum(axis=1)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        out[g, p, "sensitivity", rule.name] = np.where(n_pos > 0, tp / n_pos, np.nan)
                        out[g, p, "specificity", rule.name] = np.where(n_neg > 0, tn / n_neg, np.nan)
                        out[g, p, "recall_rate", rule.name] = np.where(n_units > 0, recalled / n_units, np.nan)
        return out


class _RankedScoresCache:
    """One :class:`RankedScores` per score vector over the whole set (built once)."""

    def __init__(self, y: np.ndarray):
        self.y = y
        self._cache: dict[int, RankedScores] = {}

    def get(self, scores: np.ndarray) -> RankedScores:
        found = self._cache.get(id(scores))
        if found is None:
            found = self._cache[id(scores)] = RankedScores(self.y, scores)
        return found



def make_groups(y: np.ndarray, unit_of_case: np.ndarray, groupings, overall: str) -> list[CaseGroup]:
    """The whole set, then every subgroup of every grouping."""
    positive = y == 1

    def make(key: str, label: str, cases: np.ndarray) -> CaseGroup:
        units, unit_of_member = np.unique(unit_of_case[cases], return_inverse=True)
        return CaseGroup(key, label, cases, positive[cases], units, unit_of_member)

    groups = [make("", overall, np.arange(y.size))]
    for grouping in groupings:
        groups += [make(grouping.key, label, grouping.members(label)) for label in grouping.labels]
    return groups


Values = dict[tuple[int, int, str, str], np.ndarray]


def run(engine: Engine, n_bootstrap: int, random_state, clustered: bool) -> tuple[Values, Values]:
    """(point values, replicate values) of every (group, predictor, metric, operating point)."""
    n = engine.y.size
    point = engine.evaluate(np.ones((1, n), dtype=np.int64))
    blocks: dict[tuple[int, int, str, str], list[np.ndarray]] = {}
    if n_bootstrap:
        groups = engine.unit_of_case if clustered else None
        for counts in bootstrap_counts(n, n_bootstrap, as_random_state(random_state), groups=groups):
            for k, v in engine.evaluate(counts).items():
                blocks.setdefault(k, []).append(v)
    return point, {k: np.concatenate(v) for k, v in blocks.items()}


def add_mean(values: Values, members: list[int], into: int) -> None:
    """Predictor ``into``: the mean over the predictors ``members``, replicate by replicate."""
    for (g, _, metric, op) in [k for k in values if k[1] == members[0]]:
        values[g, into, metric, op] = np.mean([values[g, m, metric, op] for m in members], axis=0)
