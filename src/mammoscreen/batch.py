"""Running a per-image step over a whole dataset: workers, progress, resumability, bad images.

:func:`map_images` applies a function to each item, in parallel processes when asked, records every
finished result in a :class:`~mammoscreen.files.Journal` (so an interrupted run resumes where it
stopped), and turns an exception on one image into a reported :class:`Failure` instead of the end of
the run.
"""

from __future__ import annotations

import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from tqdm.auto import tqdm

from .files import Journal, file_signature


@dataclass(frozen=True)
class Failure:
    """An item that could not be processed, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def describe_error(error: BaseException) -> str:
    """One line for a user: the exception's message, with its type when the message is bare."""
    message = str(error).strip() or type(error).__name__
    return message if isinstance(error, (OSError, ValueError)) else f"{type(error).__name__}: {message}"


def map_images(func: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str], *,
               journal: Journal | None = None, source_of: Callable[[str], Path] | None = None,
               still_valid: Callable[[str], bool] | None = None, workers: int = 1, desc: str = "images",
               progress: bool = True) -> tuple[dict[str, Any], list[Failure]]:
    """Apply ``func`` to every item; return ({name: result}, failures).

    Items whose name is already in ``journal`` are not run again and their recorded result is returned,
    unless their input file (``source_of(name)``) changed since (size or modification time), or
    ``still_valid(name)`` is false (e.g. their output file was deleted).
    ``func`` must be picklable (a module-level function or a ``functools.partial`` of one) when
    ``workers > 1``. Results must be JSON-serialisable to be journaled.
    """
    if len(items) != len(names):
        raise ValueError("items and names must have the same length")
    results: dict[str, Any] = {}
    failures: list[Failure] = []
    todo = []
    signatures = {name: file_signature(source_of(name)) if source_of else None for name in names}
    for item, name in zip(items, names):
        entry = journal.entries.get(name) if journal is not None else None
        if (entry is not None and entry["source"] == signatures[name]
                and (still_valid is None or still_valid(name))):
            results[name] = entry["result"]
        else:
            todo.append((item, name))

    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=desc, unit="img",
               disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def finish(name: str, get_result: Callable[[], Any]) -> None:
        try:
            value = get_result()
        except Exception as error:  # one bad image must not end the run
            failures.append(Failure(name, describe_error(error)))
            bar.write(f"skipped {name}: {describe_error(error)}", file=sys.stderr)
        else:
            results[name] = value
            if journal is not None:
                journal.record(name, {"result": value, "source": signatures[name]})
        bar.update(1)

    try:
        if workers <= 1 or len(todo) <= 1:
            for item, name in todo:
                finish(name, lambda item=item: func(item))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                pending: dict[Future, str] = {}
                queue = iter(todo)
                # Keep a bounded number of tasks in flight so results are journaled as they finish.
                for item, name in _take(queue, 2 * workers):
                    pending[pool.submit(func, item)] = name
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        finish(pending.pop(future), future.result)
                    for item, name in _take(queue, len(done)):
                        pending[pool.submit(func, item)] = name
    finally:
        bar.close()
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
