"""Subgroup analyses of prediction files and reader studies: the exam list's metadata meets the scores.

* :func:`evaluate_subgroups` - one model's prediction CSV, image and breast level (``evaluate --by``);
* :func:`compare_subgroups` - several models on the same cases, with paired DeLong tests per subgroup
  (``compare --by``);
* :func:`reader_study_subgroups` - a reader study, subgroups from the table's own columns, models put at
  the readers' mean specificity (``reader-study --by``).

Each returns a :class:`SubgroupEvaluation` (one :class:`~.subgroups.SubgroupAnalysis` per level);
:mod:`.reports` writes it (``subgroups.json``, ``subgroups.csv``, ``subgroups.txt``, the forest plot and
ROC curves per subgroup). An image's value of a key is its own, else its exam's; a breast's value is
its images' common value, else its exam's (``data/exam_metadata.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..data.exam_metadata import breast_value, image_value, metadata_keys
from ..data.exams import Exam
from ..core.files import sha256_file
from .bootstrap import DEFAULT_REPLICATES
from .io import read_predictions, resolve_exam_list
from .levels import LevelData, breast_level_data, image_level_data
from .subgroups import (
    DEFAULT_OPERATING_POINTS,
    MIN_POSITIVES_FOR_INTERVAL,
    Grouping,
    SubgroupAnalysis,
    analyse_subgroups,
    group_values,
    parse_bins,
)
from .validation import EvaluationInputError

__all__ = ["DEFAULT_SUBGROUP_KEYS", "DEFAULT_BINS", "SubgroupEvaluation", "split_keys", "bins_for_keys",
           "default_subgroup_keys", "level_values", "evaluate_subgroups", "compare_subgroups",
           "reader_study_subgroups"]

DEFAULT_SUBGROUP_KEYS = ("density", "age", "manufacturer", "site", "machine_id", "implant", "dataset")
"""Keys a run analyses by default when its exam list has them with at least two values. Keys describing
the finding itself (BI-RADS assessment, abnormality type, subtype) are left out: they split the positives
only, so their subgroups have no negatives and no AUROC; ask for them with ``--by``."""

DEFAULT_BINS = {"age": (50.0, 60.0, 70.0)}
"""Age bands used when none are given: < 50, [50, 60), [60, 70), >= 70 (screening ages)."""


def split_keys(by: str | Sequence[str] | None) -> list[str]:
    """'density,age' (or a list of such strings) -> ['density', 'age']."""
    if by is None:
        return []
    items = [by] if isinstance(by, str) else list(by)
    keys = [k.strip() for item in items for k in str(item).split(",") if k.strip()]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise EvaluationInputError(f"--by lists {', '.join(repeated)} more than once")
    return keys


def bins_for_keys(bins: Any, keys: Sequence[str]) -> dict[str, tuple[Any, bool]]:
    """Per key, (bins, given for this key by name) from: None, one spec for every numeric key ('50,60,70',
    'q4', a sequence; text keys stay categories), a mapping key -> spec, or command-line strings
    (['50,60,70'], ['age=50,60,70', 'bmi=q4']). Age without bins gets :data:`DEFAULT_BINS`."""
    per_key: dict[str, Any] = {}
    default: Any = None
    if isinstance(bins, (list, tuple)) and not bins:
        bins = None  # an option given no value
    if isinstance(bins, Mapping):
        per_key = dict(bins)
    elif isinstance(bins, (list, tuple)) and bins and all(isinstance(b, str) for b in bins):
        for item in bins:
            name, sep, spec = item.partition("=")
            if sep:
                per_key[name.strip()] = spec
            elif default is not None:
                raise EvaluationInputError(f"--bins given twice without a key ({default!r}, {item!r}); write "
                                           "--bins KEY=EDGES for each key")
            else:
                default = item
    else:
        default = bins
    unknown = sorted(set(per_key) - set(keys))
    if unknown:
        raise EvaluationInputError(f"--bins names {', '.join(unknown)}, which is not among the --by keys "
                                   f"({', '.join(keys) or 'none'})")
    out = {}
    for key in keys:
        spec = per_key.get(key, default)
        if spec is None:
            spec = DEFAULT_BINS.get(key)
        out[key] = (parse_bins(spec), key in per_key)
    return out


def default_subgroup_keys(exams: Sequence[Exam]) -> list[str]:
    """The keys of :data:`DEFAULT_SUBGROUP_KEYS` the exams have with at least two distinct values."""
    present = set(metadata_keys(exams))
    keys = []
    for key in DEFAULT_SUBGROUP_KEYS:
        if key not in present:
            continue
        values = {repr(image_value(e, n, key)) for e in exams for n in e.image_names()} - {"None"}
        if len(values) >= 2:
            keys.append(key)
    return keys


def level_values(data: LevelData, exams: Sequence[Exam], key: str) -> tuple[list[Any], list[str]]:
    """(value of ``key`` for each case of ``data``, breasts whose images disagree and whose exam has none).

    Image level: the image's value; breast level: the breast's (see :func:`~mammoscreen.data.exam_metadata.
    breast_value`).
    """
    if data.exam_of_case is None:
        raise EvaluationInputError("subgroups need the exam list (--exam-list) to read the cases' metadata")
    values, disagreements = [], []
    for name, exam_index in zip(data.case_names, data.exam_of_case.tolist()):
        exam = exams[exam_index]
        if data.level == "image":
            values.append(image_value(exam, name, key))
        else:
            side = name.rsplit(" ", 1)[-1]
            value, disagree = breast_value(exam, side, key)
            values.append(value)
            if disagree:
                disagreements.append(name)
    return values, disagreements


@dataclass
class SubgroupEvaluation:
    """Subgroup analyses of one command, per level."""

    command: str
    sources: dict[str, str]  # predictor -> file
    source_sha256: dict[str, str | None]
    exam_list: str | None
    exam_list_sha256: str | None
    keys: list[str]
    levels: dict[str, SubgroupAnalysis]
    warnings: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """Every level's tidy table, one after the other."""
        frames = [analysis.to_frame() for analysis in self.levels.values()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def to_dict(self) -> dict[str, Any]:
        return {"tool": f"mammoscreen {self.command} --by", "version": __version__,
                "sources": {name: {"path": path, "sha256": self.source_sha256.get(name)}
                            for name, path in self.sources.items()},
                "exam_list": {"path": self.exam_list, "sha256": self.exam_list_sha256} if self.exam_list else None,
                "keys": self.keys, "levels": {name: a.to_dict() for name, a in self.levels.items()},
                "warnings": self.warnings,
                "definitions": {
                    "difference": "subgroup minus whole set, on the same bootstrap replicates",
                    "p_value": "two-sided bootstrap p-value of no difference, (2 min(#d<=0, #d>=0) + 1) / (B + 1)",
                    "heterogeneity": "Wald chi-square of 'all subgroups equal' with the bootstrap covariance",
                    "operating_point": "threshold chosen on the whole set (again in every replicate) and applied to "
                                       "each subgroup",
                    "recall_rate": "share of exams (resampling units) with any case at or above the threshold",
                    "auprc_trapezoid": "the meta-repository's AUPRC (trapezoid under the precision-recall curve)"}}


def _sha(path: str | None) -> str | None:
    return sha256_file(path) if path is not None and Path(path).is_file() else None


def _groupings(data: LevelData, exams: Sequence[Exam], keys: Sequence[str], bins: Mapping[str, tuple[Any, bool]],
               warnings: list[str]) -> list[Grouping]:
    out = []
    for key in keys:
        values, disagreements = level_values(data, exams, key)
        if disagreements:
            warnings.append(f"{data.level} level, {key}: {len(disagreements)} breast(s) whose images disagree and "
                            f"whose exam has no value are counted as missing (e.g. {disagreements[0]})")
        spec, named = bins.get(key, (None, False))
        grouping = group_values(values, key, spec, numbers_only=not named)
        if grouping.note:
            warnings.append(f"{data.level} level, {key}: {grouping.note}")
        out.append(grouping)
    return out


def _check_keys(keys: Sequence[str], exams: Sequence[Exam] | None, source: str) -> None:
    if not keys:
        return
    if exams is None:
        raise EvaluationInputError("--by needs the exam list (--exam-list): the subgroups come from its metadata")
    present = metadata_keys(exams)
    absent = [k for k in keys if k not in present]
    if absent:
        raise EvaluationInputError(
            f"{source}: no exam has the metadata key(s) {', '.join(repr(k) for k in absent)}; keys present: "
            f"{', '.join(present) if present else 'none (the exam list has no metadata)'}")


def evaluate_subgroups(predictions: str | os.PathLike | pd.DataFrame,
                       exam_list: str | os.PathLike | Sequence[Exam] | None, by: str | Sequence[str] | None, *,
                       bins: Any = None, level: str = "both",
                       operating_points: Sequence[Any] = DEFAULT_OPERATING_POINTS,
                       n_bootstrap: int = DEFAULT_REPLICATES, seed: int | None = 0, confidence: float = 0.95,
                       resample: str = "exam", min_positives: int = MIN_POSITIVES_FOR_INTERVAL,
                       name: str | None = None) -> SubgroupEvaluation:
    """One model's metrics per subgroup of the exam list's metadata, at image and breast level.

    Parameters
    ----------
    predictions : prediction CSV (or DataFrame) in the meta-repository's formats.
    exam_list : the exam list the predictions follow (with ``metadata``).
    by : metadata keys, e.g. 'density,age' or ['density', 'age']; empty: the whole set only (operating
        points with CIs).
    bins : numeric keys' bins (see :func:`bins_for_keys`); age defaults to < 50, [50, 60), [60, 70), >= 70.
    level : 'image', 'breast' or 'both' (as far as the file and exam list allow).
    operating_points : rules for the thresholds ('specificity=0.9', 'recall_rate=0.1' ...).
    n_bootstrap, seed, confidence : the bootstrap (each level draws from a fresh ``RandomState(seed)``).
    resample : 'exam' (whole exams, the default: an exam's images or breasts are not independent) or 'case'.
    min_positives : fewer positives (negatives) in a subgroup: no interval for the metrics needing them.
    name : the model's name in the tables (default: the file name).
    """
    if level not in ("image", "breast", "both"):
        raise EvaluationInputError(f"level must be 'image', 'breast' or 'both', got {level!r}")
    if resample not in ("exam", "case"):
        raise EvaluationInputError(f"resample must be 'exam' or 'case', got {resample!r}")
    keys = split_keys(by)
    table = read_predictions(predictions)
    exams, exam_path = resolve_exam_list(exam_list)
    _check_keys(keys, exams, exam_path or "exam list")
    per_key_bins = bins_for_keys(bins, keys)
    warnings: list[str] = list(table.warnings)
    wanted = ("image", "breast") if level == "both" else (level,)
    data: dict[str, LevelData] = {}
    if "image" in wanted and table.level == "image":
        data["image"] = image_level_data(table, exams, exam_path or "exam list")
    if "breast" in wanted and exams is not None:
        data["breast"] = breast_level_data(table, exams, exam_path or "exam list")
    if not data:
        raise EvaluationInputError(f"{table.source}: no level to evaluate at level {level!r} (breast level needs the "
                                   "exam list; a breast-level file has no image level)")
    source = None if isinstance(predictions, pd.DataFrame) else str(predictions)
    model = name or (Path(source).stem if source else "model")
    levels = {}
    for level_name, level_data in data.items():
        groupings = _groupings(level_data, exams, keys, per_key_bins, warnings) if keys else []
        clusters = level_data.exam_of_case if resample == "exam" else None
        analysis = analyse_subgroups(level_data.y_true, {model: level_data.y_score}, groupings, clusters=clusters,
                                     operating_points=operating_points, n_bootstrap=n_bootstrap, random_state=seed,
                                     confidence=confidence, min_positives=min_positives, level=level_name)
        warnings += analysis.warnings
        levels[level_name] = analysis
    return SubgroupEvaluation("evaluate", {model: source or table.source}, {model: _sha(source)}, exam_path,
                              _sha(exam_path), keys, levels, warnings)


def compare_subgroups(predictions: Sequence[str | os.PathLike], names: Sequence[str] | None,
                      exam_list: str | os.PathLike | Sequence[Exam] | None, by: str | Sequence[str] | None, *,
                      bins: Any = None, level: str | None = None,
                      operating_points: Sequence[Any] = DEFAULT_OPERATING_POINTS, n_bootstrap: int = DEFAULT_REPLICATES,
                      seed: int | None = 0, confidence: float = 0.95, resample: str = "exam",
                      min_positives: int = MIN_POSITIVES_FOR_INTERVAL) -> SubgroupEvaluation:
    """Several models per subgroup on the same cases and replicates, with a paired DeLong test of every
    pair of models within each subgroup.

    Parameters are those of :func:`evaluate_subgroups`; ``names`` as in
    :func:`~mammoscreen.evaluate.compare.compare_models`; ``level`` 'image' or 'breast' (default: breast with
    an exam list).
    """
    from .compare import _align, _default_name

    predictions = list(predictions)
    if not predictions:
        raise EvaluationInputError("compare needs at least one prediction file")
    if names is None:
        names = [_default_name(p, i) for i, p in enumerate(predictions)]
        if len(set(names)) < len(names):
            names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    names = list(names)
    if len(names) != len(predictions) or len(set(names)) < len(names):
        raise EvaluationInputError(f"give one unique name per prediction file, got {names}")
    keys = split_keys(by)
    exams, exam_path = resolve_exam_list(exam_list)
    _check_keys(keys, exams, exam_path or "exam list")
    per_key_bins = bins_for_keys(bins, keys)
    tables = [read_predictions(p) for p in predictions]
    level = level or ("breast" if exams is not None or any(t.level == "breast" for t in tables) else "image")
    if level not in ("image", "breast"):
        raise EvaluationInputError(f"level must be 'image' or 'breast', got {level!r}")
    load = image_level_data if level == "image" else breast_level_data
    data = [load(t, exams, exam_path or "exam list") for t in tables]
    scores = {names[0]: data[0].y_score}
    for k in range(1, len(data)):
        scores[names[k]] = _align(data[0], data[k], names[k], names[0])
    warnings = [w for t in tables for w in t.warnings]
    groupings = _groupings(data[0], exams, keys, per_key_bins, warnings) if keys else []
    clusters = data[0].exam_of_case if resample == "exam" else None
    analysis = analyse_subgroups(data[0].y_true, scores, groupings, clusters=clusters,
                                 operating_points=operating_points, n_bootstrap=n_bootstrap, random_state=seed,
                                 confidence=confidence, min_positives=min_positives, level=level)
    warnings += analysis.warnings
    return SubgroupEvaluation("compare", {n: str(p) for n, p in zip(names, predictions)},
                              {n: _sha(str(p)) for n, p in zip(names, predictions)}, exam_path, _sha(exam_path), keys,
                              {level: analysis}, warnings)


def reader_study_subgroups(study: str | os.PathLike | pd.DataFrame, by: str | Sequence[str] | None, *,
                           readers: Sequence[str] | None = None, models: Sequence[str] | None = None,
                           bins: Any = None, operating_points: Sequence[Any] = ("readers",),
                           reader_threshold: float = 0.0, n_bootstrap: int = DEFAULT_REPLICATES, seed: int | None = 0,
                           confidence: float = 0.95, resample: str = "case",
                           min_positives: int = MIN_POSITIVES_FOR_INTERVAL) -> SubgroupEvaluation:
    """A reader study per subgroup: subgroups from the table's columns (e.g. a ``density`` column).

    Each reader is evaluated at their own decision (probability above ``reader_threshold``: 0 means any
    suspicion), the readers' mean is added, and each model is put at the readers' mean specificity (the
    operating point 'readers', chosen on the whole set) - with CIs, overall and per subgroup.

    Parameters
    ----------
    study : reader-study table (the meta-repository's ``results.pkl`` layout; CSV or a trusted pickle).
    by : columns of the table to form subgroups from (none: the whole set only).
    readers, models : reader / model columns or regexes (default: ``*_POM``; ``AI_*`` are models).
    bins : numeric columns' bins (as :func:`bins_for_keys`).
    operating_points : model thresholds (default: the readers' mean specificity).
    reader_threshold : a reader calls a breast positive when their probability is above it.
    resample : 'case' (whole exams by ``case_ID``, the default) or 'row'.
    """
    from .io import read_reader_study
    from .readers import display_name, reader_study_labels, split_reader_study_columns

    if isinstance(study, pd.DataFrame):
        frame, source = study, "reader study"
    else:
        frame, source = read_reader_study(study), str(study)
    keys = split_keys(by)
    absent = [k for k in keys if k not in frame.columns]
    if absent:
        raise EvaluationInputError(f"{source}: no column {', '.join(repr(k) for k in absent)} to form subgroups from; "
                                   f"columns: {', '.join(map(str, frame.columns))}")
    per_key_bins = bins_for_keys(bins, keys)
    reader_columns, model_columns = split_reader_study_columns(frame, readers, models, source)
    y = reader_study_labels(frame, source)

    def numbers(column: str) -> np.ndarray:
        return pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)

    reader_scores = {display_name(c): numbers(c) for c in reader_columns}
    model_scores = {display_name(c): numbers(c) for c in model_columns}
    if not model_scores:
        raise EvaluationInputError(f"{source}: no model columns (AI_*_POM) to put at the readers' operating point")
    if resample == "case":
        if "case_ID" not in frame.columns:
            raise EvaluationInputError(f"{source}: no 'case_ID' column to resample exams by; use resample='row'")
        clusters = frame["case_ID"].astype(str).to_numpy()
    elif resample == "row":
        clusters = None
    else:
        raise EvaluationInputError(f"resample must be 'case' or 'row', got {resample!r}")
    warnings: list[str] = []
    groupings = []
    for key in keys:
        values = [None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in frame[key].tolist()]
        spec, named = per_key_bins[key]
        grouping = group_values(values, key, spec, numbers_only=not named)
        if grouping.note:
            warnings.append(f"{key}: {grouping.note}")
        groupings.append(grouping)
    analysis = analyse_subgroups(y, model_scores, groupings, clusters=clusters, operating_points=operating_points,
                                 n_bootstrap=n_bootstrap, random_state=seed, confidence=confidence,
                                 min_positives=min_positives, readers=reader_scores or None,
                                 reader_threshold=reader_threshold, level="breast", paired_tests=False)
    analysis.resample = "exam" if clusters is not None else "row"  # exams by case_ID
    warnings += analysis.warnings
    names = list(model_scores) + list(reader_scores)
    sha = None if isinstance(study, pd.DataFrame) else _sha(str(study))
    return SubgroupEvaluation("reader-study", {n: source for n in names}, {n: sha for n in names}, None, None, keys,
                              {"breast": analysis}, warnings)
