"""Running a per-image step over a whole dataset: workers, progress, resumability, bad images.

:func:`map_images` applies a function to each item, in parallel processes when asked, records every
finished result in a :class:`~mammoscreen.core.journal.Journal` with the content of its input and output
files (so an interrupted run resumes where it stopped, and a changed input is recomputed), and turns an
exception on one image into a reported :class:`Failure` instead of the end of the run.
"""

from __future__ import annotations

import functools
import sys
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .journal import MISSING, Journal, file_state
from .stages import Failure, StageReport, describe_error


def map_images(func: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str], *,
               journal: Journal | None = None, source_of: Callable[[str], Path] | None = None,
               outputs_of: Callable[[str], Sequence[Path]] | None = None,
               still_valid: Callable[[str], bool] | None = None, accept: Callable[[Any], bool] | None = None,
               workers: int = 1, desc: str = "images",
               progress: bool = True, stage: str | None = None,
               report: StageReport | None = None,
               pool: Executor | None = None) -> tuple[dict[str, Any], list[Failure]]:
    """Apply ``func`` to every item; return ({name: result}, failures).

    Items whose name is in ``journal`` are not run again and their recorded result is returned, as long
    as the item itself (its parameters), its input file (``source_of(name)``) and its output files
    (``outputs_of(name)``) have the content they had when it was recorded, and ``still_valid(name)``
    (if given) agrees, and the recorded result passes ``accept`` (if given: a result of the wrong shape,
    e.g. from a damaged or hand-edited journal, is recomputed rather than used). Anything else is run
    again. A failure is not journaled, so the next run retries it; failures caused by the machine (disk
    full, read-only) are marked ``io_error``.
    ``func`` must be picklable (a module-level function or a ``functools.partial`` of one) when
    ``workers > 1``. Items and results must be JSON-serialisable to be journaled. ``report`` (if given)
    is filled with the counts of the stage named ``stage`` (default ``desc``). ``pool`` (if given) runs the
    calls instead of a process pool of ``workers`` - e.g. the Ray engine's tasks - with ``2 * workers`` in
    flight; everything else (journal, failures, results) is the same whichever pool ran them.
    """
    if len(items) != len(names):
        raise ValueError("items and names must have the same length")
    stage = stage or desc
    report = report if report is not None else StageReport(stage)
    report.total += len(items)
    results: dict[str, Any] = {}
    failures: list[Failure] = []
    inputs_of = (lambda name: [source_of(name)]) if source_of else (lambda name: [])
    outputs = outputs_of or (lambda name: [])
    todo = []
    for item, name in zip(items, names):
        if journal is not None:
            try:
                value = journal.reusable(name, item, inputs_of(name), outputs(name))
            except OSError:  # an input that cannot even be hashed is run, and fails with its own message
                value = MISSING
            if value is not MISSING and (accept is None or accept(value)) \
                    and (still_valid is None or still_valid(name)):
                results[name] = value
                report.reused += 1
                continue
        todo.append((item, name))

    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="img",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)
    input_states: dict[str, list] = {}

    def fail(name: str, error: BaseException) -> None:
        failures.append(Failure.of(name, error, stage))
        bar.write(f"skipped {name}: {describe_error(error)}", file=sys.stderr)

    def start(item: Any, name: str) -> bool:
        """Note the inputs' content before the item runs (a change during the run is caught next time)."""
        if journal is None:
            return True
        try:
            input_states[name] = [file_state(p) for p in inputs_of(name)]
        except OSError as error:
            fail(name, error)
            bar.update(1)
            return False
        return True

    def finish(name: str, get_result: Callable[[], Any], item: Any) -> None:
        try:
            value = get_result()
            if journal is not None:
                journal.record_item(name, value, item, input_states.pop(name), outputs(name))
        except Exception as error:  # one bad image must not end the run
            fail(name, error)
        else:
            results[name] = value
            report.computed += 1
        bar.update(1)

    try:
        if pool is None and (workers <= 1 or len(todo) <= 1):
            for item, name in todo:
                if start(item, name):
                    finish(name, functools.partial(func, item), item)
        else:
            with pool or ProcessPoolExecutor(max_workers=workers) as pool:
                pending: dict[Future, tuple[Any, str]] = {}
                queue = iter(todo)

                def submit(count: int) -> None:
                    # A bounded number of tasks in flight, so results are journaled as they finish.
                    while count > 0:
                        taken = _take(queue, 1)
                        if not taken:
                            return
                        item, name = taken[0]
                        if start(item, name):
                            pending[pool.submit(func, item)] = (item, name)
                            count -= 1

                submit(2 * workers)
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        item, name = pending.pop(future)
                        finish(name, future.result, item)
                    submit(len(done))
    finally:
        bar.close()
    report.failures.extend(failures)
    ordered = {name: results[name] for name in names if name in results}
    return ordered, failures


def _take(iterator: Iterable[Any], count: int) -> list[Any]:
    out = []
    for _ in range(count):
        try:
            out.append(next(iterator))  # type: ignore[call-overload]
        except StopIteration:
            break
    return out
