"""Input checks shared by the metric functions: labels that are 0/1, scores that are finite.

Every check raises :class:`EvaluationInputError` (a ``ValueError``) with a message that says what is
wrong, where, and what to do; ``where`` names the file or column the arrays came from.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class EvaluationInputError(ValueError):
    """Predictions, labels or reader scores that cannot be evaluated as given."""


def _prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


def _positions(mask: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:limit])
    return shown + (f", ... ({idx.size} in all)" if idx.size > limit else "")


def check_labels(y_true: Any, name: str = "y_true", where: str | None = None) -> np.ndarray:
    """1-D int8 array of 0/1 labels; booleans and the floats 0.0/1.0 are accepted."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise EvaluationInputError(f"{_prefix(where)}{name} must be one-dimensional, got shape {y.shape}")
    if y.size == 0:
        raise EvaluationInputError(f"{_prefix(where)}{name} is empty: there is nothing to evaluate")
    if y.dtype == bool:
        return y.astype(np.int8)
    if y.dtype.kind not in "iuf":
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            raise EvaluationInputError(
                f"{_prefix(where)}{name} must hold the labels 0 and 1, got values such as "
                f"{list(dict.fromkeys(y.tolist()))[:5]}") from None
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        examples = list(dict.fromkeys(y[bad].tolist()))[:5]
        raise EvaluationInputError(
            f"{_prefix(where)}{name} must hold only the labels 0 and 1, but has {examples} at positions "
            f"{_positions(bad)}; fix those rows (missing labels cannot be evaluated)")
    return y.astype(np.int8)


def check_scores(y_score: Any, n: int | None = None, name: str = "y_score",
                 where: str | None = None, ndim: int = 1) -> np.ndarray:
    """Float64 array of finite scores (``ndim`` 1, or 2 for one row per predictor) of length ``n``."""
    s = np.asarray(y_score)
    if s.ndim != ndim:
        expected = "one-dimensional" if ndim == 1 else f"{ndim}-dimensional"
        raise EvaluationInputError(f"{_prefix(where)}{name} must be {expected}, got shape {s.shape}")
    if s.dtype.kind not in "iufb":
        try:
            s = s.astype(np.float64)
        except (TypeError, ValueError):
            raise EvaluationInputError(f"{_prefix(where)}{name} must be numbers") from None
    s = s.astype(np.float64, copy=False)
    if n is not None and s.shape[-1] != n:
        raise EvaluationInputError(
            f"{_prefix(where)}{name} has {s.shape[-1]} values but there are {n} labels; they must match "
            "one to one")
    finite = np.isfinite(s)
    if not finite.all():
        bad = ~finite.reshape(-1, s.shape[-1]).all(axis=0)
        kinds = sorted({"NaN" if np.isnan(v) else "inf" for v in s[~finite]})
        raise EvaluationInputError(
            f"{_prefix(where)}{name} contains {' and '.join(kinds)} at positions {_positions(bad)}; every "
            "case needs a finite score (re-run the model on those cases or remove them from the list)")
    return s


def check_binary_problem(y_true: Any, y_score: Any, where: str | None = None,
                         label_name: str = "y_true", score_name: str = "y_score",
                         score_ndim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels, scores) with both classes present."""
    y = check_labels(y_true, label_name, where)
    s = check_scores(y_score, y.size, score_name, where, ndim=score_ndim)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "positive (1)" if n_pos else "negative (0)"
        raise EvaluationInputError(
            f"{_prefix(where)}all {y.size} cases in {label_name} are {only}: ROC and precision-recall "
            "metrics need both positive and negative cases")
    return y, s


def check_probabilities(y_prob: np.ndarray, name: str = "y_prob", where: str | None = None) -> None:
    """Raise unless every value lies in [0, 1] (calibration needs probabilities, not scores)."""
    bad = (y_prob < 0) | (y_prob > 1)
    if bad.any():
        raise EvaluationInputError(
            f"{_prefix(where)}{name} must be probabilities in [0, 1] for calibration, but has values such as "
            f"{y_prob[bad][:3].tolist()} at positions {_positions(bad)}")


def check_fraction(value: float, name: str) -> float:
    """``value`` as a float in [0, 1]."""
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise EvaluationInputError(f"{name} must lie between 0 and 1, got {value}")
    return value
