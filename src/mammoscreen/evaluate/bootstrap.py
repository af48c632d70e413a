"""Bootstrap confidence intervals, computed for all replicates at once.

A replicate resamples the cases with replacement; here it is represented by how many times each case
was drawn (an integer count per case), and every metric of every replicate is computed from those
counts over scores sorted once (see ``_ranking``). Replicates are processed in blocks whose size
bounds memory (about ``2**20`` counts per block) whatever the number of replicates.

Compatibility with the meta-repository (``evaluation/score.py``): with ``random_state=S`` the
replicates are exactly those that ``sklearn.utils.resample(..., replace=True, n_samples=n)`` draws
after ``numpy.random.seed(S)`` (the same ``numpy.random.RandomState`` stream), replicates with a single
class are skipped and counted as there, and :func:`percentile_interval` picks the same order
statistics. Passing one ``RandomState`` object to consecutive calls continues its stream, as the
reference's consecutive loops do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ._ranking import RankedScores
from .validation import EvaluationInputError, check_binary_problem, check_fraction

__all__ = [
    "DEFAULT_REPLICATES", "MIN_CASES_FOR_BOOTSTRAP", "BootstrapResult", "bootstrap_counts",
    "bootstrap_metrics", "percentile_interval", "as_random_state", "check_metric_names",
]

DEFAULT_REPLICATES = 2000

MIN_CASES_FOR_BOOTSTRAP = 8
"""score.py skips the bootstrap when there are fewer than 8 cases (its message says "more than 8",
its code bootstraps from 8 on); we follow the code, so 8 cases get CIs."""

RANKING_METRICS = ("auroc", "auprc_trapezoid", "average_precision")

_BLOCK_ELEMENTS = 1 << 20  # counts per block of replicates (8 MiB of int64)


def as_random_state(random_state: int | np.random.RandomState | None) -> np.random.RandomState:
    """A ``numpy.random.RandomState``: a new one for an int or None, the same object if given one."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if random_state is not None and (isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer))
                                     or random_state < 0):
        raise EvaluationInputError(f"the bootstrap seed must be a non-negative integer, got {random_state!r}")
    return np.random.RandomState(random_state)


def check_metric_names(metrics: str | Sequence[str]) -> tuple[str, ...]:
    """The bootstrap metric names as a tuple (one name may be given alone), each one of ``RANKING_METRICS``."""
    try:
        names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    except TypeError:  # not a sequence: named as the bad value below
        names = (metrics,)  # type: ignore[assignment]
    unknown = sorted({repr(name) for name in names if not isinstance(name, str) or name not in RANKING_METRICS})
    if unknown:
        raise EvaluationInputError(f"unknown bootstrap metrics [{', '.join(unknown)}]; choose from {RANKING_METRICS}")
    return names


def _check_replicates(n_replicates: int) -> int:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, (int, np.integer)) or n_replicates < 1:
        raise EvaluationInputError(f"the number of bootstrap replicates must be a positive integer, got "
                                   f"{n_replicates!r}")
    return int(n_replicates)


