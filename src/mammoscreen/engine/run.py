"""The prediction engine: run a model over every image (or exam) of an exam list.

Model-specific work lives in a :class:`~mammoscreen.models.interfaces.Predictor` (how to load and
preprocess one image, how to run a batch, how to draw a figure) or an ``ExamPredictor``; an
:class:`~mammoscreen.engine.executor.Executor` runs the work units; this module does the rest, once, the
same way for every model and every executor:

* one unreadable or failing image (or exam) is reported and skipped, the others are still predicted;
* every finished unit is journaled after its outputs (maps, figure) are written, with the content of its
  input and output files, so an interrupted run continues where it stopped when re-run with the same
  settings, and a unit whose file (or crop metadata) changed is predicted again - and only it;
* a model output that is not a finite number fails its unit; a disk that refuses a write (full,
  read-only) fails it as an I/O error (``Failure.io_error``), which the next run retries;
* the output directory is locked for the duration (one run per directory);
* ``predictions.csv`` is written atomically at the end, in the official row order (exam by exam,
  views L-CC, R-CC, L-MLO, R-MLO, or the model's ``csv_view_order``; one row per exam for exam-level
  models), with the labels from ``cancer_label``.
"""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from ..core.journal import MISSING, Journal
from ..core.lock import output_lock
from ..core.paths import ensure_output_dir
from ..core.stages import Failure, describe_error
from ..data.exams import Exam
from ..models.interfaces import ExamPredictor, Predictor
from .executor import Executor, LocalExecutor
from .outputs import (
    FAILURES_CSV,
    PREDICTIONS_CSV,
    reusable_values,
    save_maps,
    write_model_failures,
    write_predictions_or_fail,
)
from .units import ExamUnits, ImageUnits
from .work import EXAM_LEVEL, PRECISIONS, Job, UnitFailure, UnitResult


@dataclass
class PredictOptions:
    """How to run a prediction."""

    device: str = "auto"
    batch_size: int = 1
    save_maps: bool = False
    visualize: bool = False
    segmentations: Path | None = None  # directory of <image>_benign.png / <image>_malignant.png
    progress: bool = True
    executor: Executor | None = None  # what runs the work units (None: LocalExecutor, in this process)
    precision: str = "fp32"  # fp32 (default, the official numbers), or bf16 / fp16 autocast (approximate)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")


@dataclass
class PredictionRun:
    """The result of :func:`predict_images` / :func:`predict_exams`."""

    csv_path: Path
    rows: list[dict[str, Any]]
    failures: list[Failure]
    reused: int = 0  # rows taken from an earlier run's journal
    csv_written: bool = True  # False when predictions.csv could not be written (see failures)

    @property
    def incomplete(self) -> bool:
        """An I/O error stopped part of the prediction: re-run (after fixing the cause) to finish it."""
        return any(f.io_error for f in self.failures)


def predict_images(predictor: Predictor, exams: Sequence[Exam], images_dir: str | Path, output_dir: str | Path,
                   options: PredictOptions | None = None) -> PredictionRun:
    """Run ``predictor`` over every image of ``exams`` and write ``output_dir/predictions.csv``.

    With ``options.save_maps`` each image's maps go to ``output_dir/maps/<image>.npz``; with
    ``options.visualize`` its figure to ``output_dir/visualization/<image>.png``.
    """
    options = options or PredictOptions()
    images_dir, output_dir = Path(images_dir), ensure_output_dir(output_dir)
    with output_lock(output_dir):
        units = ImageUnits(predictor, exams, images_dir, output_dir, options.save_maps, options.visualize,
                           options.segmentations)
        return _run_units(predictor, units, exams, images_dir, output_dir, options)


def predict_exams(predictor: ExamPredictor, exams: Sequence[Exam], images_dir: str | Path, output_dir: str | Path,
                  options: PredictOptions | None = None) -> PredictionRun:
    """Run an exam-level ``predictor`` over ``exams`` and write ``output_dir/predictions.csv``.

    One row per exam in exam-list order: ``exam_index`` (position in the exam list, from 0), the model's
    prediction columns, then their labels from ``cancer_label`` (``left_malignant`` ->
    ``left_malignant_label``). Exams lacking a required view, and exams that fail, are reported in
    ``failures.csv`` and skipped; the others are still predicted. Finished exams are journaled, so an
    interrupted run continues where it stopped. With ``options.save_maps`` each exam's maps go to
    ``output_dir/maps/exam_<index>.npz``.
    """
    options = options or PredictOptions()
    images_dir, output_dir = Path(images_dir), ensure_output_dir(output_dir)
    with output_lock(output_dir):
        units = ExamUnits(predictor, exams, images_dir, output_dir, options.save_maps)
        return _run_units(predictor, units, exams, images_dir, output_dir, options)


