"""The prediction engine: run a model over every image of an exam list.

Model-specific work lives in a :class:`Predictor` (how to load and preprocess one image, how to run a
batch, how to draw a figure); this module does the rest the same way for every model:

* images are loaded and preprocessed in a background thread while the model runs on the previous batch;
* one unreadable or failing image is reported and skipped, the others are still predicted;
* every finished image is journaled after its outputs (maps, figure) are written, so an interrupted run
  continues where it stopped when re-run with the same settings;
* ``predictions.csv`` is written atomically at the end, in the official row order (exam by exam,
  views L-CC, R-CC, L-MLO, R-MLO, or the model's ``csv_view_order``), with the labels from ``cancer_label``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import sys
from abc import ABC, abstractmethod
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .batch import Failure, describe_error
from .core.paths import ensure_output_dir, output_path
from .data.exams import VIEWS, Exam, ImageRecord, iter_images
from .data.images import image_path
from .files import Journal, atomic_write, file_signature, write_text_atomic
from .models.registry import ModelSpec

PREDICTIONS_CSV = "predictions.csv"
FAILURES_CSV = "failures.csv"
MAPS_DIR = "maps"
VISUALIZATION_DIR = "visualization"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """A torch device from 'auto', 'cpu', 'cuda' or 'cuda:N', checking that it exists."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available (no GPU, or a CPU-only "
                             "PyTorch build); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} GPU(s) are visible")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}; use cpu, cuda or cuda:N")
    return device


@contextlib.contextmanager
def full_fp32(device: torch.device) -> Iterator[None]:
    """Run CUDA convolutions and matmuls in true float32 (no TF32), so GPU numbers match the CPU's.

    PyTorch lets cuDNN use TF32 for convolutions by default on Ampere and newer GPUs (~1e-3 relative
    error); parity with the published float32 implementations needs it off. No effect on the CPU.
    """
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    matmul_tf32 = torch.backends.cuda.matmul.allow_tf32
    with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                     allow_tf32=False):
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = matmul_tf32


@dataclass
class PredictOptions:
    """How to run a prediction."""

    device: str = "auto"
    batch_size: int = 1
    save_maps: bool = False
    visualize: bool = False
    segmentations: Path | None = None  # directory of <image>_benign.png / <image>_malignant.png
    progress: bool = True


@dataclass
class ImagePrediction:
    """A model's output for one image."""

    values: dict[str, float]  # prediction columns, e.g. {"benign_pred": 0.1, "malignant_pred": 0.02}
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # saved as maps/<image>.npz
    visual: Any = None  # what the predictor's visualize() needs


class Predictor(ABC):
    """Model-specific part of prediction. Subclasses are created by the model's registry entry."""

    spec: ModelSpec

    @abstractmethod
    def prepare(self, record: ImageRecord, images_dir: Path) -> Any:
        """Load and preprocess one image (runs in a loader thread; raise on a bad image)."""

    @abstractmethod
    def predict_batch(self, prepared: Sequence[Any]) -> list[ImagePrediction]:
        """Run the model on a batch of prepared images."""

    def visualize(self, record: ImageRecord, prepared: Any, prediction: ImagePrediction,
                  segmentations: Path | None, path: Path) -> None:
        """Draw the model's explanation figure for one image to ``path`` (PNG)."""
        raise NotImplementedError(f"{self.spec.name} has no visualisation")

    def provenance(self) -> dict[str, Any]:
        """What identifies this run's model: name, variant, weight files and their sha256."""
        return {"model": self.spec.name}

    def configure_outputs(self, maps: bool, figures: bool) -> None:
        """Told by :func:`predict_images` which outputs besides the predictions are wanted.

        A predictor may skip work only the maps or figures need (GLAM skips its local branch, which
        does not affect its reported prediction). By default everything is computed.
        """

    def select_images(self, exams: Sequence[Exam]) -> list[ImageRecord]:
        """The images to predict, in output order (default: every image, official order)."""
        return list(iter_images(exams))


@dataclass
class PredictionRun:
    """The result of :func:`predict_images`."""

    csv_path: Path
    rows: list[dict[str, Any]]
    failures: list[Failure]


def label_column(prediction_column: str) -> str:
    """'malignant_pred' -> 'malignant_label'."""
    return prediction_column[: -len("_pred")] + "_label" if prediction_column.endswith("_pred") else prediction_column + "_label"


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.9g}"  # enough digits to restore any float32 exactly
    return str(value)


def write_predictions_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write prediction rows atomically with the given column order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row.get(c)) for c in columns])
    write_text_atomic(path, buffer.getvalue())


