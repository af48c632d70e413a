"""Reader studies: radiologists' and models' probabilities of malignancy on the same cases.

The table layout is the meta-repository's ``reader_study/results.pkl``: one row per breast with
``case_ID``, ``side``, ``label`` (1 = malignant), ``<reader>_POM`` columns (e.g. ``Reader01_POM``)
and ``AI_<model>_POM`` columns. :func:`evaluate_reader_study` reports every reader's and model's
AUROC, AUPRC and average precision with bootstrap CIs, the readers' mean, and each reader's hybrid
with each model (the mean of the two probabilities), all on the same bootstrap replicates.

By default the bootstrap resamples exams (``case_ID``), keeping both breasts of an exam together,
since they were read together; pass ``resample='row'`` to resample breasts independently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .bootstrap import (DEFAULT_REPLICATES, MIN_CASES_FOR_BOOTSTRAP, RANKING_METRICS, BootstrapProblem,
                        percentile_interval, run_bootstrap)
from .io import read_reader_study
from .metrics import ranking_metrics
from .predictions import MetricEstimate
from .validation import EvaluationInputError, check_fraction, check_labels, check_scores

__all__ = ["split_reader_study_columns", "reader_study_labels", "ReaderStudyResult", "evaluate_reader_study",
           "display_name"]

MODEL_PREFIX = "AI_"
SCORE_SUFFIX = "_POM"


def display_name(column: str) -> str:
    """'Reader01_POM' -> 'Reader01', 'AI_GMIC_top5_POM' -> 'GMIC_top5'."""
    name = column[:-len(SCORE_SUFFIX)] if column.endswith(SCORE_SUFFIX) else column
    return name[len(MODEL_PREFIX):] if name.startswith(MODEL_PREFIX) else name


def split_reader_study_columns(frame: pd.DataFrame, readers: Sequence[str] | None = None,
                               models: Sequence[str] | None = None,
                               source: str = "reader study") -> tuple[list[str], list[str]]:
    """(reader columns, model columns): by default ``*_POM`` columns, models being those starting ``AI_``.

    ``readers``/``models`` may list column names or regular expressions matched against them.
    """
    columns = [str(c) for c in frame.columns]

    def pick(patterns: Sequence[str], what: str) -> list[str]:
        chosen = []
        for pattern in patterns:
            if pattern in columns:
                matched = [pattern]
            else:
                try:
                    matched = [c for c in columns if re.fullmatch(pattern, c)]
                except re.error as e:
                    raise EvaluationInputError(f"{what} pattern {pattern!r} is not a valid regular expression: "
                                               f"{e}") from None
            if not matched:
                raise EvaluationInputError(f"{source}: no column matches {what} {pattern!r}; columns: {columns}")
            chosen.extend(c for c in matched if c not in chosen)
        return chosen

    scored = [c for c in columns if c.endswith(SCORE_SUFFIX)]
    reader_columns = pick(readers, "reader") if readers else [c for c in scored if not c.startswith(MODEL_PREFIX)]
    model_columns = pick(models, "model") if models else [c for c in scored if c.startswith(MODEL_PREFIX)]
    if not reader_columns and not model_columns:
        raise EvaluationInputError(
            f"{source}: no reader or model columns found (expected '<reader>_POM' and 'AI_<model>_POM' columns, as in "
            f"the meta-repository's results.pkl); columns: {columns}")
    overlap = set(reader_columns) & set(model_columns)
    if overlap:
        raise EvaluationInputError(f"{source}: columns {sorted(overlap)} are both readers and models")
    return reader_columns, model_columns


def reader_study_labels(frame: pd.DataFrame, source: str = "reader study") -> np.ndarray:
    """The ``label`` column as 0/1 labels."""
    if "label" not in frame.columns:
        raise EvaluationInputError(f"{source}: no 'label' column (1 = malignant, 0 = not) - it is needed as the truth")
    return check_labels(pd.to_numeric(frame["label"], errors="coerce").to_numpy(), "column 'label'", source)


@dataclass
class ReaderStudyResult:
    """Per-predictor metrics of a reader study, the readers' mean and reader-model hybrids."""

    source: str
    n_cases: int
    n_positive: int
    readers: dict[str, dict[str, MetricEstimate]]
    models: dict[str, dict[str, MetricEstimate]]
    readers_mean: dict[str, MetricEstimate]
    hybrids: dict[str, dict[str, Any]]
    n_bootstrap: int
    seed: int | None
    confidence: float
    resample: str
    bootstrap: dict[str, int] | None
    y_true: np.ndarray
    reader_scores: dict[str, np.ndarray]
    model_scores: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from .. import __version__

        def table(d: dict[str, dict[str, MetricEstimate]]) -> dict[str, Any]:
            return {name: {m: v.to_dict() for m, v in metrics.items()} for name, metrics in d.items()}

        return {
            "tool": "mammoscreen reader-study", "version": __version__, "source": self.source,
            "n_cases": self.n_cases, "n_positive": self.n_positive, "n_negative": self.n_cases - self.n_positive,
            "bootstrap": {"replicates": self.n_bootstrap, "seed": self.seed, "confidence": self.confidence,
                          "resampling_unit": self.resample, "replicates_used": self.bootstrap},
            "readers": table(self.readers), "models": table(self.models),
            "readers_mean": {m: v.to_dict() for m, v in self.readers_mean.items()},
            "hybrids": {model: {"definition": h["definition"], "mean_auroc": h["mean_auroc"].to_dict(),
                                "per_reader_auroc": {r: v.to_dict() for r, v in h["per_reader_auroc"].items()}}
                        for model, h in self.hybrids.items()},
            "notes": self.notes,
        }


