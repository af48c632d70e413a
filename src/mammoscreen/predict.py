"""The prediction engine: run a model over every image of an exam list.

Model-specific work lives in a :class:`Predictor` (how to load and preprocess one image, how to run a
batch, how to draw a figure); this module does the rest the same way for every model:

* images are loaded and preprocessed in a background thread while the model runs on the previous batch;
* one unreadable or failing image is reported and skipped, the others are still predicted;
* every finished image is journaled after its outputs (maps, figure) are written, with the content of its
  input and output files, so an interrupted run continues where it stopped when re-run with the same
  settings, and an image whose file (or crop metadata) changed is predicted again - and only it;
* a model output that is not a finite number fails its image; a disk that refuses a write (full,
  read-only) fails the image as an I/O error (``Failure.io_error``), which the next run retries;
* the output directory is locked for the duration (one run per directory);
* ``predictions.csv`` is written atomically at the end, in the official row order (exam by exam,
  views L-CC, R-CC, L-MLO, R-MLO, or the model's ``csv_view_order``), with the labels from ``cancer_label``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
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
from .core.files import atomic_write, write_text_atomic
from .core.journal import MISSING, Journal, file_state
from .core.lock import output_lock
from .core.paths import ensure_output_dir, output_path
from .data.exams import VIEWS, Exam, ImageRecord, iter_images
from .data.images import image_path
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
    reused: int = 0  # rows taken from an earlier run's journal
    csv_written: bool = True  # False when predictions.csv could not be written (see failures)

    @property
    def incomplete(self) -> bool:
        """An I/O error stopped part of the prediction: re-run (after fixing the cause) to finish it."""
        return any(f.io_error for f in self.failures)


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


class NonFiniteOutputError(ValueError):
    """A model produced a prediction that is not a finite number."""


def check_finite(values: dict[str, Any]) -> dict[str, float]:
    """The prediction values as floats; :class:`NonFiniteOutputError` if one is NaN or infinite."""
    out = {k: float(v) for k, v in values.items()}
    bad = {k: v for k, v in out.items() if not math.isfinite(v)}
    if bad:
        shown = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise NonFiniteOutputError(f"the model's output is not a number ({shown}); the weights may hold NaN or "
                                   "overflowing values - check the checkpoint")
    return out


def _reusable_values(found: Any, columns: Sequence[str]) -> dict[str, float] | None:
    """A journaled prediction if it has exactly the model's columns and finite numbers (else recompute)."""
    if not isinstance(found, dict) or set(found) != set(columns) \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in found.values()):
        return None
    try:
        return check_finite(found)
    except NonFiniteOutputError:
        return None


def settings_fingerprint(predictor: Predictor | ExamPredictor, engine: str) -> dict[str, Any]:
    """What a prediction journal is keyed to: the predictor's provenance (model, variant, options, weight
    sha256s - not their paths: the same file elsewhere gives the same numbers) and the engine."""
    def strip_paths(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip_paths(v) for k, v in value.items() if not (k == "path" and "sha256" in value)}
        if isinstance(value, (list, tuple)):
            return [strip_paths(v) for v in value]
        return value

    return {"engine": engine, "provenance": strip_paths(predictor.provenance())}


