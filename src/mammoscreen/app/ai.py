"""The AI arm: per-breast malignancy scores and saliency overlays from a ``mammoscreen run`` output directory.

A run writes ``<run>/<model>/predictions.csv`` (image or breast level) and, with ``--save-maps``,
``<run>/<model>/maps/<image>.npz`` (GMIC and GLAM layouts). A breast's score is computed as the evaluation
does (:func:`mammoscreen.evaluate.io.breast_level_data`: the mean over the breast's views, the
meta-repository's rule); a saliency map is taken back to the original image frame with the same inverse
mapping as the localisation metrics (:mod:`mammoscreen.explain.localize`), malignant channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.exams import Exam
from ..evaluate.validation import EvaluationInputError
from .errors import StudyError

PREDICTIONS = "predictions.csv"
MAPS_DIR = "maps"
MALIGNANT = 1  # channel of the malignant class in the maps files


@dataclass
class AIRun:
    model: str
    directory: Path
    scores: dict[int, dict[str, float]]  # exam index -> {'left': p, 'right': p}
    maps_dir: Path | None
    notes: list[str] = field(default_factory=list)


def find_model(run_dir: Path, model: str | None) -> Path:
    """The model directory of a run: ``model`` if given, else the run's only model."""
    if not run_dir.is_dir():
        raise StudyError(f"--ai-run {run_dir}: not a directory (give the output directory of 'mammoscreen run')")
    if model is not None:
        if not model or "/" in model or "\\" in model or model.startswith("."):
            raise StudyError(f"--ai-model {model!r} is not a model name")
        path = run_dir / model
        if not (path / PREDICTIONS).is_file():
            raise StudyError(f"--ai-run {run_dir}: no {model}/{PREDICTIONS}; models in this run: "
                             f"{', '.join(_models(run_dir)) or 'none'}")
        return path
    models = _models(run_dir)
    if len(models) != 1:
        raise StudyError(f"--ai-run {run_dir}: " + (f"several models ({', '.join(models)}); choose one with --ai-model"
                                                    if models else f"no <model>/{PREDICTIONS}; run 'mammoscreen run' "
                                                    "on the study's exam list first"))
    return run_dir / models[0]


def _models(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.is_dir() and (p / PREDICTIONS).is_file())


def load_ai_run(run_dir: str | Path, exams: Sequence[Exam], model: str | None = None) -> AIRun:
    """Per-breast scores of every exam of ``exams`` from a run of the same exam list."""
    from ..evaluate.io import read_predictions
    from ..evaluate.levels import breast_level_data

    model_dir = find_model(Path(run_dir), model)
    try:
        table = read_predictions(model_dir / PREDICTIONS)
        data = breast_level_data(table, list(exams), "the study's exam list")
    except EvaluationInputError as e:
        raise StudyError(f"--ai-run: {e}") from None
    scores: dict[int, dict[str, float]] = {}
    for name, exam_index, score in zip(data.case_names, data.exam_of_case, data.y_score):
        side = name.rsplit(" ", 1)[-1]
        scores.setdefault(int(exam_index), {})[side] = float(score)
    if not np.all((data.y_score >= 0) & (data.y_score <= 1)):
        raise StudyError(f"{model_dir / PREDICTIONS}: malignancy scores outside 0-1; the reader app shows "
                         "probabilities of malignancy")
    maps_dir = model_dir / MAPS_DIR
    notes = list(table.warnings)
    if not maps_dir.is_dir():
        notes.append(f"{model_dir.name}: no saliency maps ({maps_dir} is missing; run with --save-maps to show them)")
        maps_dir = None
    return AIRun(model_dir.name, model_dir, scores, maps_dir, notes)


def overlay_for_image(ai: AIRun, image_name: str, rows: int, cols: int) -> np.ndarray | None:
    """The malignant saliency map of one image in its original frame (NaN outside the model's window).

    None when the run has no map for this image. Raises ValueError for a map that does not fit the image.
    """
    from ..explain.localize.geometry import map_to_window, window_to_original
    from ..explain.localize.map_files import read_map_file

    if ai.maps_dir is None:
        return None
    path = ai.maps_dir / f"{image_name}.npz"
    if not path.is_file():
        return None
    saliency, placement = read_map_file(path)
    return window_to_original(map_to_window(saliency[MALIGNANT], placement), placement, (rows, cols))
