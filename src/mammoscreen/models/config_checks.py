"""Checks of architecture settings that come from files (weight sidecars, model cards).

A sidecar claiming a 100 000 x 100 000 input, -3 patches or a top-t of 500 % must be refused when the
weights load, with the field and its allowed range, not discovered as an internal error on every image.
Every model config dataclass calls these from ``__post_init__``, so no invalid config can exist.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


class ConfigError(ValueError):
    """A model configuration field is outside its allowed range."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(value: Any, field: str, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise ConfigError(f"{field} must be a whole number from {low} to {high}, got {value!r}")


def check_fraction(value: Any, field: str) -> None:
    """A fraction in (0, 1] (top-t%, top-k% pooling)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= 1:
        raise ConfigError(f"{field} must be a fraction in (0, 1], got {value!r}")


def check_ints(values: Any, field: str, low: int, high: int, length: int | None = None,
               max_length: int = 16) -> None:
    """A tuple of whole numbers in [low, high], of ``length`` entries (or 1 to ``max_length``)."""
    if not isinstance(values, (tuple, list)) or (length is not None and len(values) != length) \
            or not 1 <= len(values) <= max_length:
        count = f"{length}" if length is not None else f"1 to {max_length}"
        raise ConfigError(f"{field} must be a list of {count} whole numbers from {low} to {high}, got {values!r}")
    for value in values:
        if not _is_int(value) or not low <= value <= high:
            raise ConfigError(f"{field} must hold whole numbers from {low} to {high}, got {values!r}")


def check_size_within(inner: Sequence[int], outer: Sequence[int], inner_field: str, outer_field: str) -> None:
    if any(i > o for i, o in zip(inner, outer)):
        raise ConfigError(f"{inner_field} {tuple(inner)} must fit inside {outer_field} {tuple(outer)}")


MAX_INPUT_SIDE = 16384
"""Largest input window side (the published models use 2944 x 1920)."""


def check_input_size(value: Any, field: str = "input_size") -> None:
    check_ints(value, field, 16, MAX_INPUT_SIDE, length=2)