def _write_failures(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    # The per-model list (the run's failures.csv has every stage); best effort on a disk that refuses.
    with contextlib.suppress(OSError):
        if rows:
            write_predictions_csv(path, rows, columns)
        elif path.exists():
            path.unlink()


def _write_csv(csv_path: Path, rows: list[dict[str, Any]], columns: Sequence[str], stage: str,
               failures: list[Failure]) -> bool:
    """Write predictions.csv; on an I/O error record a failure and remove an older file (it would be stale)."""
    try:
        write_predictions_csv(csv_path, rows, columns)
        return True
    except OSError as error:
        failures.append(Failure.of(csv_path.name, error, stage))
        with contextlib.suppress(OSError):
            csv_path.unlink()
        return False


def predict_images(predictor: Predictor, exams: Sequence[Exam], images_dir: str | Path, output_dir: str | Path,
                   options: PredictOptions = PredictOptions()) -> PredictionRun:
    """Run ``predictor`` over every image of ``exams`` and write ``output_dir/predictions.csv``.

    With ``options.save_maps`` each image's maps go to ``output_dir/maps/<image>.npz``; with
    ``options.visualize`` its figure to ``output_dir/visualization/<image>.png``.
    """
    images_dir, output_dir = Path(images_dir), ensure_output_dir(output_dir)
    with output_lock(output_dir):
        return _predict_images(predictor, exams, images_dir, output_dir, options)


def _predict_images(predictor: Predictor, exams: Sequence[Exam], images_dir: Path, output_dir: Path,
                    options: PredictOptions) -> PredictionRun:
    records = predictor.select_images(exams)
    duplicates = sorted(name for name, count in Counter(r.name for r in records).items() if count > 1)
    if duplicates:
        raise ValueError(f"image names occur more than once in the exam list: {', '.join(duplicates[:5])}")
    stage = predictor.spec.name

    def inputs(r: ImageRecord) -> list[Path]:
        paths = [image_path(images_dir, r.name)]
        if options.visualize and options.segmentations is not None:  # the figures draw the masks
            paths += [Path(options.segmentations) / f"{r.name}_{kind}.png" for kind in ("benign", "malignant")]
        return paths

    def outputs(r: ImageRecord) -> list[Path]:
        # through output_path: a name, or a symbolic link planted in maps/, cannot lead outside output_dir
        return ([output_path(output_dir, MAPS_DIR, f"{r.name}.npz")] if options.save_maps else []) + \
            ([output_path(output_dir, VISUALIZATION_DIR, f"{r.name}.png")] if options.visualize else [])

    def params(r: ImageRecord) -> dict[str, Any]:  # what the prediction depends on besides the image file
        return {"view": r.view, "horizontal_flip": r.horizontal_flip, "metadata": dict(r.metadata)}

    journal = Journal(output_dir / ".predict_journal.jsonl", fingerprint=settings_fingerprint(predictor, "images"))
    values: dict[str, dict[str, float]] = {}
    todo = []
    for r in records:
        try:
            found = journal.reusable(r.name, params(r), inputs(r), outputs(r))
        except OSError:
            found = MISSING
        reusable = _reusable_values(found, predictor.spec.prediction_columns)
        if reusable is not None:
            values[r.name] = reusable
        else:
            todo.append(r)
    reused = len(values)
    predictor.configure_outputs(maps=options.save_maps, figures=options.visualize)
    failures: list[Failure] = []
    bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=predictor.spec.name, unit="img",
               disable=not options.progress, file=sys.stderr, dynamic_ncols=True)

    def fail(record: ImageRecord, error: BaseException) -> None:
        failures.append(Failure.of(record.name, error, stage))
        bar.write(f"skipped {record.name}: {describe_error(error)}", file=sys.stderr)
        bar.update(1)

    def load(record: ImageRecord) -> tuple[Any, list]:
        states = [file_state(p) for p in inputs(record)]  # before reading: a change meanwhile is caught next time
        return predictor.prepare(record, images_dir), states

    def write_outputs(record: ImageRecord, prepared: Any, states: list, prediction: ImagePrediction) -> None:
        try:
            result = check_finite(prediction.values)
            if options.save_maps:
                save_maps(outputs(record)[0], prediction.maps)
            if options.visualize:
                predictor.visualize(record, prepared, prediction, options.segmentations, outputs(record)[-1])
            journal.record_item(record.name, result, params(record), states, outputs(record))
        except Exception as error:  # an output that cannot be written must not stop the run
            fail(record, error)
            return
        values[record.name] = result
        bar.update(1)

    def run_batch(batch: list[tuple[ImageRecord, Any, list]]) -> list[tuple[ImageRecord, Any, list, ImagePrediction]]:
        try:
            predictions = predictor.predict_batch([p for _, p, _ in batch])
            return [(r, p, states, pred) for (r, p, states), pred in zip(batch, predictions)]
        except Exception as error:
            if len(batch) == 1:
                fail(batch[0][0], error)
                return []
            # Find the culprit: run the images one by one.
            return [out for item in batch for out in run_batch([item])]

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-writer") as writer:
        writes: list[Future] = []
        batch: list[tuple[ImageRecord, Any, list]] = []
        try:
            for record, future in _prefetch_calls(load, todo, depth=max(2, 2 * options.batch_size)):
                try:
                    prepared, states = future.result()
                    batch.append((record, prepared, states))
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
        if record.name not in values:
            continue
        row: dict[str, Any] = {"image_index": record.name, **values[record.name]}
        if columns[0] == "":
            row[""] = len(rows)
        labels = {"benign_label": record.benign_label, "malignant_label": record.malignant_label}
        for c in predictor.spec.prediction_columns:
            row[label_column(c)] = labels.get(label_column(c))
        rows.append(row)
    order = {r.name: i for i, r in enumerate(records)}
    failures.sort(key=lambda f: order.get(f.name, len(order)))
    csv_path = output_dir / PREDICTIONS_CSV
    written = _write_csv(csv_path, rows, columns, stage, failures)
    _write_failures(output_dir / FAILURES_CSV, [{"image_index": f.name, "reason": f.reason} for f in failures],
                    ["image_index", "reason"])
    return PredictionRun(csv_path, rows, failures, reused=reused, csv_written=written)


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
    with output_lock(output_dir):
        return _predict_exams(predictor, exams, images_dir, output_dir, options)


