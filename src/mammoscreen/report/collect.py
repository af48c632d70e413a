"""Reading a ``mammoscreen run`` output directory into what the report shows.

Only ``run_summary.json`` is required; every other piece (evaluation, comparison, figures, localisation,
labels, the input warnings and failures) is optional and its absence is recorded as a short note for the
report instead of an error.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..core.files import sha256_file
from ..core.paths import name_problem
from ..core.safejson import JSONInputError, load_json
from ..core.stages import FAILURES_CSV, WARNINGS_CSV, Failure, InputWarning, read_failures_csv, read_warnings_csv

RUN_SUMMARY = "run_summary.json"  # as pipeline.RUN_SUMMARY; not imported, so the report needs no torch
EVALUATION_DIR = "evaluation"
COMPARISON_DIR = "comparison"
VISUALIZATION_DIR = "visualization"
LOCALIZATION_DIR = "localization"
SUBGROUPS_JSON = "subgroups.json"  # as evaluate.subgroup_files.SUBGROUPS_JSON
CROPPED_EXAM_LIST = Path("cropped_images") / "cropped_exam_list.pkl"


class ReportInputError(ValueError):
    """A run directory (or one of its files) the report cannot be built from."""


@dataclass
class WeightRecord:
    path: str
    sha256: str | None
    source: str  # 'recorded by the run' or 'computed when the report was built'


@dataclass
class LevelScores:
    """Labels and scores of one level, for calibration."""

    y_true: np.ndarray
    y_score: np.ndarray


@dataclass
class ModelRun:
    """One model of the run and every result the report can show for it."""

    name: str
    entry: dict[str, Any]  # the model's record in run_summary.json
    directory: Path
    spec: Any = None  # ModelSpec, None when the model is not in the registry
    weights: list[WeightRecord] = field(default_factory=list)
    metrics: dict[str, Any] | None = None  # evaluation/metrics.json
    evaluation_dir: Path | None = None
    predictions: pd.DataFrame | None = None
    scores_by_level: dict[str, LevelScores] = field(default_factory=dict)
    localization: dict[str, Any] | None = None
    localization_per_image: pd.DataFrame | None = None
    subgroups: dict[str, Any] | None = None  # evaluation/subgroups.json
    figures: dict[str, Path] = field(default_factory=dict)  # image name -> visualization PNG
    notes: dict[str, str] = field(default_factory=dict)  # section -> why something is missing

    @property
    def done(self) -> bool:
        return self.entry.get("status") == "done"


@dataclass
class RunContents:
    run_dir: Path
    summary: dict[str, Any]
    run: dict[str, Any]  # summary['run'] (empty for runs written before it was recorded)
    models: list[ModelRun]
    comparison: dict[str, Any] | None
    comparison_dir: Path | None
    exam_list: Path | None  # the exam list the predictions follow (labels)
    metadata_keys: list[str] = field(default_factory=list)  # of the exam list (the Subgroups section)
    comparison_subgroups: dict[str, Any] | None = None  # comparison/subgroups.json
    notes: dict[str, str] = field(default_factory=dict)  # e.g. 'comparison subgroups' -> why they are not shown
    warnings: list[InputWarning] = field(default_factory=list)  # warnings.csv: implausible inputs
    failures: list[Failure] = field(default_factory=list)  # failures.csv: every stage's failures


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = load_json(path)
    except JSONInputError as error:
        raise ReportInputError(f"{error}; re-create it with the command that wrote it") from None
    if not isinstance(value, dict):
        raise ReportInputError(f"{path} should hold a JSON object, found {type(value).__name__}")
    return value


def _read_summary(run_dir: Path) -> dict[str, Any]:
    if not run_dir.is_dir():
        raise ReportInputError(f"run directory {run_dir} does not exist; pass the --output-dir of "
                               "'mammoscreen run'")
    path = run_dir / RUN_SUMMARY
    if not path.is_file():
        raise ReportInputError(f"{path} not found: {run_dir} is not the output directory of a finished "
                               "'mammoscreen run' (run it first, or pass its --output-dir)")
    summary = read_json(path)
    if not isinstance(summary.get("models"), list):
        raise ReportInputError(f"{path} has no 'models' list; it was not written by 'mammoscreen run'")
    return summary


def _weights(entry: dict[str, Any]) -> list[WeightRecord]:
    recorded = (entry.get("provenance") or {}).get("weights")
    if isinstance(recorded, list) and recorded:
        return [WeightRecord(str(w.get("path")), w.get("sha256"), "recorded by the run") for w in recorded
                if isinstance(w, dict)]
    # Runs without the predictor's record: hash the requested file if it is one.
    requested = entry.get("weights")
    if requested and Path(requested).is_file():
        return [WeightRecord(str(requested), sha256_file(requested), "computed when the report was built")]
    return []


def _model_spec(name: str):
    try:
        from ..models.registry import get_model_spec

        return get_model_spec(name)
    except (KeyError, ImportError):
        return None


def _read_csv(path: Path, command: str) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ReportInputError(f"{path} cannot be read as CSV ({error}); re-run '{command}' to "
                               "rewrite it") from None


def _read_localization(model: ModelRun) -> None:
    directory = model.directory / LOCALIZATION_DIR
    path = directory / "localization.json"
    if not path.is_file():
        model.notes["localization"] = "no localisation results (run 'mammoscreen localize' into " \
                                      f"{model.name}/{LOCALIZATION_DIR}/)"
        return
    data = read_json(path)
    classes = data.get("classes")
    if not isinstance(classes, dict) or not all(isinstance(v, dict) for v in classes.values()):
        raise ReportInputError(f"{path} has no 'classes' object of per-class results; it was not written by "
                               "'mammoscreen localize' (re-run it)")
    model.localization = data
    model.localization_per_image = _read_csv(directory / "localization_per_image.csv", "mammoscreen localize")


def _read_subgroups(directory: Path, predictions: dict[str, Path], notes: dict[str, str]) -> dict[str, Any] | None:
    """subgroups.json of an evaluation directory, unless it was made from other predictions than the run's."""
    path = directory / SUBGROUPS_JSON
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data.get("levels"), dict):
        raise ReportInputError(f"{path} has no 'levels' object; it was not written by 'mammoscreen evaluate --by' "
                               "(re-run it)")
    for name, source in (data.get("sources") or {}).items():
        recorded = (source or {}).get("sha256") if isinstance(source, dict) else None
        current = predictions.get(name)
        if recorded and current is not None and current.is_file() and sha256_file(current) != recorded:
            notes["subgroups"] = (f"{path} was made from other predictions than {current} (the file changed since); "
                                  "re-run 'mammoscreen evaluate --by ...' to bring it up to date")
            return None
    return data