def bootstrap_counts(n_cases: int, n_replicates: int = DEFAULT_REPLICATES,
                     random_state: int | np.random.RandomState | None = 0,
                     groups: Any = None, block_size: int | None = None) -> Iterator[np.ndarray]:
    """Yield blocks of bootstrap replicates as int64 count matrices of shape (block, n_cases).

    Entry [r, i] is how many times case i was drawn in replicate r.

    Parameters
    ----------
    n_cases : number of cases.
    n_replicates : total number of replicates over all blocks.
    random_state : seed or ``numpy.random.RandomState`` (continued, not reset, when given).
    groups : optional array of shape (n_cases,): resample whole groups (e.g. the exam of each breast)
        instead of single cases; a drawn group brings all its cases.
    block_size : replicates per block (default: about 2**20 counts per block).
    """
    n_replicates = _check_replicates(n_replicates)
    rng = as_random_state(random_state)
    if groups is None:
        group_of_case = None
        n_units = n_cases
    else:
        groups = np.asarray(groups)
        if groups.shape != (n_cases,):
            raise EvaluationInputError(f"groups must have one entry per case ({n_cases}), got shape {groups.shape}")
        _, group_of_case = np.unique(groups, return_inverse=True)
        n_units = int(group_of_case.max()) + 1
    if block_size is None:
        block_size = max(1, _BLOCK_ELEMENTS // max(n_units, n_cases))
    done = 0
    while done < n_replicates:
        size = min(block_size, n_replicates - done)
        # One randint call per block draws the same numbers as one call per replicate (the legacy
        # generator has no state between calls beyond its stream), so the stream matches score.py.
        draws = rng.randint(0, n_units, size=(size, n_units))
        flat = (draws + (np.arange(size) * n_units)[:, None]).ravel()
        unit_counts = np.bincount(flat, minlength=size * n_units).reshape(size, n_units)
        yield unit_counts if group_of_case is None else unit_counts[:, group_of_case]
        done += size


def percentile_interval(values: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval: the order statistics at ``(1 - confidence) / 2`` and its complement.

    With n sorted values v, returns ``(v[int(a * n)], v[int((1 - a) * n)])`` for ``a = (1 - confidence)
    / 2`` - no interpolation, the definition the meta-repository uses (2000 replicates: the 51st and
    1951st smallest values). NaN values (skipped replicates) are ignored.

    Parameters
    ----------
    values : array of replicate values.
    confidence : coverage of the interval, in (0, 1).
    """
    confidence = check_fraction(confidence, "confidence")
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[~np.isnan(v)])
    if v.size == 0:
        return float("nan"), float("nan")
    margin = (1 - confidence) / 2
    low = v[min(int(margin * v.size), v.size - 1)]
    high = v[min(int((1 - margin) * v.size), v.size - 1)]
    return float(low), float(high)


@dataclass
class BootstrapResult:
    """Replicate values of each metric, aligned across metrics and predictors.

    ``replicates[name]`` has shape (n_used,) for one predictor or (n_used, n_predictors); row r of
    every array comes from the same resampled cases, so differences and means across predictors can
    be bootstrapped by combining rows.
    """

    replicates: dict[str, np.ndarray]
    n_requested: int
    n_used: int
    n_single_class: int
    confidence: float = 0.95

    def interval(self, name: str, confidence: float | None = None) -> tuple[float, float] | list[tuple[float, float]]:
        """Percentile interval of metric ``name`` (a list of intervals for several predictors)."""
        if name not in self.replicates:
            raise EvaluationInputError(f"no bootstrap replicates of {name!r}; this result has "
                                       f"{', '.join(map(repr, self.replicates)) or 'none'}")
        values = self.replicates[name]
        level = self.confidence if confidence is None else confidence
        if values.ndim == 1:
            return percentile_interval(values, level)
        return [percentile_interval(values[:, k], level) for k in range(values.shape[1])]

    def summary(self) -> dict[str, Any]:
        """Counts of replicates: requested, used, skipped for having one class."""
        return {"requested": self.n_requested, "used": self.n_used, "skipped_single_class": self.n_single_class}


@dataclass(frozen=True)
class BootstrapProblem:
    """Labels and one or more score vectors evaluated on the same replicates.

    ``specificities``/``sensitivities`` add the operating-point metrics
    ``sensitivity_at_specificity_<s>`` and ``specificity_at_sensitivity_<s>``.
    """

    y_true: np.ndarray
    y_scores: np.ndarray  # (n_predictors, n_cases)
    metrics: tuple[str, ...] = RANKING_METRICS
    specificities: tuple[float, ...] = ()
    sensitivities: tuple[float, ...] = ()


def operating_metric_name(kind: str, target: float) -> str:
    """Key of an operating-point metric, e.g. ``sensitivity_at_specificity_0.9``."""
    return f"{kind}_{target:g}"


def run_bootstrap(problems: Sequence[BootstrapProblem], n_replicates: int = DEFAULT_REPLICATES,
                  random_state: int | np.random.RandomState | None = 0, groups: Any = None,
                  confidence: float = 0.95) -> list[BootstrapResult]:
    """Bootstrap several problems over the same cases with one set of replicates."""
    if not problems:
        return []
    n_cases = problems[0].y_true.size
    if any(p.y_true.size != n_cases for p in problems):
        raise EvaluationInputError("all bootstrap problems must have the same cases")
    metrics = [check_metric_names(p.metrics) for p in problems]
    ranked = [[RankedScores(p.y_true, s) for s in p.y_scores] for p in problems]
    collected: list[dict[str, list[np.ndarray]]] = [{} for _ in problems]
    n_valid = [0] * len(problems)
    for counts in bootstrap_counts(n_cases, n_replicates, random_state, groups):
        for k, (problem, per_predictor) in enumerate(zip(problems, ranked)):
            n_pos = counts[:, problem.y_true == 1].sum(axis=1)
            n_all = counts.sum(axis=1)
            valid = (n_pos > 0) & (n_pos < n_all)
            n_valid[k] += int(valid.sum())
            block = counts if valid.all() else counts[valid]
            columns: dict[str, list[np.ndarray]] = {}
            for r in per_predictor:
                values = r.ranking_metrics(block) if metrics[k] else {}
                for name in metrics[k]:
                    columns.setdefault(name, []).append(values[name])
                for target in problem.specificities:
                    columns.setdefault(operating_metric_name("sensitivity_at_specificity", target), []).append(
                        r.sensitivity_at_specificity(block, target)[0])
                for target in problem.sensitivities:
                    columns.setdefault(operating_metric_name("specificity_at_sensitivity", target), []).append(
                        r.specificity_at_sensitivity(block, target)[0])
            for name, per in columns.items():
                collected[k].setdefault(name, []).append(np.stack(per, axis=1))
    results = []
    for k in range(len(problems)):
        replicates = {name: np.concatenate(blocks, axis=0) for name, blocks in collected[k].items()}
        result = BootstrapResult(replicates, n_replicates, n_valid[k], n_replicates - n_valid[k], confidence)
        results.append(result)
    return results


def bootstrap_metrics(y_true: Any, y_score: Any, n_replicates: int = DEFAULT_REPLICATES,
                      random_state: int | np.random.RandomState | None = 0, *,
                      metrics: str | Sequence[str] = RANKING_METRICS, specificities: Sequence[float] = (),
                      sensitivities: Sequence[float] = (), groups: Any = None,
                      confidence: float = 0.95) -> BootstrapResult:
    """Bootstrap distribution of ranking metrics for one or several score vectors on the same cases.

    Replicates in which every drawn case has the same label are skipped and counted (as the
    meta-repository does); ``result.n_used`` says how many remain.

    Parameters
    ----------
    y_true : array of shape (n,), labels 0/1 with both classes present.
    y_score : array of shape (n,) or (n_predictors, n); rows share the replicates (paired bootstrap).
    n_replicates : number of replicates drawn.
    random_state : seed or ``numpy.random.RandomState``.
    metrics : any of 'auroc', 'auprc_trapezoid', 'average_precision' (one name alone is one metric); another
        name raises ``ValueError`` (:class:`~.validation.EvaluationInputError`) naming it.
    specificities, sensitivities : targets for sensitivity-at-specificity and
        specificity-at-sensitivity replicates.
    groups : optional cluster of each case (resample clusters, e.g. exams for breasts).
    confidence : coverage of :meth:`BootstrapResult.interval`.
    """
    metrics = check_metric_names(metrics)
    y_score = np.asarray(y_score)
    single = y_score.ndim == 1
    y, s = check_binary_problem(y_true, y_score[None, :] if single else y_score, score_ndim=2)
    problem = BootstrapProblem(y, s, metrics, tuple(float(t) for t in specificities),
                               tuple(float(t) for t in sensitivities))
    result = run_bootstrap([problem], n_replicates, random_state, groups, confidence)[0]
    if single:
        result.replicates = {name: v[:, 0] for name, v in result.replicates.items()}
    return result