def _predict_exams(predictor: ExamPredictor, exams: Sequence[Exam], images_dir: Path, output_dir: Path,
                   options: PredictOptions) -> PredictionRun:
    stage = predictor.spec.name
    maps_path = lambda i: output_path(output_dir, MAPS_DIR, f"{exam_maps_name(i)}.npz")  # noqa: E731
    outputs = lambda i: [maps_path(i)] if options.save_maps else []  # noqa: E731
    inputs = lambda i: [image_path(images_dir, name) for view in VIEWS  # noqa: E731
                        for name in exams[i].images.get(view, [])]
    params = lambda i: exams[i].to_dict()  # noqa: E731
    # Exam-level runs can depend on the whole list (random streams), so a changed list starts afresh.
    journal = Journal(output_dir / ".predict_journal.jsonl",
                      fingerprint={**settings_fingerprint(predictor, "exams"), "exam_list": _exam_list_digest(exams)})
    failures: list[Failure] = []
    complete: list[int] = []
    for i, exam in enumerate(exams):
        missing = missing_views(exam, predictor.required_views)
        if missing:
            failures.append(Failure(f"exam {i}", f"no {', '.join(missing)} image; {predictor.spec.name} needs all of "
                                    f"{', '.join(predictor.required_views)}, so the exam is skipped", stage))
        else:
            complete.append(i)

    values: dict[int, dict[str, float]] = {}
    for i in complete:  # finished if journaled from the same image files and its outputs are unchanged
        try:
            found = journal.reusable(str(i), params(i), inputs(i), outputs(i))
        except OSError:
            found = MISSING
        reusable = _reusable_values(found, predictor.spec.prediction_columns)
        if reusable is not None:
            values[i] = reusable
    reused = len(values)
    todo = [i for i in complete if i not in values]
    bar = tqdm(total=len(complete), initial=len(complete) - len(todo), desc=predictor.spec.name, unit="exam",
               disable=not options.progress, file=sys.stderr, dynamic_ncols=True)
    for failure in failures:
        bar.write(f"skipped {failure}", file=sys.stderr)

    def fail(i: int, error: BaseException) -> None:
        failures.append(Failure.of(f"exam {i}", error, stage))
        bar.write(f"skipped exam {i}: {describe_error(error)}", file=sys.stderr)
        bar.update(1)

    def load(i: int) -> tuple[Any, list]:
        states = [file_state(p) for p in inputs(i)]  # before reading: a change meanwhile is caught next time
        return predictor.prepare(i, exams[i], images_dir), states

    def write_outputs(i: int, states: list, prediction: ExamPrediction) -> None:
        try:
            result = check_finite(prediction.values)
            if options.save_maps:
                save_maps(maps_path(i), prediction.maps)
            journal.record_item(str(i), result, params(i), states, outputs(i))
        except Exception as error:  # an output that cannot be written must not stop the run
            fail(i, error)
            return
        values[i] = result
        bar.update(1)

    if todo:
        predictor.plan(exams, images_dir)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-writer") as writer:
        writes: list[Future] = []
        try:
            for i, future in _prefetch_calls(load, todo, depth=2):
                try:
                    prepared, states = future.result()
                    prediction = predictor.predict_exam(prepared)
                except Exception as error:
                    fail(i, error)
                    continue
                writes.append(writer.submit(write_outputs, i, states, prediction))
        finally:
            for w in writes:
                w.result()
            bar.close()

    columns = predictor.spec.prediction_columns
    header = [EXAM_INDEX_COLUMN, *columns, *[label_column(c) for c in columns]]
    rows = []
    for i in complete:
        if i not in values:
            continue
        labels = exams[i].cancer_label or {}
        rows.append({EXAM_INDEX_COLUMN: i, **values[i], **{label_column(c): labels.get(c) for c in columns}})
    order = {f"exam {i}": i for i in range(len(exams))}
    failures.sort(key=lambda f: order.get(f.name, len(exams)))
    csv_path = output_dir / PREDICTIONS_CSV
    written = _write_csv(csv_path, rows, header, stage, failures)
    _write_failures(output_dir / FAILURES_CSV, [{EXAM_INDEX_COLUMN: order.get(f.name, f.name), "reason": f.reason}
                                                for f in failures], [EXAM_INDEX_COLUMN, "reason"])
    return PredictionRun(csv_path, rows, failures, reused=reused, csv_written=written)


def run_prediction(predictor: Predictor | ExamPredictor, exams: Sequence[Exam], images_dir: str | Path,
                   output_dir: str | Path, options: PredictOptions = PredictOptions()) -> PredictionRun:
    """:func:`predict_exams` for breast-level (exam) models, :func:`predict_images` for image-level ones."""
    if predictor.spec.output_level == "breast":
        if not isinstance(predictor, ExamPredictor):
            raise TypeError(f"{predictor.spec.name} is a breast-level model but its predictor is not an ExamPredictor")
        return predict_exams(predictor, exams, images_dir, output_dir, options)
    return predict_images(predictor, exams, images_dir, output_dir, options)
