"""From a prediction table to the cases one level is evaluated on: images, or breasts aggregated from views.

At breast level each row of a breast-level prediction CSV gives the left and right breast of exam i (or of
exam ``exam_index``); the labels come from the exam list's ``cancer_label``. Breast cases are ordered all
left breasts (exam order), then all right breasts, as the meta-repository's ``score.py`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.exams import VIEWS, Exam
from .io import IMAGE_COLUMNS, PredictionTable, _line_numbers
from .validation import EvaluationInputError

__all__ = ["LevelData", "image_level_data", "breast_level_data", "BREAST_VIEWS"]

# Per breast, the views in the order score.py adds them up (left: L-CC then L-MLO).
BREAST_VIEWS = {"left": ("L-CC", "L-MLO"), "right": ("R-CC", "R-MLO")}


@dataclass
class LevelData:
    """Labels and scores of one level (image or breast), ready for the metric functions.

    ``case_names`` name each case ('0_L-CC', 'exam 3 left'); ``exam_of_case`` is the exam index
    (None when no exam list was given), usable as bootstrap groups.
    """

    level: str
    y_true: np.ndarray
    y_score: np.ndarray
    case_names: list[str]
    benign_true: np.ndarray | None = None
    benign_score: np.ndarray | None = None
    exam_of_case: np.ndarray | None = None



def image_level_data(table: PredictionTable, exams: Sequence[Exam] | None = None,
                     exam_source: str = "exam list") -> LevelData:
    """Image-level labels and scores in CSV order; checks the names against ``exams`` when given."""
    if table.level != "image":
        raise EvaluationInputError(
            f"{table.source}: is a breast-level file (it has 'left_malignant'); image-level metrics need a file with "
            f"'{','.join(IMAGE_COLUMNS)}'")
    exam_of_case = None
    if exams is not None:
        exam_of_image = {name: i for i, exam in enumerate(exams) for view in VIEWS
                         for name in exam.images.get(view, [])}
        absent = [name for name in table.image_names if name not in exam_of_image]
        if absent:
            where = "the exam list" if exam_source == "exam list" else f"the exam list {exam_source}"
            raise EvaluationInputError(
                f"{table.source}: {len(absent)} image(s) are not in {where}, e.g. {absent[:5]}; "
                "use the exam list the predictions were made from (after cropping, the cropped exam list)")
        exam_of_case = np.array([exam_of_image[name] for name in table.image_names])
    data = LevelData("image", table.columns["malignant_label"], table.columns["malignant_pred"],
                     list(table.image_names), exam_of_case=exam_of_case)
    if table.has_benign:
        data.benign_true = table.columns["benign_label"]
        data.benign_score = table.columns["benign_pred"]
    return data


def _breast_label(exam: Exam, index: int, key: str, exam_source: str) -> int:
    labels = exam.cancer_label
    if labels is None or labels.get(key) is None:
        raise EvaluationInputError(
            f"{exam_source}: exam {index} has no {key!r} in 'cancer_label'; breast-level evaluation needs "
            "left_malignant and right_malignant (0 or 1) for every exam")
    return int(labels[key])


def breast_level_data(table: PredictionTable, exams: Sequence[Exam] | None,
                      exam_source: str = "exam list") -> LevelData:
    """Breast-level labels and scores: all left breasts (exam order), then all right breasts.

    From a breast-level file, the scores are its columns and every exam contributes both breasts.
    From an image-level file, a breast's score is the mean over its views (L-CC, L-MLO or R-CC,
    R-MLO) of the view's prediction, views without images being skipped and breasts without any
    view left out - the meta-repository's rule. A view's prediction is that of its image that comes
    first in the CSV (score.py's choice when a view has several images).
    """
    if exams is None:
        raise EvaluationInputError(
            f"{table.source}: breast-level metrics need the exam list (--exam-list) for the labels"
            + (" and to group images into breasts" if table.level == "image" else ""))
    labels: dict[str, list[int]] = {"left": [], "right": []}
    scores: dict[str, list[float]] = {"left": [], "right": []}
    benign_labels: dict[str, list[int]] = {"left": [], "right": []}
    benign_scores: dict[str, list[float]] = {"left": [], "right": []}
    exam_index: dict[str, list[int]] = {"left": [], "right": []}
    warnings: list[str] = []
    has_benign = table.has_benign
    benign_label_missing = False

    if table.level == "breast" and table.exam_indices is not None:
        beyond = np.flatnonzero(table.exam_indices >= len(exams))
        if beyond.size:
            raise EvaluationInputError(
                f"{table.source}: exam_index {table.exam_indices[beyond[0]]} (CSV line {_line_numbers(beyond)}) but "
                f"the exam list {exam_source} has {len(exams)} exams; use the exam list the predictions were made from")
        for side in ("left", "right"):
            scores[side] = table.columns[f"{side}_malignant"].tolist()
            if has_benign:
                benign_scores[side] = table.columns[f"{side}_benign"].tolist()
            for i in table.exam_indices.tolist():
                labels[side].append(_breast_label(exams[i], i, f"{side}_malignant", exam_source))
                exam_index[side].append(i)
                if has_benign:
                    value = (exams[i].cancer_label or {}).get(f"{side}_benign")
                    benign_label_missing |= value is None
                    benign_labels[side].append(-1 if value is None else int(value))
    elif table.level == "breast":
        if table.n_rows != len(exams):
            raise EvaluationInputError(
                f"{table.source}: has {table.n_rows} rows but the exam list {exam_source} has {len(exams)} exams; a "
                "breast-level file needs one row per exam, in exam-list order")
        for side in ("left", "right"):
            scores[side] = table.columns[f"{side}_malignant"].tolist()
            if has_benign:
                benign_scores[side] = table.columns[f"{side}_benign"].tolist()
            for i, exam in enumerate(exams):
                labels[side].append(_breast_label(exam, i, f"{side}_malignant", exam_source))
                exam_index[side].append(i)
                if has_benign:
                    value = (exam.cancer_label or {}).get(f"{side}_benign")
                    benign_label_missing |= value is None
                    benign_labels[side].append(-1 if value is None else int(value))
    else:
        row_of = {name: row for row, name in enumerate(table.image_names)}
        used_rows: set[int] = set()
        malignant = table.columns["malignant_pred"]
        benign = table.columns.get("benign_pred")
        for i, exam in enumerate(exams):
            for side, views in BREAST_VIEWS.items():
                view_rows = []
                for view in views:
                    names = exam.images.get(view, [])
                    if not names:
                        continue
                    rows = [row_of[n] for n in names if n in row_of]
                    if not rows:
                        raise EvaluationInputError(
                            f"{table.source}: no prediction for exam {i} view {view} (image(s) {names} of the exam "
                            f"list {exam_source} are not in the file); predict those images, or evaluate with the "
                            "exam list the predictions were made from")
                    if len(rows) < len(names):
                        warnings.append(f"exam {i} view {view}: {len(names) - len(rows)} of its {len(names)} images "
                                        "have no prediction; the view uses the others")
                    used_rows.update(rows)
                    view_rows.append(min(rows))
                if not view_rows:
                    continue
                # Add the views up in order, then divide: the same floating-point result as score.py.
                total = 0.0
                for row in view_rows:
                    total += malignant[row]
                scores[side].append(total / len(view_rows))
                labels[side].append(_breast_label(exam, i, f"{side}_malignant", exam_source))
                exam_index[side].append(i)
                if has_benign:
                    total = 0.0
                    for row in view_rows:
                        total += benign[row]
                    benign_scores[side].append(total / len(view_rows))
                    value = (exam.cancer_label or {}).get(f"{side}_benign")
                    benign_label_missing |= value is None
                    benign_labels[side].append(-1 if value is None else int(value))
        if not labels["left"] and not labels["right"]:
            raise EvaluationInputError(f"{exam_source}: no exam has any image; there are no breasts to evaluate")
    table.warnings.extend(w for w in warnings if w not in table.warnings)

    names = [f"exam {i} {side}" for side in ("left", "right") for i in exam_index[side]]
    data = LevelData("breast", np.array(labels["left"] + labels["right"], dtype=np.int8),
                     np.array(scores["left"] + scores["right"], dtype=np.float64), names,
                     exam_of_case=np.array(exam_index["left"] + exam_index["right"]))
    if has_benign:
        if benign_label_missing:
            table.warnings.append(f"{exam_source}: some exams have no left_benign/right_benign label; breast-level "
                                  "benign metrics skipped")
        else:
            data.benign_true = np.array(benign_labels["left"] + benign_labels["right"], dtype=np.int8)
            data.benign_score = np.array(benign_scores["left"] + benign_scores["right"], dtype=np.float64)
    return data

