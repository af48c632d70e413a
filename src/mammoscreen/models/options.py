"""Typed model options: each model declares a frozen dataclass of the settings it takes, with defaults.

:meth:`ModelOptions.parse` turns the CLI's ``KEY=VALUE`` strings (or typed values from Python) into that
dataclass, refusing keys the model does not take and values of the wrong kind with one clear line, so
neither the CLI nor the pipeline needs to know which model takes what. ``__post_init__`` of a model's
options checks ranges; :meth:`resolve_variant` may let an option choose the variant (DMV's patch weights).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

T = TypeVar("T", bound="ModelOptions")

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """A model without options. Subclasses add fields (name, type, default) and checks in ``__post_init__``."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def parse(cls: type[T], values: Mapping[str, Any], model: str) -> T:
        """The options of ``model`` from ``values`` (strings are converted to each field's type)."""
        if isinstance(values, cls):
            return values
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(f"model {model} has no option {', '.join(unknown)}; its options: "
                             f"{', '.join(cls.names()) or 'none'}")
        hints = typing.get_type_hints(cls)
        converted = {}
        for key, value in values.items():
            try:
                converted[key] = _convert(value, hints[key])
            except (TypeError, ValueError) as e:
                raise ValueError(f"option {key} of {model}: {e}") from None
        return cls(**converted)

    def resolve_variant(self, spec: Any, variant: str | None) -> str:
        """The variant to build: ``variant`` (default: the model's), which must be one of ``spec.variants``."""
        variant = str(variant or spec.default_variant)
        allowed = spec.variants or tuple(spec.weights)  # a model that lists no variants has one per weight file
        if variant not in allowed:
            raise ValueError(f"unknown {spec.name} variant {variant!r}; choose one of {', '.join(allowed)}")
        return variant

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _convert(value: Any, kind: Any) -> Any:
    """``value`` as ``kind`` (int, float, bool, str, Path, a union of these with None, or a dataclass)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in [a for a in args if a is not type(None)]:
            try:
                return _convert(value, option)
            except (TypeError, ValueError) as e:
                errors.append(str(e))
        raise ValueError("; ".join(errors))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"expected a yes/no value, got {value!r}")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            return int(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a whole number, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {value!r}")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)) or str(value) == "":
            raise ValueError(f"expected a path, got {value!r}")
        return Path(value)
    if isinstance(kind, type) and isinstance(value, kind):
        return value
    raise ValueError(f"expected a {getattr(kind, '__name__', kind)} (settable from Python only), got {value!r}")