def run_prediction(predictor: Predictor | ExamPredictor, exams: Sequence[Exam], images_dir: str | Path,
                   output_dir: str | Path, options: PredictOptions | None = None) -> PredictionRun:
    """:func:`predict_exams` for breast-level (exam) models, :func:`predict_images` for image-level ones."""
    if predictor.spec.output_level == "breast":
        if not isinstance(predictor, ExamPredictor):
            raise TypeError(f"{predictor.spec.name} is a breast-level model but its predictor is not an ExamPredictor")
        return predict_exams(predictor, exams, images_dir, output_dir, options)
    return predict_images(predictor, exams, images_dir, output_dir, options)  # type: ignore[arg-type]


def _run_units(predictor: Predictor | ExamPredictor, units: ImageUnits | ExamUnits, exams: Sequence[Exam],
               images_dir: Path, output_dir: Path, options: PredictOptions) -> PredictionRun:
    """The one loop: reuse what the journal holds, run the rest through the executor, write as they finish."""
    stage = predictor.spec.name
    columns_wanted = predictor.spec.prediction_columns
    fingerprint = units.fingerprint()
    if options.precision != "fp32":  # results of another arithmetic are never reused (fp32 journals unchanged)
        fingerprint = {**fingerprint, "precision": options.precision}
    journal = Journal(output_dir / ".predict_journal.jsonl", fingerprint=fingerprint)
    failures: list[Failure] = list(units.early_failures)
    values: dict[str, dict[str, float]] = {}
    todo = []
    for unit in units.units:  # finished if journaled from the same input files and its outputs are unchanged
        try:
            found = journal.reusable(unit.key, unit.params, unit.inputs, unit.outputs)
        except OSError:
            found = MISSING
        reusable = reusable_values(found, columns_wanted)
        if reusable is not None:
            values[unit.name] = reusable
        else:
            todo.append(unit)
    reused = len(values)
    total = len(units.units)
    bar = tqdm(total=total, initial=total - len(todo), desc=stage, unit=units.progress_unit,
               disable=not options.progress, file=sys.stderr, dynamic_ncols=True)
    for failure in failures:
        bar.write(f"skipped {failure}", file=sys.stderr)

    def fail(name: str, error: BaseException) -> None:
        failures.append(Failure.of(name, error, stage))
        bar.write(f"skipped {name}: {describe_error(error)}", file=sys.stderr)
        bar.update(1)

    def write_outputs(result: UnitResult) -> None:
        unit = result.unit
        try:
            if unit.maps_path is not None:
                save_maps(unit.maps_path, result.maps)
            if unit.figure_path is not None and result.draw_figure is not None:
                result.draw_figure(unit.figure_path)
            journal.record_item(unit.key, result.values, unit.params, result.input_states, unit.outputs)
        except Exception as error:  # an output that cannot be written must not stop the run
            fail(unit.name, error)
            return
        values[unit.name] = result.values
        bar.update(1)

    exam_level = units.level == EXAM_LEVEL
    job = Job(units.level, images_dir, tuple(exams), batch_size=1 if exam_level else options.batch_size,
              maps=options.save_maps, figures=options.visualize and not exam_level,
              segmentations=options.segmentations, precision=options.precision)
    executor = options.executor or LocalExecutor()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mammoscreen-writer") as writer:
        writes: list[Future] = []
        try:
            for outcome in executor.run(predictor, job, todo):
                if isinstance(outcome, UnitFailure):
                    fail(outcome.unit.name, outcome.error)
                else:
                    writes.append(writer.submit(write_outputs, outcome))
        finally:
            for w in writes:
                w.result()
            bar.close()

    columns, rows = units.table(values)
    csv_path = output_dir / PREDICTIONS_CSV
    written = write_predictions_or_fail(csv_path, rows, columns, stage, failures)
    failure_columns, failure_rows = units.failure_table(failures)  # sorts failures in row order (the CSV's last)
    write_model_failures(output_dir / FAILURES_CSV, failure_rows, failure_columns)
    return PredictionRun(csv_path, rows, failures, reused=reused, csv_written=written)