def save_maps(path: Path, maps: dict[str, np.ndarray]) -> None:
    """Write a maps .npz atomically."""
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **maps)


def _prefetch(predictor: Predictor, records: Sequence[ImageRecord], images_dir: Path,
              depth: int) -> Iterator[tuple[ImageRecord, Future]]:
    """Yield (record, future of prepared input) in order, keeping ``depth`` loads in flight."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-loader") as pool:
        pending: deque[tuple[ImageRecord, Future]] = deque()
        it = iter(records)
        for record in it:
            pending.append((record, pool.submit(predictor.prepare, record, images_dir)))
            if len(pending) >= depth:
                break
        while pending:
            yield pending.popleft()
            record = next(it, None)
            if record is not None:
                pending.append((record, pool.submit(predictor.prepare, record, images_dir)))


def predict_images(predictor: Predictor, exams: Sequence[Exam], images_dir: str | Path, output_dir: str | Path,
                   options: PredictOptions = PredictOptions()) -> PredictionRun:
    """Run ``predictor`` over every image of ``exams`` and write ``output_dir/predictions.csv``.

    With ``options.save_maps`` each image's maps go to ``output_dir/maps/<image>.npz``; with
    ``options.visualize`` its figure to ``output_dir/visualization/<image>.png``.
    """
    images_dir, output_dir = Path(images_dir), ensure_output_dir(output_dir)
    records = predictor.select_images(exams)
    duplicates = sorted(name for name, count in Counter(r.name for r in records).items() if count > 1)
    if duplicates:
        raise ValueError(f"image names occur more than once in the exam list: {', '.join(duplicates[:5])}")

    maps_path = lambda r: output_path(output_dir, MAPS_DIR, f"{r.name}.npz")  # noqa: E731
    figure_path = lambda r: output_path(output_dir, VISUALIZATION_DIR, f"{r.name}.png")  # noqa: E731
    journal = Journal(output_dir / ".predict_journal.jsonl",
                      fingerprint={**predictor.provenance(), "images": str(images_dir.resolve())})

    signatures = {r.name: file_signature(image_path(images_dir, r.name)) for r in records}

    def finished(r: ImageRecord) -> bool:
        entry = journal.entries.get(r.name)
        return (entry is not None and entry["source"] == signatures[r.name]
                and (not options.save_maps or maps_path(r).is_file())
                and (not options.visualize or figure_path(r).is_file()))

    todo = [r for r in records if not finished(r)]
    predictor.configure_outputs(maps=options.save_maps, figures=options.visualize)
    failures: list[Failure] = []
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=predictor.spec.name, unit="img",
               disable=not options.progress, file=sys.stderr, dynamic_ncols=True)

    def fail(record: ImageRecord, error: BaseException) -> None:
        failures.append(Failure(record.name, describe_error(error)))
        bar.write(f"skipped {record.name}: {describe_error(error)}", file=sys.stderr)
        bar.update(1)

    def write_outputs(record: ImageRecord, prepared: Any, prediction: ImagePrediction) -> None:
        try:
            if options.save_maps:
                save_maps(maps_path(record), prediction.maps)
            if options.visualize:
                predictor.visualize(record, prepared, prediction, options.segmentations, figure_path(record))
        except Exception as error:  # an output that cannot be written must not stop the run
            fail(record, error)
            return
        journal.record(record.name, {"values": {k: float(v) for k, v in prediction.values.items()},
                                     "source": signatures[record.name]})
        bar.update(1)

    def run_batch(batch: list[tuple[ImageRecord, Any]]) -> list[tuple[ImageRecord, Any, ImagePrediction]]:
        try:
            predictions = predictor.predict_batch([p for _, p in batch])
            return [(r, p, pred) for (r, p), pred in zip(batch, predictions)]
        except Exception as error:
            if len(batch) == 1:
                fail(batch[0][0], error)
                return []
            # Find the culprit: run the images one by one.
            return [out for item in batch for out in run_batch([item])]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-writer") as writer:
        writes: list[Future] = []
        batch: list[tuple[ImageRecord, Any]] = []
        try:
            for record, future in _prefetch(predictor, todo, images_dir, depth=max(2, 2 * options.batch_size)):
                try:
                    batch.append((record, future.result()))
                except Exception as error:
                    fail(record, error)
                if len(batch) >= options.batch_size:
                    writes += [writer.submit(write_outputs, *out) for out in run_batch(batch)]
                    batch = []
            if batch:
                writes += [writer.submit(write_outputs, *out) for out in run_batch(batch)]
        finally:
            for w in writes:
                w.result()
            bar.close()

    columns = ["image_index", *predictor.spec.prediction_columns,
               *[label_column(c) for c in predictor.spec.prediction_columns]]
    if predictor.spec.extra.get("csv_index_column"):
        columns.insert(0, "")  # an unnamed row-number column, as pandas' to_csv writes it
    rows = []
    if predictor.spec.csv_view_order:  # the model's official script orders views differently within an exam
        rank = {view: i for i, view in enumerate(predictor.spec.csv_view_order)}
        records = sorted(records, key=lambda r: (r.exam_index, rank.get(r.view, len(rank)), r.index_in_view))
    for record in records:
        if not finished(record):
            continue
        row: dict[str, Any] = {"image_index": record.name, **journal[record.name]["values"]}
        if columns[0] == "":
            row[""] = len(rows)
        labels = {"benign_label": record.benign_label, "malignant_label": record.malignant_label}
        for c in predictor.spec.prediction_columns:
            row[label_column(c)] = labels.get(label_column(c))
        rows.append(row)
    csv_path = output_dir / PREDICTIONS_CSV
    write_predictions_csv(csv_path, rows, columns)
    failures_path = output_dir / FAILURES_CSV
    if failures:
        write_predictions_csv(failures_path, [{"image_index": f.name, "reason": f.reason} for f in failures],
                              ["image_index", "reason"])
    elif failures_path.exists():
        failures_path.unlink()
    return PredictionRun(csv_path, rows, failures)


# ----------------------------------------------------------------------------------------------
# Exam-level (breast-level) models: one prediction per exam from all of its views
# ----------------------------------------------------------------------------------------------

EXAM_INDEX_COLUMN = "exam_index"


@dataclass
class ExamPrediction:
    """A model's output for one exam."""

    values: dict[str, float]  # prediction columns, e.g. {"left_malignant": 0.1, ...}
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # saved as maps/exam_<index>.npz


