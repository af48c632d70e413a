"""Which labels an evaluation uses, and whether the prediction file's labels agree with the exam list's.

An image-level prediction file carries its own labels (``malignant_label``, ``benign_label``), and the exam
list carries ``cancer_label`` per breast. The meta-repository's ``score.py`` - and ``mammoscreen evaluate`` -
scores the image level against the file's labels and the breast level against the exam list's. When the
two disagree, one of the levels is evaluated against labels the user did not mean; :func:`check_label_agreement`
says which labels each level uses and counts the rows that disagree (an error with ``strict``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..data.exams import VIEWS, Exam
from .io import PredictionTable
from .validation import EvaluationInputError

__all__ = ["LabelCheck", "check_label_agreement"]

IMAGE_LABELS = "the prediction file's malignant_label/benign_label columns"
BREAST_LABELS = "the exam list's cancer_label"


@dataclass
class LabelCheck:
    """The labels each level is scored against, and the rows whose labels contradict the exam list."""

    sources: dict[str, str]  # level -> where its labels come from
    compared: int = 0  # rows whose labels could be compared
    disagreeing: list[str] = field(default_factory=list)  # one description per disagreeing row

    def summary(self) -> str:
        return "; ".join(f"{level} level from {source}" for level, source in self.sources.items())

    def warning(self, source: str, exam_source: str) -> str | None:
        if not self.disagreeing:
            return None
        return (f"{source}: the labels of {len(self.disagreeing)} of {self.compared} rows disagree with "
                f"{exam_source}'s cancer_label (e.g. {self.disagreeing[0]}); the image level uses the file's labels, "
                "the breast level the exam list's - fix whichever is wrong, or pass --strict to stop on this")

    def to_dict(self) -> dict:
        return {"sources": self.sources, "rows_compared": self.compared, "rows_disagreeing": len(self.disagreeing),
                "examples": self.disagreeing[:5]}


def check_label_agreement(table: PredictionTable, exams: Sequence[Exam] | None, levels: Sequence[str], *,
                          exam_source: str = "exam list", strict: bool = False) -> LabelCheck:
    """The labels each evaluated level uses and, for an image-level file with an exam list, the rows whose
    ``malignant_label`` (or ``benign_label``) differs from the exam list's label of the image's breast.

    Raises :class:`EvaluationInputError` naming the first disagreeing row when ``strict`` and any disagrees.
    """
    sources = {level: IMAGE_LABELS if level == "image" else BREAST_LABELS for level in levels}
    check = LabelCheck(sources)
    if table.level != "image" or exams is None:
        return check
    breast_of = {name: (exam, view) for exam in exams for view in VIEWS for name in exam.images.get(view, [])}
    columns = [c for c in ("malignant", "benign") if f"{c}_label" in table.columns]
    for row, name in enumerate(table.image_names or []):
        if name not in breast_of:
            continue
        exam, view = breast_of[name]
        side = "left" if view.startswith("L") else "right"
        compared = False
        for kind in columns:
            expected = (exam.cancer_label or {}).get(f"{side}_{kind}")
            if expected is None:
                continue
            compared = True
            given = int(table.columns[f"{kind}_label"][row])
            if given != int(expected):
                check.disagreeing.append(f"CSV line {row + 2}, image {name}: {kind}_label {given}, exam list "
                                         f"{side}_{kind} {int(expected)}")
                break
        check.compared += compared
    if strict and check.disagreeing:
        raise EvaluationInputError(f"{table.source}: --strict: the labels of {len(check.disagreeing)} of "
                                   f"{check.compared} rows disagree with {exam_source}'s cancer_label (e.g. "
                                   f"{check.disagreeing[0]})")
    return check