def _metadata_keys(exam_list: Path | None) -> list[str]:
    if exam_list is None or not exam_list.is_file():
        return []
    from ..data.exam_metadata import metadata_keys
    from ..data.exams import ExamListError, load_exam_list

    try:
        return metadata_keys(load_exam_list(exam_list))
    except (ExamListError, OSError):
        return []  # the calibration section reports an unreadable exam list


def _level_scores(model: ModelRun, exam_list: Path | None) -> None:
    """Labels and scores per level, as the evaluation computed them (for the calibration section)."""
    csv_path = model.directory / "predictions.csv"
    if model.predictions is None:
        model.notes["calibration"] = "no predictions file"
        return
    if exam_list is None or not exam_list.is_file():
        model.notes["calibration"] = "the exam list with the labels was not found"
        return
    from ..evaluate import evaluate_predictions

    try:
        evaluation = evaluate_predictions(csv_path, exam_list, n_bootstrap=0)
    except (ValueError, OSError) as error:  # e.g. no labels, one class only, unreadable exam list
        model.notes["calibration"] = f"labels and scores cannot be paired: {error}"
        return
    model.scores_by_level = {name: LevelScores(np.asarray(level.data.y_true), np.asarray(level.data.y_score))
                             for name, level in evaluation.levels.items()}


def _exam_list(run_dir: Path, run: dict[str, Any], models: list[ModelRun]) -> Path | None:
    for model in models:  # the list the evaluation used
        recorded = ((model.metrics or {}).get("exam_list") or {}).get("path")
        if recorded and Path(recorded).is_file():
            return Path(recorded)
    if (run_dir / CROPPED_EXAM_LIST).is_file():
        return run_dir / CROPPED_EXAM_LIST
    recorded = run.get("exam_list")
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def collect_run(run_dir: str | Path) -> RunContents:
    """Everything the report shows about the run in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir).resolve()  # the report shows absolute paths: it may be read elsewhere
    summary = _read_summary(run_dir)
    run = summary.get("run") if isinstance(summary.get("run"), dict) else {}
    models = []
    for entry in summary["models"]:
        if not isinstance(entry, dict) or "model" not in entry:
            raise ReportInputError(f"{run_dir / RUN_SUMMARY}: a 'models' entry has no 'model' name")
        name = str(entry["model"])
        if name_problem(name) is not None:  # the summary names a directory of the run: a name, never a path
            raise ReportInputError(f"{run_dir / RUN_SUMMARY}: model name {name!r} is not a plain name "
                                   f"({name_problem(name)})")
        model = ModelRun(name, entry, run_dir / name, spec=_model_spec(name), weights=_weights(entry))
        if model.done:
            model.predictions = _read_csv(model.directory / "predictions.csv", "mammoscreen run")
            metrics_path = model.directory / EVALUATION_DIR / "metrics.json"
            if metrics_path.is_file():
                model.metrics = read_json(metrics_path)
                model.evaluation_dir = metrics_path.parent
            else:
                model.notes["metrics"] = "not evaluated (no labels, or the run used --no-evaluate)"
            figures_dir = model.directory / VISUALIZATION_DIR
            model.figures = {p.stem: p for p in sorted(figures_dir.glob("*.png"))} if figures_dir.is_dir() else {}
            if not model.figures:
                model.notes["gallery"] = "no figures (run with --visualize to draw them)"
            _read_localization(model)
        models.append(model)
    exam_list = _exam_list(run_dir, run, models)
    for model in models:
        if model.done:
            _level_scores(model, exam_list)
            if model.evaluation_dir is not None:
                model.subgroups = _read_subgroups(model.evaluation_dir,
                                                  {model.name: model.directory / "predictions.csv"}, model.notes)
    comparison_path = run_dir / COMPARISON_DIR / "comparison.json"
    comparison = read_json(comparison_path) if comparison_path.is_file() else None
    comparison_notes: dict[str, str] = {}
    comparison_subgroups = _read_subgroups(run_dir / COMPARISON_DIR, {m.name: m.directory / "predictions.csv"
                                                                      for m in models}, comparison_notes)
    try:
        warnings, failures = read_warnings_csv(run_dir / WARNINGS_CSV), read_failures_csv(run_dir / FAILURES_CSV)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ReportInputError(f"{run_dir / WARNINGS_CSV} or {FAILURES_CSV} cannot be read ({error}); re-run "
                               "'mammoscreen run' to rewrite them") from None
    return RunContents(run_dir, summary, run, models, comparison,
                       comparison_path.parent if comparison else None, exam_list, _metadata_keys(exam_list),
                       comparison_subgroups, {f"comparison {k}": v for k, v in comparison_notes.items()},
                       warnings, failures)
