"""Evaluating one model's prediction file: the meta-repository's metrics, with bootstrap CIs.

:func:`evaluate_predictions` returns an :class:`EvaluationResult` (numbers and the arrays behind
them); writing ``metrics.json`` and the plots is left to :mod:`.reports`, so that other code (the
multi-model pipeline, notebooks) can use the numbers without touching files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..data.exams import Exam
from ..core.files import sha256_file
from .bootstrap import (
    DEFAULT_REPLICATES,
    MIN_CASES_FOR_BOOTSTRAP,
    RANKING_METRICS,
    BootstrapProblem,
    as_random_state,
    run_bootstrap,
)
from .io import read_predictions, resolve_exam_list
from .levels import LevelData, breast_level_data, image_level_data
from .labels import check_label_agreement
from .metrics import ranking_metrics
from .validation import EvaluationInputError, check_binary_problem, check_fraction

__all__ = ["METRIC_LABELS", "MetricEstimate", "LevelResult", "EvaluationResult", "evaluate_predictions",
           "evaluate_level"]

METRIC_LABELS = {
    "auroc": "AUROC",
    "auprc_trapezoid": "AUPRC (trapezoidal)",
    "average_precision": "Average precision",
    "benign_auroc": "Benign AUROC",
}
"""Display names. 'AUPRC (trapezoidal)' is the meta-repository's AUPRC: the trapezoidal area under
scikit-learn's precision-recall curve; average precision is the step-wise area."""

LEVELS = ("image", "breast")


@dataclass
class MetricEstimate:
    """A metric's value and, when bootstrapped, its percentile confidence interval."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}

    def format(self, digits: int = 3) -> str:
        text = f"{self.value:.{digits}f}"
        if self.ci_low is not None:
            text += f" ({self.ci_low:.{digits}f}-{self.ci_high:.{digits}f})"
        return text


@dataclass
class LevelResult:
    """Metrics of one level (image or breast) and how their CIs were obtained."""

    level: str
    n_cases: int
    n_positive: int
    metrics: dict[str, MetricEstimate]
    bootstrap: dict[str, dict[str, int]] | None
    notes: list[str]
    data: LevelData

    def to_dict(self) -> dict[str, Any]:
        return {"n_cases": self.n_cases, "n_positive": self.n_positive, "n_negative": self.n_cases - self.n_positive,
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "bootstrap_replicates": self.bootstrap, "notes": self.notes}


@dataclass
class EvaluationResult:
    """Everything ``mammoscreen evaluate`` reports for one prediction file."""

    predictions: str
    input_level: str
    levels: dict[str, LevelResult]
    n_bootstrap: int
    seed: int | None
    confidence: float
    predictions_sha256: str | None = None
    exam_list: str | None = None
    exam_list_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    labels: dict[str, Any] | None = None  # which labels each level uses, and how many rows disagree

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable summary (what ``metrics.json`` holds)."""
        return {
            "tool": "mammoscreen evaluate",
            "version": __version__,
            "predictions": {"path": self.predictions, "sha256": self.predictions_sha256, "level": self.input_level},
            "exam_list": {"path": self.exam_list, "sha256": self.exam_list_sha256} if self.exam_list else None,
            "bootstrap": {"replicates": self.n_bootstrap, "seed": self.seed, "confidence": self.confidence,
                          "interval": "percentile (order statistics, as the meta-repository)",
                          "resampling": "cases with replacement; replicates with a single class skipped"},
            "metric_definitions": {
                "auroc": "area under the ROC curve (sklearn roc_auc_score)",
                "auprc_trapezoid": "area under sklearn's precision-recall curve by the trapezoidal rule "
                                   "(the meta-repository's AUPRC)",
                "average_precision": "average precision (sklearn average_precision_score)",
                "benign_auroc": "AUROC of the benign predictions against the benign labels",
            },
            "levels": {name: level.to_dict() for name, level in self.levels.items()},
            "labels": self.labels,
            "warnings": self.warnings,
        }


