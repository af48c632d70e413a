"""Executors: how the work units of a run are run. The engine gives units and takes outcomes in any order.

An executor implements :class:`Executor`. :class:`LocalExecutor` runs them in this process; a distributed
executor builds its own predictors on its workers from the predictor's :class:`PredictorRequest`
(:func:`mammoscreen.models.factory.request_of`) and runs the same :class:`~mammoscreen.engine.work.UnitRunner`
there, so journal, outputs and CSV stay the engine's and are identical whichever executor ran the units.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterator, Protocol, Sequence

from ..models.interfaces import ExamPredictor, Predictor
from .work import Job, UnitFailure, UnitOutcome, UnitRunner, WorkUnit


class Executor(Protocol):
    """Runs work units: one :class:`UnitResult` or :class:`UnitFailure` per unit, in any order."""

    def run(self, predictor: Predictor | ExamPredictor, job: Job, units: Sequence[WorkUnit]) -> Iterator[UnitOutcome]:
        """Run every unit of ``units`` for ``job``; ``predictor`` is the one the engine was given."""
        ...


class LocalExecutor:
    """Runs the units in this process with the engine's predictor: while the model runs on one batch, the
    next units are loaded and preprocessed in a background thread (``2 * batch_size`` in flight)."""

    def run(self, predictor: Predictor | ExamPredictor, job: Job, units: Sequence[WorkUnit]) -> Iterator[UnitOutcome]:
        if not units:
            return
        yield from run_units(UnitRunner(predictor, job), units)


LOADER_THREADS_CUDA = 4


def loading_plan(runner: UnitRunner) -> tuple[int, int]:
    """(units loaded ahead of the forward, loader threads) for ``runner``: ``2 * batch_size`` ahead; on a GPU,
    PNG decoding and preprocessing must keep up with the forward, so several loader threads (the decoders
    release the GIL); on the CPU the forward takes the cores, so one."""
    device = getattr(runner.predictor, "device", None)
    threads = LOADER_THREADS_CUDA if getattr(device, "type", "cpu") == "cuda" else 1
    return max(2, 2 * runner.job.batch_size, 2 * threads), threads


def run_units(runner: UnitRunner, units: Sequence[WorkUnit]) -> Iterator[UnitOutcome]:
    """Load ``units`` in the background (:func:`loading_plan`) while ``runner`` predicts them in batches of
    ``batch_size``: the loop of every executor, wherever its runner lives (this process, a Ray actor)."""
    depth, threads = loading_plan(runner)
    yield from run_loaded(runner, prefetch(runner.load, units, depth=depth, threads=threads))


def run_loaded(runner: UnitRunner, loaded: Iterator[tuple[WorkUnit, Future]]) -> Iterator[UnitOutcome]:
    """Predict units as they come loaded - (unit, future of ``runner.load(unit)``) in order - in batches of
    ``batch_size``; a unit that failed to load is a failure, the others go on."""
    batch_size = runner.job.batch_size
    batch: list[tuple[WorkUnit, Any, list]] = []
    for unit, future in loaded:
        try:
            batch.append((unit, *future.result()))
        except Exception as error:
            yield UnitFailure(unit, error)
        if len(batch) >= batch_size:
            yield from runner.run(batch)
            batch = []
    if batch:
        yield from runner.run(batch)


def prefetch(call: Callable[[Any], Any], items: Sequence[Any], depth: int,
             threads: int = 1) -> Iterator[tuple[Any, Future]]:
    """Yield (item, future of call(item)) in order, keeping ``depth`` calls in flight in ``threads`` threads."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mammoscreen-loader") as pool:
        pending: deque[tuple[Any, Future]] = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(call, item)))
            if len(pending) >= depth:
                break
        while pending:
            yield pending.popleft()
            item = next(it, None)
            if item is not None:
                pending.append((item, pool.submit(call, item)))
