"""Cutting a run into work units, and the table each level writes: images for image-level models, exams for
exam-level (breast-level) ones. The only place where the two levels differ."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from ..core.paths import output_path
from ..core.stages import Failure
from ..data.exam_fingerprint import exam_list_fingerprint
from ..data.exams import VIEWS, Exam, ImageRecord, iter_images, missing_views
from ..data.images import image_path
from ..models.interfaces import ExamPredictor, Predictor
from .outputs import EXAM_INDEX_COLUMN, MAPS_DIR, VISUALIZATION_DIR, label_column
from .work import EXAM_LEVEL, IMAGE_LEVEL, WorkUnit


def settings_fingerprint(predictor: Predictor | ExamPredictor, engine: str) -> dict[str, Any]:
    """What a prediction journal is keyed to: the predictor's provenance (model, variant, options, weight
    sha256s - not their paths: the same file elsewhere gives the same numbers) and the level ('images' or
    'exams'; not the executor: every executor gives the same numbers)."""
    def strip_paths(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip_paths(v) for k, v in value.items() if not (k == "path" and "sha256" in value)}
        if isinstance(value, (list, tuple)):
            return [strip_paths(v) for v in value]
        return value

    return {"engine": engine, "provenance": strip_paths(predictor.provenance())}


def exam_maps_name(exam_index: int) -> str:
    """File stem of an exam's maps: 'exam_<index>' (the index in the exam list, from 0)."""
    return f"exam_{exam_index}"


class ImageUnits:
    """Image-level models: one unit per selected image; rows in the official order (or the model's)."""

    level = IMAGE_LEVEL
    progress_unit = "img"

    def __init__(self, predictor: Predictor, exams: Sequence[Exam], images_dir: Path, output_dir: Path,
                 save_maps: bool, figures: bool, segmentations: Path | None):
        self.predictor, self.exams = predictor, exams
        selected = predictor.select_images(exams)
        self.records: list[ImageRecord] = list(iter_images(exams)) if selected is None else list(selected)
        duplicates = sorted(name for name, count in Counter(r.name for r in self.records).items() if count > 1)
        if duplicates:
            raise ValueError(f"image names occur more than once in the exam list: {', '.join(duplicates[:5])}")
        self.units = [self._unit(r, images_dir, output_dir, save_maps, figures, segmentations) for r in self.records]
        self.early_failures: list[Failure] = []

    @staticmethod
    def _unit(r: ImageRecord, images_dir: Path, output_dir: Path, save_maps: bool, figures: bool,
              segmentations: Path | None) -> WorkUnit:
        inputs = [image_path(images_dir, r.name)]
        if figures and segmentations is not None:  # the figures draw the masks
            inputs += [Path(segmentations) / f"{r.name}_{kind}.png" for kind in ("benign", "malignant")]
        # through output_path: a name, or a symbolic link planted in maps/, cannot lead outside output_dir
        return WorkUnit(r.name, r.name, tuple(inputs),
                        {"view": r.view, "horizontal_flip": r.horizontal_flip, "metadata": dict(r.metadata)},
                        record=r,
                        maps_path=output_path(output_dir, MAPS_DIR, f"{r.name}.npz") if save_maps else None,
                        figure_path=output_path(output_dir, VISUALIZATION_DIR, f"{r.name}.png") if figures else None)

    def fingerprint(self) -> dict[str, Any]:
        return settings_fingerprint(self.predictor, "images")

    def table(self, values: dict[str, dict[str, float]]) -> tuple[list[str], list[dict[str, Any]]]:
        """(columns, rows) of predictions.csv."""
        spec = self.predictor.spec
        columns = ["image_index", *spec.prediction_columns, *[label_column(c) for c in spec.prediction_columns]]
        if spec.extra.get("csv_index_column"):
            columns.insert(0, "")  # an unnamed row-number column, as pandas' to_csv writes it
        records = self.records
        if spec.csv_view_order:  # the model's official script orders views differently within an exam
            rank = {view: i for i, view in enumerate(spec.csv_view_order)}
            records = sorted(records, key=lambda r: (r.exam_index, rank.get(r.view, len(rank)), r.index_in_view))
        rows: list[dict[str, Any]] = []
        for record in records:
            if record.name not in values:
                continue
            row: dict[str, Any] = {"image_index": record.name, **values[record.name]}
            if columns[0] == "":
                row[""] = len(rows)
            labels = {"benign_label": record.benign_label, "malignant_label": record.malignant_label}
            for c in spec.prediction_columns:
                row[label_column(c)] = labels.get(label_column(c))
            rows.append(row)
        return columns, rows

    def failure_table(self, failures: list[Failure]) -> tuple[list[str], list[dict[str, Any]]]:
        """Sorts ``failures`` in row order; (columns, rows) of the model's failures.csv."""
        order = {r.name: i for i, r in enumerate(self.records)}
        failures.sort(key=lambda f: order.get(f.name, len(order)))
        return ["image_index", "reason"], [{"image_index": f.name, "reason": f.reason} for f in failures]


class ExamUnits:
    """Exam-level models: one unit per exam that has every required view; one row per exam, list order."""

    level = EXAM_LEVEL
    progress_unit = "exam"

    def __init__(self, predictor: ExamPredictor, exams: Sequence[Exam], images_dir: Path, output_dir: Path,
                 save_maps: bool):
        self.predictor, self.exams = predictor, exams
        stage = predictor.spec.name
        self.early_failures = []
        self.units = []
        for i, exam in enumerate(exams):
            missing = missing_views(exam, predictor.required_views)
            if missing:
                self.early_failures.append(Failure(
                    f"exam {i}", f"no {', '.join(missing)} image; {predictor.spec.name} needs all of "
                    f"{', '.join(predictor.required_views)}, so the exam is skipped", stage))
                continue
            inputs = tuple(image_path(images_dir, name) for view in VIEWS for name in exam.images.get(view, []))
            maps = output_path(output_dir, MAPS_DIR, f"{exam_maps_name(i)}.npz") if save_maps else None
            self.units.append(WorkUnit(f"exam {i}", str(i), inputs, exam.to_dict(), exam_index=i, maps_path=maps))

    def fingerprint(self) -> dict[str, Any]:
        # Exam-level runs can depend on the whole list (random streams), so a changed list starts afresh.
        return {**settings_fingerprint(self.predictor, "exams"),
                "exam_list": exam_list_fingerprint(self.exams, use="prediction")}

    def table(self, values: dict[str, dict[str, float]]) -> tuple[list[str], list[dict[str, Any]]]:
        columns = self.predictor.spec.prediction_columns
        header = [EXAM_INDEX_COLUMN, *columns, *[label_column(c) for c in columns]]
        rows = []
        for unit in self.units:
            if unit.name not in values:
                continue
            i = unit.exam_index
            assert i is not None
            labels = self.exams[i].cancer_label or {}
            rows.append({EXAM_INDEX_COLUMN: i, **values[unit.name],
                         **{label_column(c): labels.get(c) for c in columns}})
        return header, rows

    def failure_table(self, failures: list[Failure]) -> tuple[list[str], list[dict[str, Any]]]:
        order = {f"exam {i}": i for i in range(len(self.exams))}
        failures.sort(key=lambda f: order.get(f.name, len(self.exams)))
        return [EXAM_INDEX_COLUMN, "reason"], [{EXAM_INDEX_COLUMN: order.get(f.name, f.name), "reason": f.reason}
                                               for f in failures]
