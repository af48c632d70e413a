"""Checking a dataset before running a model: the exam list, its labels and every image it names.

What goes wrong most often with hand-made datasets, each reported with the image or exam concerned:
missing files; colour, palette or 8-bit PNGs (models silently get the wrong values); implausible
sizes; empty or inverted images (MONOCHROME1 left as stored: no zero background); an image whose
breast faces the wrong way for its view and ``horizontal_flip``; malformed or inconsistent labels;
an image listed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.parallel_map import map_images
from .exam_metadata import KeyCoverage, metadata_coverage
from .exams import LABEL_KEYS, VIEWS, Exam, ExamListError, iter_images, load_exam_list, needs_flip
from .images import ImageFileError, image_path, read_png

MIN_SIDE = 100
MAX_SIDE = 10000
SMALL_SIDE = 400  # below this an image is legal but suspiciously small for a mammogram
MIN_BREAST_FRACTION = 0.02
KNOWN_LABEL_KEYS = set(LABEL_KEYS) | {"benign", "malignant", "unknown"}
TWELVE_BIT_NOTE = ("values stay within 0..4095: 12-bit data stored without the rescale to 16 bits (as GMIC's "
                   "sample exams; the meta-repository's DICOM snippet rescales to 0..65535)")


@dataclass(frozen=True)
class Issue:
    """One finding: level 'error' (the dataset will not work as intended), 'warning' or 'note'."""

    level: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@dataclass
class ValidationReport:
    """Everything :func:`validate_dataset` found."""

    exams: int = 0
    images: int = 0
    issues: list[Issue] = field(default_factory=list)
    metadata: list[KeyCoverage] = field(default_factory=list)  # coverage of each metadata key

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def notes(self) -> dict[str, int]:
        """Informational findings, counted by message."""
        counts: dict[str, int] = {}
        for issue in self.issues:
            if issue.level == "note":
                counts[issue.message] = counts.get(issue.message, 0) + 1
        return counts

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One line: counts and the verdict."""
        verdict = "OK" if self.ok else "FAILED"
        return (f"{verdict}: {self.exams} exam(s), {self.images} image(s), {len(self.errors)} error(s), "
                f"{len(self.warnings)} warning(s)")


def check_image(array: np.ndarray, view: str, horizontal_flip: str) -> list[tuple[str, str]]:
    """(level, message) findings for one image array of ``view``."""
    found = []
    height, width = array.shape
    if array.dtype == np.uint8:
        found.append(("error", "8-bit PNG: the models expect 16-bit images (12-bit values rescaled to 16 bits); "
                               "re-convert from DICOM, e.g. with 'mammoscreen convert-dicom'"))
    if min(height, width) < MIN_SIDE or max(height, width) > MAX_SIDE:
        found.append(("error", f"implausible size {height}x{width} for a mammogram"))
        return found
    if min(height, width) < SMALL_SIDE:
        found.append(("warning", f"small image ({height}x{width}); full-field mammograms are thousands of "
                                 "pixels per side"))
    breast = array > 0
    fraction = float(breast.mean())
    if fraction < MIN_BREAST_FRACTION:
        found.append(("error", f"almost empty: only {fraction:.1%} of the pixels are non-zero"))
        return found
    if fraction > 0.995:
        found.append(("error", "no zero-valued background: the crop cannot find the breast. An inverted "
                               "(MONOCHROME1) image, or a background that is not exactly zero?"))
        return found
    expected = "left" if needs_flip(view, horizontal_flip) else "right"
    actual = breast_side(breast)
    if actual is not None and actual != expected:
        found.append(("error", f"the breast faces {actual}, but {view} with horizontal_flip "
                               f"'{horizontal_flip}' should face {expected} (official convention: left breasts "
                               "face right as stored when horizontal_flip is 'NO'); check the view or the flag"))
    if array.dtype == np.uint16 and int(array.max()) <= 4095:
        found.append(("note", TWELVE_BIT_NOTE))
    return found


