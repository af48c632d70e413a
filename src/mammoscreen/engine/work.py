"""Work units and what runs them: the part of the engine that any executor (local or distributed) shares.

The engine cuts a run into :class:`WorkUnit` s (one image, or one exam for exam-level models) and hands
them, with the run-wide :class:`Job`, to an executor. Wherever a unit runs, a :class:`UnitRunner` loads
and preprocesses it, runs the model on a batch, checks that the outputs are finite numbers, and returns a
:class:`UnitResult` or a :class:`UnitFailure`. Writing files, journaling and the CSV stay with the engine
(:mod:`mammoscreen.engine.run`), so every executor gives the same files.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from ..core.files import atomic_write
from ..core.journal import file_state
from ..core.memory import keep_freed_memory
from ..data.exams import Exam, ImageRecord
from ..models.interfaces import ExamPredictor, Predictor
from .outputs import check_finite

IMAGE_LEVEL = "image"
EXAM_LEVEL = "exam"


@dataclass(frozen=True)
class WorkUnit:
    """One item of work: an image (image-level models) or an exam (exam-level models)."""

    name: str  # how failures and progress name it: the image name, or 'exam <index>'
    key: str  # its key in the prediction journal
    inputs: tuple[Path, ...]  # the files its result depends on (their state is taken before they are read)
    params: Any  # what its result depends on besides those files (journaled with it)
    record: ImageRecord | None = None  # image-level
    exam_index: int | None = None  # exam-level: its position in Job.exams
    maps_path: Path | None = None  # where its maps go, when maps are wanted
    figure_path: Path | None = None  # where its figure goes, when figures are wanted

    @property
    def outputs(self) -> list[Path]:
        return [p for p in (self.maps_path, self.figure_path) if p is not None]


@dataclass(frozen=True)
class Job:
    """What every unit of one run shares (small and picklable: it travels to distributed workers)."""

    level: str  # IMAGE_LEVEL or EXAM_LEVEL
    images_dir: Path
    exams: tuple[Exam, ...]  # the whole exam list: exam-level predictors plan their random streams over it
    batch_size: int = 1  # units per forward pass (always 1 for exam-level models)
    maps: bool = False
    figures: bool = False
    segmentations: Path | None = None  # masks the figures draw
    precision: str = "fp32"  # the forward's arithmetic: fp32, or bf16 / fp16 autocast (opt-in, approximate)


@dataclass
class UnitResult:
    """A unit that ran: finite prediction values, its maps, and how to draw its figure."""

    unit: WorkUnit
    values: dict[str, float]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    input_states: list = field(default_factory=list)  # journal file states of unit.inputs, taken before reading
    draw_figure: Callable[[Path], None] | None = None  # writes the figure (PNG) to the path it is given


@dataclass
class UnitFailure:
    """A unit that could not be loaded or predicted (the error's message goes to failures.csv)."""

    unit: WorkUnit
    error: BaseException


UnitOutcome = Union[UnitResult, UnitFailure]


@dataclass(frozen=True)
class FigureBytes:
    """A figure rendered where the unit ran (e.g. on a remote worker), written by the engine."""

    png: bytes

    def __call__(self, path: Path) -> None:
        with atomic_write(path, "wb") as f:
            f.write(self.png)


class UnitRunner:
    """Runs work units with one predictor: what an executor does with each unit, wherever it runs.

    Built once per predictor and job: exam-level predictors are planned over the job's exam list,
    image-level ones told which outputs are wanted. With ``figures_as_bytes`` figures are rendered at
    once into :class:`FigureBytes` (for executors whose results travel); otherwise they are drawn later
    by the engine's writer thread.
    """

    def __init__(self, predictor: Predictor | ExamPredictor, job: Job, figures_as_bytes: bool = False):
        self.predictor, self.job, self.figures_as_bytes = predictor, job, figures_as_bytes
        if getattr(getattr(predictor, "device", None), "type", "cpu") == "cpu":
            # Full-size activations without page faults, whatever other threads the process has (a Ray worker's
            # measured 15 % slower without it): see mammoscreen.core.memory.
            keep_freed_memory()
        if job.level == EXAM_LEVEL:
            if not isinstance(predictor, ExamPredictor):
                raise TypeError(f"{predictor.spec.name} is a breast-level model but its predictor is not an "
                                "ExamPredictor")
            predictor.plan(list(job.exams), job.images_dir)
        else:
            predictor.configure_outputs(maps=job.maps, figures=job.figures)  # type: ignore[union-attr]

    def load(self, unit: WorkUnit) -> tuple[Any, list]:
        """(prepared input, states of its input files); raises on a bad input."""
        states = [file_state(p) for p in unit.inputs]  # before reading: a change meanwhile is caught next time
        if self.job.level == EXAM_LEVEL:
            assert unit.exam_index is not None
            prepared = self.predictor.prepare(unit.exam_index, self.job.exams[unit.exam_index],  # type: ignore[call-arg]
                                              self.job.images_dir)
        else:
            prepared = self.predictor.prepare(unit.record, self.job.images_dir)  # type: ignore[call-arg]
        return prepared, states

    def run(self, batch: Sequence[tuple[WorkUnit, Any, list]]) -> list[UnitOutcome]:
        """Predict a batch of loaded units; a failing batch is run unit by unit to find the culprit."""
        try:
            with autocast(self.predictor, self.job.precision):
                if self.job.level == EXAM_LEVEL:
                    predictions = [self.predictor.predict_exam(prepared) for _, prepared, _ in batch]  # type: ignore
                else:
                    predictions = self.predictor.predict_batch([prepared for _, prepared, _ in batch])  # type: ignore
        except Exception as error:
            if len(batch) == 1:
                return [UnitFailure(batch[0][0], error)]
            return [out for item in batch for out in self.run([item])]
        return [self._result(unit, prepared, states, prediction)
                for (unit, prepared, states), prediction in zip(batch, predictions)]

    def process(self, units: Sequence[WorkUnit]) -> list[UnitOutcome]:
        """Load and run ``units`` in batches of ``job.batch_size``, one after the other (no prefetch)."""
        outcomes: list[UnitOutcome] = []
        batch: list[tuple[WorkUnit, Any, list]] = []
        for unit in units:
            try:
                batch.append((unit, *self.load(unit)))
            except Exception as error:
                outcomes.append(UnitFailure(unit, error))
            if len(batch) >= self.job.batch_size:
                outcomes += self.run(batch)
                batch = []
        return outcomes + (self.run(batch) if batch else [])

    def _result(self, unit: WorkUnit, prepared: Any, states: list, prediction: Any) -> UnitOutcome:
        try:
            values = check_finite(prediction.values)
            draw = None
            if self.job.figures and unit.figure_path is not None:
                draw = functools.partial(self.predictor.visualize, unit.record, prepared,  # type: ignore[union-attr]
                                         prediction, self.job.segmentations)
                if self.figures_as_bytes:
                    draw = FigureBytes(_render(draw))
        except Exception as error:
            return UnitFailure(unit, error)
        return UnitResult(unit, values, prediction.maps if self.job.maps else {}, states, draw)


PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def autocast(predictor: Any, precision: str) -> contextlib.AbstractContextManager:
    """The forward's arithmetic: nothing for fp32 (the official numbers); torch's autocast on the predictor's
    device for bf16 / fp16 (matmuls and convolutions in half precision, reductions in float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    import torch

    device = getattr(predictor, "device", None)
    device_type = device.type if isinstance(device, torch.device) else "cpu"
    return torch.autocast(device_type, dtype=getattr(torch, PRECISIONS[precision]))


def _render(draw: Callable[[Path], None]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="mammoscreen-figure-") as tmp:
        path = Path(tmp) / "figure.png"
        draw(path)
        return path.read_bytes()