def evaluate_level(data: LevelData, n_bootstrap: int = DEFAULT_REPLICATES,
                   random_state: int | np.random.RandomState | None = 0, confidence: float = 0.95,
                   source: str | None = None) -> LevelResult:
    """Metrics of one level's labels and scores, with bootstrap CIs when there are enough cases.

    Parameters
    ----------
    data : labels and scores (:class:`~mammoscreen.evaluate.io.LevelData`).
    n_bootstrap : replicates (0: no CIs).
    random_state : seed or ``numpy.random.RandomState`` (continued when given).
    confidence : CI coverage.
    source : name for error messages.
    """
    where = f"{source}, {data.level} level" if source else f"{data.level} level"
    y, s = check_binary_problem(data.y_true, data.y_score, where=where)
    point = ranking_metrics(y, s)
    metrics = {name: MetricEstimate(point[name]) for name in RANKING_METRICS}
    notes: list[str] = []
    benign = None
    if data.benign_true is not None:
        n_benign = int(np.sum(data.benign_true))
        if 0 < n_benign < data.benign_true.size:
            benign = check_binary_problem(data.benign_true, data.benign_score, where=where + " (benign)")
            metrics["benign_auroc"] = MetricEstimate(ranking_metrics(*benign)["auroc"])
        else:
            notes.append("benign AUROC not computed: the benign labels have a single class")

    bootstrap = None
    if n_bootstrap and y.size < MIN_CASES_FOR_BOOTSTRAP:
        notes.append(f"no bootstrap: fewer than {MIN_CASES_FOR_BOOTSTRAP} cases")
    elif n_bootstrap:
        problems = [BootstrapProblem(y, s[None, :])]
        if benign is not None:
            problems.append(BootstrapProblem(benign[0], benign[1][None, :], metrics=("auroc",)))
        results = run_bootstrap(problems, n_bootstrap, random_state, confidence=confidence)
        bootstrap = {"malignant": results[0].summary()}
        if results[0].n_used:
            for name in RANKING_METRICS:
                metrics[name].ci_low, metrics[name].ci_high = results[0].interval(name)[0]
        else:
            notes.append("no CI: every bootstrap replicate had a single class")
        if benign is not None:
            bootstrap["benign"] = results[1].summary()
            if results[1].n_used:
                metrics["benign_auroc"].ci_low, metrics["benign_auroc"].ci_high = results[1].interval("auroc")[0]
    return LevelResult(data.level, int(y.size), int(y.sum()), metrics, bootstrap, notes, data)


def _sha256_or_none(path: str | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None


def evaluate_predictions(predictions: str | os.PathLike | pd.DataFrame,
                         exam_list: str | os.PathLike | Sequence[Exam] | None = None, *,
                         level: str = "both", n_bootstrap: int = DEFAULT_REPLICATES, seed: int | None = 0,
                         confidence: float = 0.95, strict: bool = False) -> EvaluationResult:
    """Evaluate a prediction file as the meta-repository's ``score.py`` does, with CIs.

    Image-level files give image-level metrics and, with an exam list, breast-level metrics from the
    mean of each breast's view predictions; breast-level files give breast-level metrics (labels from
    the exam list). Bootstrap replicates come from ``numpy.random.RandomState(seed)``, the breast level
    first and then the image level, as score.py draws them after ``numpy.random.seed(seed)``.

    Parameters
    ----------
    predictions : CSV path (or DataFrame) in one of the meta-repository's formats.
    exam_list : exam list path (.pkl/.json) or list of :class:`~mammoscreen.data.Exam`; required for
        breast-level metrics.
    level : 'image', 'breast' or 'both' (what the file and exam list allow).
    n_bootstrap : bootstrap replicates (0: no CIs).
    seed : bootstrap seed (None: unseeded, not reproducible).
    confidence : CI coverage.
    strict : stop (EvaluationInputError) when the file's labels disagree with the exam list's; without it the
        number of disagreeing rows is a warning (see :mod:`.labels`).
    """
    if level not in ("image", "breast", "both"):
        raise EvaluationInputError(f"level must be 'image', 'breast' or 'both', got {level!r}")
    confidence = check_fraction(confidence, "confidence")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise EvaluationInputError(f"the number of bootstrap replicates must be 0 or more, got {n_bootstrap!r}")
    table = read_predictions(predictions)
    exams, exam_path = resolve_exam_list(exam_list)
    exam_source = exam_path or "exam list"
    warnings: list[str] = []

    wanted = LEVELS if level == "both" else (level,)
    if table.level == "breast" and "image" in wanted:
        if level == "image":
            raise EvaluationInputError(f"{table.source}: is a breast-level file; it has no image-level predictions")
        wanted = ("breast",)
    if table.level == "image" and "breast" in wanted and exams is None:
        if level == "breast":
            raise EvaluationInputError(f"{table.source}: breast-level metrics from an image-level file need the exam "
                                       "list (--exam-list) to group images into breasts and read the labels")
        warnings.append("breast-level metrics skipped: they need the exam list (--exam-list)")
        wanted = ("image",)

    data: dict[str, LevelData] = {}
    if "image" in wanted:
        data["image"] = image_level_data(table, exams, exam_source)
    if "breast" in wanted:
        data["breast"] = breast_level_data(table, exams, exam_source)
    warnings = table.warnings + warnings
    labels = check_label_agreement(table, exams, list(data), exam_source=exam_source, strict=strict)
    if labels.warning(table.source, exam_source):
        warnings.append(labels.warning(table.source, exam_source))

    rng = as_random_state(seed)
    results: dict[str, LevelResult] = {}
    # score.py bootstraps the breast level before the image level from one random stream.
    for name in ("breast", "image"):
        if name in data:
            results[name] = evaluate_level(data[name], n_bootstrap, rng, confidence, table.source)
    ordered = {name: results[name] for name in LEVELS if name in results}
    predictions_path = None if isinstance(predictions, pd.DataFrame) else str(predictions)
    return EvaluationResult(
        predictions=predictions_path or table.source, input_level=table.level, levels=ordered,
        n_bootstrap=int(n_bootstrap), seed=seed, confidence=confidence,
        predictions_sha256=_sha256_or_none(predictions_path), exam_list=exam_path,
        exam_list_sha256=_sha256_or_none(exam_path), warnings=warnings, labels=labels.to_dict())