class ExamPredictor(ABC):
    """Model-specific part of exam-level prediction (models that need several views of an exam at once).

    :func:`predict_exams` calls :meth:`plan` once with the whole exam list, then :meth:`prepare` for each
    exam that has every view in ``required_views`` (in a loader thread), then :meth:`predict_exam`.
    """

    spec: ModelSpec
    required_views: tuple[str, ...] = VIEWS

    def plan(self, exams: Sequence[Exam], images_dir: Path) -> None:
        """Run-wide preparation before any exam is prepared (e.g. laying out the official random streams)."""

    @abstractmethod
    def prepare(self, exam_index: int, exam: Exam, images_dir: Path) -> Any:
        """Load and preprocess one exam (runs in a loader thread; raise on bad input)."""

    @abstractmethod
    def predict_exam(self, prepared: Any) -> ExamPrediction:
        """Run the model on one prepared exam."""

    def provenance(self) -> dict[str, Any]:
        """What identifies this run's model: name, variant, weight files and their sha256."""
        return {"model": self.spec.name}


def exam_maps_name(exam_index: int) -> str:
    """File stem of an exam's maps: 'exam_<index>' (the index in the exam list, from 0)."""
    return f"exam_{exam_index}"


def missing_views(exam: Exam, required: Sequence[str]) -> list[str]:
    """The required views for which ``exam`` lists no image."""
    return [view for view in required if not exam.images.get(view)]


