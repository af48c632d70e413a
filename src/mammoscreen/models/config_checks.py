"""Checks of architecture settings that come from files (weight sidecars, model cards).

A sidecar claiming a 100 000 x 100 000 input, -3 patches or a top-t of 500 % must be refused when the
weights load, with the field and its allowed range, not discovered as an internal error on every image.
Every model config dataclass calls these from ``__post_init__``, so no invalid config can exist.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence, TypeVar

C = TypeVar("C")


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


def check_region_crops(count: Any, size: Any, input_size: Sequence[int], count_field: str, size_field: str) -> None:
    """The regions a two-stage model crops from its input (GMIC's patches, GLAM's crops): 1-64 of them, each
    fitting inside the input."""
    check_int(count, count_field, 1, 64)
    check_ints(size, size_field, 1, 4096, length=2)
    check_size_within(size, input_size, size_field, "input_size")


def check_global_local_networks(config: Any) -> None:
    """The fields GMIC and GLAM share: classes, the global ResNet (channels, blocks, strides per stage) and the
    four-stage local ResNet."""
    check_int(config.num_classes, "num_classes", 1, 1000)
    check_int(config.global_channels, "global_channels", 1, 1024)
    check_ints(config.global_blocks, "global_blocks", 1, 64, max_length=8)
    check_ints(config.global_strides, "global_strides", 1, 4, length=len(config.global_blocks))
    check_int(config.local_channels, "local_channels", 1, 1024)
    check_ints(config.local_blocks, "local_blocks", 1, 64, length=4)


def config_from_dict(cls: type[C], data: Mapping[str, Any], model: str) -> C:
    """A frozen config dataclass from plain data (a sidecar, a model card): JSON lists become tuples; unknown
    fields and a non-mapping raise :class:`ConfigError` (the dataclass checks the values)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a {model} config must be a mapping of field -> value, got {type(data).__name__}")
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {model} config field(s) {', '.join(unknown)}; fields: {', '.join(fields)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