def evaluate_reader_study(study: str | os.PathLike | pd.DataFrame, *, readers: Sequence[str] | None = None,
                          models: Sequence[str] | None = None, hybrid_models: Sequence[str] | None = None,
                          n_bootstrap: int = DEFAULT_REPLICATES, seed: int | None = 0, confidence: float = 0.95,
                          resample: str = "case") -> ReaderStudyResult:
    """Evaluate every reader and model of a reader study, their mean, and reader-model hybrids.

    Parameters
    ----------
    study : path of a ``results.pkl``-layout table (.pkl, read without running code, or .csv), or a DataFrame.
    readers, models : reader/model columns or regexes (default: ``*_POM`` columns; ``AI_*`` are models).
    hybrid_models : models to form hybrids with (default: all models; [] for none).
    n_bootstrap : replicates (0: no CIs).
    seed : bootstrap seed.
    confidence : CI coverage.
    resample : 'case' (whole exams, by ``case_ID``) or 'row' (each row independently).
    """
    confidence = check_fraction(confidence, "confidence")
    if isinstance(study, pd.DataFrame):
        frame, source = study, "reader study"
    else:
        frame, source = read_reader_study(study), str(study)
    reader_columns, model_columns = split_reader_study_columns(frame, readers, models, source)
    y = reader_study_labels(frame, source)
    if y.sum() in (0, y.size):
        raise EvaluationInputError(f"{source}: all cases have the same label; AUROC needs both classes")

    def scores_of(column: str) -> np.ndarray:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        return check_scores(values, y.size, f"column {column!r}", source)

    reader_scores = {display_name(c): scores_of(c) for c in reader_columns}
    model_scores = {display_name(c): scores_of(c) for c in model_columns}
    if hybrid_models is None:
        hybrid_names = list(model_scores)
    else:
        hybrid_names = []
        for name in hybrid_models:
            key = display_name(name)
            if key not in model_scores:
                raise EvaluationInputError(f"{source}: no model {name!r} for hybrids; models: {list(model_scores)}")
            hybrid_names.append(key)
    if hybrid_names and not reader_scores:
        hybrid_names = []

    if resample == "case":
        if "case_ID" not in frame.columns:
            raise EvaluationInputError(f"{source}: no 'case_ID' column to resample exams by; resample single rows "
                                       "instead: --resample row (in Python: resample='row')")
        ids = frame["case_ID"]
        empty = np.flatnonzero((ids.isna() | (ids.astype(str).str.strip() == "")).to_numpy())
        if empty.size:
            shown = ", ".join(str(i + 1) for i in empty[:5])
            if empty.size > 5:
                shown += f", ... ({empty.size} in all)"
            raise EvaluationInputError(f"{source}: 'case_ID' is empty in data row(s) {shown}; every row needs the "
                                       "case_ID of its exam (or resample single rows: --resample row)")
        groups = np.array([str(v) for v in ids], dtype=object)
    elif resample == "row":
        groups = None
    else:
        raise EvaluationInputError(f"resample must be 'case' or 'row', got {resample!r}")

    names_r, names_m = list(reader_scores), list(model_scores)
    predictor_matrix = np.vstack([reader_scores[n] for n in names_r] + [model_scores[n] for n in names_m])
    point = [ranking_metrics(y, row) for row in predictor_matrix]
    estimates = [{m: MetricEstimate(p[m]) for m in RANKING_METRICS} for p in point]
    readers_out = dict(zip(names_r, estimates[:len(names_r)]))
    models_out = dict(zip(names_m, estimates[len(names_r):]))
    readers_mean = ({m: MetricEstimate(float(np.mean([readers_out[r][m].value for r in names_r])))
                     for m in RANKING_METRICS} if names_r else {})

    hybrid_rows = []
    for model in hybrid_names:
        for reader in names_r:
            hybrid_rows.append((reader_scores[reader] + model_scores[model]) / 2)
    hybrid_matrix = np.vstack(hybrid_rows) if hybrid_rows else None
    hybrid_auc = [ranking_metrics(y, row)["auroc"] for row in hybrid_rows]
    hybrids: dict[str, dict[str, Any]] = {}
    for k, model in enumerate(hybrid_names):
        per = hybrid_auc[k * len(names_r):(k + 1) * len(names_r)]
        hybrids[model] = {"definition": f"(reader + {model}) / 2",
                          "mean_auroc": MetricEstimate(float(np.mean(per))),
                          "per_reader_auroc": {r: MetricEstimate(a) for r, a in zip(names_r, per)}}

    notes: list[str] = []
    bootstrap_summary = None
    n_units = y.size if groups is None else np.unique(groups).size
    if n_bootstrap and n_units < MIN_CASES_FOR_BOOTSTRAP:
        notes.append(f"no bootstrap: fewer than {MIN_CASES_FOR_BOOTSTRAP} cases")
    elif n_bootstrap:
        problems = [BootstrapProblem(y, predictor_matrix)]
        if hybrid_matrix is not None:
            problems.append(BootstrapProblem(y, hybrid_matrix, metrics=("auroc",)))
        results = run_bootstrap(problems, n_bootstrap, seed, groups, confidence)
        bootstrap_summary = results[0].summary()
        if results[0].n_used:
            for k, estimate in enumerate(estimates):
                for m in RANKING_METRICS:
                    estimate[m].ci_low, estimate[m].ci_high = percentile_interval(results[0].replicates[m][:, k],
                                                                                  confidence)
            for m in readers_mean:
                mean_replicates = results[0].replicates[m][:, :len(names_r)].mean(axis=1)
                readers_mean[m].ci_low, readers_mean[m].ci_high = percentile_interval(mean_replicates, confidence)
            if hybrid_matrix is not None:
                values = results[1].replicates["auroc"]
                for k, model in enumerate(hybrid_names):
                    block = values[:, k * len(names_r):(k + 1) * len(names_r)]
                    h = hybrids[model]
                    low, high = percentile_interval(block.mean(axis=1), confidence)
                    h["mean_auroc"].ci_low, h["mean_auroc"].ci_high = low, high
                    for j, reader in enumerate(names_r):
                        est = h["per_reader_auroc"][reader]
                        est.ci_low, est.ci_high = percentile_interval(block[:, j], confidence)
    return ReaderStudyResult(source, int(y.size), int(y.sum()), readers_out, models_out, readers_mean, hybrids,
                             int(n_bootstrap), seed, confidence, resample if groups is not None else "row",
                             bootstrap_summary, y, reader_scores, model_scores, notes)