def breast_side(breast: np.ndarray) -> str | None:
    """Which way the breast faces: 'right' if its chest wall is on the left edge, 'left' if on the right.

    None if the image does not say clearly (breast tissue on both edges, or on neither).
    """
    width = breast.shape[1]
    strip = max(1, width // 20)
    left_edge = breast[:, :strip].mean()
    right_edge = breast[:, width - strip:].mean()
    if left_edge > 3 * right_edge and left_edge > 0.05:
        return "right"
    if right_edge > 3 * left_edge and right_edge > 0.05:
        return "left"
    return None


def check_labels(exam: Exam) -> list[tuple[str, str]]:
    """(level, message) findings for one exam's ``cancer_label``."""
    label = exam.cancer_label
    if label is None:
        return [("warning", "no cancer_label: the exam can be run but not evaluated")]
    found = []
    unknown = sorted(set(label) - KNOWN_LABEL_KEYS)
    if unknown:
        found.append(("error", f"unknown cancer_label key(s) {unknown}; expected {sorted(KNOWN_LABEL_KEYS)}"))
    missing = [k for k in LABEL_KEYS if k not in label]
    if missing and not label.get("unknown"):
        found.append(("error", f"cancer_label lacks {missing}"))
    for kind in ("benign", "malignant"):
        sides = [label.get(f"{s}_{kind}") for s in ("left", "right")]
        if kind in label and None not in sides and label[kind] != max(sides):
            found.append(("error", f"cancer_label['{kind}'] is {label[kind]} but left/right say {sides}"))
    for side, prefix in (("left", "L"), ("right", "R")):
        positive = any(label.get(f"{side}_{k}") for k in ("benign", "malignant"))
        if positive and not any(exam.images.get(v) for v in VIEWS if v.startswith(prefix)):
            found.append(("warning", f"the {side} breast is labelled positive but the exam has no {side} image"))
    return found


def _check_file(item: tuple[str, str, str], images_dir: str) -> list[tuple[str, str]]:
    name, view, horizontal_flip = item
    path = image_path(images_dir, name)
    try:
        array = read_png(path)
    except ImageFileError as e:
        return [("error", str(e).replace(f"{path}: ", "", 1))]
    return check_image(array, view, horizontal_flip)


def validate_dataset(images_dir: str | Path, exam_list: str | Path | Sequence[Exam], *, workers: int = 1,
                     progress: bool = True) -> ValidationReport:
    """Check an exam list and every image it names; never raises for problems in the data."""
    report = ValidationReport()
    if isinstance(exam_list, (str, Path)):
        try:
            exams = load_exam_list(exam_list)
        except (ExamListError, FileNotFoundError) as e:
            report.issues.append(Issue("error", str(exam_list), str(e).removeprefix(f"{exam_list}: ")))
            return report
    else:
        exams = list(exam_list)
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        report.issues.append(Issue("error", str(images_dir), "images directory not found"))
        return report
    report.exams = len(exams)
    records = list(iter_images(exams))
    report.images = len(records)
    report.metadata = metadata_coverage(exams)
    if not records:  # nothing to run a model on is a problem, not "OK: 0 exam(s)"
        what = "no exams" if not exams else f"{len(exams)} exam(s) but no image names in any view"
        report.issues.append(Issue("error", str(exam_list) if isinstance(exam_list, (str, Path)) else "exam list",
                                   f"the exam list has {what}; there is nothing to validate or run"))
        return report

    seen: dict[str, str] = {}
    for record in records:
        where = f"exam {record.exam_index} {record.view}"
        if record.name in seen:
            report.issues.append(Issue("error", record.name, f"listed twice ({seen[record.name]} and {where})"))
        seen.setdefault(record.name, where)
    for index, exam in enumerate(exams):
        if not any(exam.images.get(v) for v in VIEWS):
            report.issues.append(Issue("warning", f"exam {index}", "no images"))
        report.issues.extend(Issue(level, f"exam {index}", message) for level, message in check_labels(exam))

    unique = {}
    for record in records:
        unique.setdefault(record.name, (record.name, record.view, record.horizontal_flip))
    results, failures = map_images(partial(_check_file, images_dir=str(images_dir)), list(unique.values()),
                                   list(unique), workers=workers, desc="validate", progress=progress)
    for name, findings in results.items():
        report.issues.extend(Issue(level, str(image_path(images_dir, name)), message) for level, message in findings)
    report.issues.extend(Issue("error", f.name, f.reason) for f in failures)
    return report
