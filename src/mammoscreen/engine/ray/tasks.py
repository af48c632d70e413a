"""Per-image stages (crop, centres, DICOM conversion) as Ray tasks behind a ``concurrent.futures`` executor.

:func:`~mammoscreen.core.parallel_map.map_images` takes any ``concurrent.futures.Executor``: locally a
process pool, on Ray a :class:`RayTaskPool`. The journal, the failures and the stage's output files are
map_images' and the stage's own, whichever pool ran the calls. A task whose worker or node dies is run
again by Ray (``max_retries``); an exception raised by the stage's function is not retried - it is that
image's failure, as locally.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections import Counter
from typing import Any, Callable

from .session import import_ray

TASK_RETRIES = 3


def _call(func: Callable[[Any], Any], item: Any) -> tuple[str, Any]:
    import ray

    return ray.get_runtime_context().get_node_id(), func(item)


class RayTaskPool(concurrent.futures.Executor):
    """``submit(func, item)`` runs ``func(item)`` as a Ray task (one CPU each); the future holds its result.

    ``nodes`` counts the calls each Ray node ran (engine provenance).
    """

    def __init__(self, cpus_per_task: float = 1.0):
        ray = import_ray()
        self._remote = ray.remote(_call).options(num_cpus=cpus_per_task, max_retries=TASK_RETRIES,
                                                 retry_exceptions=False, scheduling_strategy="SPREAD")
        self._lock = threading.Lock()
        self.nodes: Counter = Counter()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future:
        ray = import_ray()
        if kwargs or len(args) != 1:
            raise TypeError("RayTaskPool.submit takes a function and one item")
        outer: concurrent.futures.Future = concurrent.futures.Future()
        inner = self._remote.remote(fn, args[0]).future()

        def done(future: concurrent.futures.Future) -> None:
            try:
                node, value = future.result()
            except ray.exceptions.RayTaskError as error:  # the function's own exception, as a local pool gives it
                cause = error.as_instanceof_cause()
                outer.set_exception(getattr(error, "cause", None) or cause)
                return
            except BaseException as error:  # noqa: BLE001 - handed to the caller through the future
                outer.set_exception(error)
                return
            with self._lock:
                self.nodes[node] += 1
            outer.set_result(value)

        inner.add_done_callback(done)
        return outer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to stop: the tasks belong to the Ray session."""
