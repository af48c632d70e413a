"""The engine's files: predictions.csv in a fixed column order, maps .npz, and the per-model failures.csv.

Every write is atomic (:mod:`mammoscreen.core.files`), so a crash never leaves half a file behind.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..core.files import atomic_write, write_text_atomic
from ..core.stages import Failure

PREDICTIONS_CSV = "predictions.csv"
FAILURES_CSV = "failures.csv"
MAPS_DIR = "maps"
VISUALIZATION_DIR = "visualization"
EXAM_INDEX_COLUMN = "exam_index"


def label_column(prediction_column: str) -> str:
    """'malignant_pred' -> 'malignant_label'."""
    stem = prediction_column[: -len("_pred")] if prediction_column.endswith("_pred") else prediction_column
    return stem + "_label"


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


def reusable_values(found: Any, columns: Sequence[str]) -> dict[str, float] | None:
    """A journaled prediction if it has exactly the model's columns and finite numbers (else recompute)."""
    if not isinstance(found, dict) or set(found) != set(columns) \
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in found.values()):
        return None
    try:
        return check_finite(found)
    except NonFiniteOutputError:
        return None


def write_model_failures(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The per-model list of failures (the run's failures.csv has every stage); best effort on a disk that refuses."""
    with contextlib.suppress(OSError):
        if rows:
            write_predictions_csv(path, rows, columns)
        elif path.exists():
            path.unlink()


def write_predictions_or_fail(csv_path: Path, rows: list[dict[str, Any]], columns: Sequence[str], stage: str,
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