def _exam_list_digest(exams: Sequence[Exam]) -> str:
    # Exam-level runs can depend on the whole list (random streams), so a changed list starts afresh.
    text = json.dumps([exam.to_dict() for exam in exams], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _prefetch_calls(prepare: Any, items: Sequence[Any], depth: int) -> Iterator[tuple[Any, Future]]:
    """Yield (item, future of prepare(item)) in order, keeping ``depth`` calls in flight in one thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-loader") as pool:
        pending: deque[tuple[Any, Future]] = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(prepare, item)))
            if len(pending) >= depth:
                break
        while pending:
            yield pending.popleft()
            item = next(it, None)
            if item is not None:
                pending.append((item, pool.submit(prepare, item)))


def predict_exams(predictor: ExamPredictor, exams: Sequence[Exam], images_dir: str | Path, output_dir: str | Path,
                  options: PredictOptions = PredictOptions()) -> PredictionRun:
    """Run an exam-level ``predictor`` over ``exams`` and write ``output_dir/predictions.csv``.

    One row per exam in exam-list order: ``exam_index`` (position in the exam list, from 0), the model's
    prediction columns, then their labels from ``cancer_label`` (``left_malignant`` ->
    ``left_malignant_label``). Exams lacking a required view, and exams that fail, are reported in
    ``failures.csv`` and skipped; the others are still predicted. Finished exams are journaled, so an
    interrupted run continues where it stopped. With ``options.save_maps`` each exam's maps go to
    ``output_dir/maps/exam_<index>.npz``.
    """
    images_dir, output_dir = Path(images_dir), ensure_output_dir(output_dir)
    maps_path = lambda i: output_path(output_dir, MAPS_DIR, f"{exam_maps_name(i)}.npz")  # noqa: E731
    journal = Journal(output_dir / ".predict_journal.jsonl",
                      fingerprint={**predictor.provenance(), "images": str(images_dir.resolve()),
                                   "exam_list": _exam_list_digest(exams)})
    failures: list[Failure] = []
    complete: list[int] = []
    for i, exam in enumerate(exams):
        missing = missing_views(exam, predictor.required_views)
        if missing:
            failures.append(Failure(f"exam {i}", f"no {', '.join(missing)} image; {predictor.spec.name} needs all of "
                                    f"{', '.join(predictor.required_views)}, so the exam is skipped"))
        else:
            complete.append(i)

    # An exam is finished if journaled from the same image files (size, mtime) and its outputs exist.
    signatures = {i: [file_signature(image_path(images_dir, name)) for view in VIEWS
                      for name in exams[i].images.get(view, [])] for i in complete}

    def finished(i: int) -> bool:
        entry = journal.entries.get(str(i))
        return (entry is not None and entry["source"] == signatures[i]
                and (not options.save_maps or maps_path(i).is_file()))

    todo = [i for i in complete if not finished(i)]
    bar = tqdm(total=len(complete), initial=len(complete) - len(todo), desc=predictor.spec.name, unit="exam",
               disable=not options.progress, file=sys.stderr, dynamic_ncols=True)
    for failure in failures:
        bar.write(f"skipped {failure}", file=sys.stderr)

    def fail(i: int, error: BaseException) -> None:
        failures.append(Failure(f"exam {i}", describe_error(error)))
        bar.write(f"skipped exam {i}: {describe_error(error)}", file=sys.stderr)
        bar.update(1)

    def write_outputs(i: int, prediction: ExamPrediction) -> None:
        try:
            if options.save_maps:
                save_maps(maps_path(i), prediction.maps)
        except Exception as error:  # an output that cannot be written must not stop the run
            fail(i, error)
            return
        journal.record(str(i), {"values": {k: float(v) for k, v in prediction.values.items()},
                                "source": signatures[i]})
        bar.update(1)

    if todo:
        predictor.plan(exams, images_dir)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-writer") as writer:
        writes: list[Future] = []
        try:
            for i, future in _prefetch_calls(lambda j: predictor.prepare(j, exams[j], images_dir), todo, depth=2):
                try:
                    prediction = predictor.predict_exam(future.result())
                except Exception as error:
                    fail(i, error)
                    continue
                writes.append(writer.submit(write_outputs, i, prediction))
        finally:
            for w in writes:
                w.result()
            bar.close()

    columns = predictor.spec.prediction_columns
    header = [EXAM_INDEX_COLUMN, *columns, *[label_column(c) for c in columns]]
    rows = []
    for i in complete:
        if not finished(i):
            continue
        labels = exams[i].cancer_label or {}
        rows.append({EXAM_INDEX_COLUMN: i, **journal[str(i)]["values"],
                     **{label_column(c): labels.get(c) for c in columns}})
    csv_path = output_dir / PREDICTIONS_CSV
    write_predictions_csv(csv_path, rows, header)
    failures_path = output_dir / FAILURES_CSV
    order = {f"exam {i}": i for i in range(len(exams))}
    failures.sort(key=lambda f: order.get(f.name, len(exams)))
    if failures:
        write_predictions_csv(failures_path, [{EXAM_INDEX_COLUMN: order.get(f.name, f.name), "reason": f.reason}
                                               for f in failures],
                              [EXAM_INDEX_COLUMN, "reason"])
    elif failures_path.exists():
        failures_path.unlink()
    return PredictionRun(csv_path, rows, failures)


def run_prediction(predictor: Predictor | ExamPredictor, exams: Sequence[Exam], images_dir: str | Path,
                   output_dir: str | Path, options: PredictOptions = PredictOptions()) -> PredictionRun:
    """:func:`predict_exams` for breast-level (exam) models, :func:`predict_images` for image-level ones."""
    if predictor.spec.output_level == "breast":
        if not isinstance(predictor, ExamPredictor):
            raise TypeError(f"{predictor.spec.name} is a breast-level model but its predictor is not an ExamPredictor")
        return predict_exams(predictor, exams, images_dir, output_dir, options)
    return predict_images(predictor, exams, images_dir, output_dir, options)
