"""Timing helpers shared by the benchmark scripts (run as ``python benchmarks/bench_*.py``, so this folder is on
the import path)."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_time(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """(best wall-clock seconds, the last result) over ``repeats`` calls of ``function``: the least disturbed run."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def best_of(repeats: int, function: Callable[[], Any]) -> float:
    """The best wall-clock seconds of ``repeats`` calls of ``function``."""
    return best_time(function, repeats)[0]
