"""The limits every loader of untrusted input enforces, in one place.

A file of a few kilobytes must never make mammoscreen take gigabytes of memory or minutes of time: a pickle
that expands to a billion elements, a JSON list nested ten thousand levels deep, a PNG header declaring
19 000 x 19 000 pixels, a checkpoint whose zip entry inflates a thousandfold. Each loader in ``core`` checks
its input against these limits *before* it allocates, and refuses with :class:`InputLimitError`, whose
message names the limit and the environment variable that changes it.

Defaults are far above anything a real dataset needs (a full-field mammogram has 10-30 megapixels, an exam
list of 100 000 exams about 15 million elements). Change them per process with the environment variables
below, or in Python with :func:`set_limits` / :func:`limits_override`; ``mammoscreen --max-pixels N``
sets the pixel limit for one command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import BinaryIO, Iterator


class InputLimitError(ValueError):
    """An input exceeds one of the documented limits and was not loaded."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied to untrusted input (see the module docstring and docs/security.md)."""

    max_pixels: int = 100_000_000  # pixels of one image (rows x columns), checked from its header
    max_depth: int = 100  # nesting depth of a pickle or JSON document
    max_items: int = 50_000_000  # elements of a pickle, counting a shared container once per reference
    max_file_bytes: int = 1 << 30  # size of a pickle or JSON file, and of the text it expands to
    max_array_bytes: int = 8 << 30  # decoded bytes of all arrays in one checkpoint, HDF5 or .npz file
    max_expansion: int = 1000  # decoded / stored bytes of one compressed entry (beyond its first MiB)


# Environment variable of each limit.
ENVIRONMENT = {
    "max_pixels": "MAMMOSCREEN_MAX_PIXELS",
    "max_depth": "MAMMOSCREEN_MAX_DEPTH",
    "max_items": "MAMMOSCREEN_MAX_ITEMS",
    "max_file_bytes": "MAMMOSCREEN_MAX_FILE_BYTES",
    "max_array_bytes": "MAMMOSCREEN_MAX_ARRAY_BYTES",
    "max_expansion": "MAMMOSCREEN_MAX_EXPANSION",
}

DEFAULTS = Limits()
_override: Limits | None = None


def _from_environment() -> Limits:
    values = {}
    for name, variable in ENVIRONMENT.items():
        text = os.environ.get(variable, "").strip()
        if not text:
            continue
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise InputLimitError(f"{variable}={text!r} is not a whole number") from None
        if value < 1:
            raise InputLimitError(f"{variable} must be at least 1, got {value}")
        values[name] = value
    return dataclasses.replace(DEFAULTS, **values)


def get_limits() -> Limits:
    """The limits in force: those set by :func:`set_limits`, else the environment's, else the defaults."""
    return _override if _override is not None else _from_environment()


def set_limits(**changes: int) -> Limits:
    """Change limits for the rest of this process (e.g. ``set_limits(max_pixels=200_000_000)``).

    The new values are also exported to the environment, so that worker processes inherit them.
    """
    global _override
    for name, value in changes.items():
        if name not in ENVIRONMENT:
            raise TypeError(f"unknown limit {name!r}; limits: {', '.join(ENVIRONMENT)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputLimitError(f"limit {name} must be a whole number >= 1, got {value!r}")
    _override = dataclasses.replace(get_limits(), **changes)
    for name, value in changes.items():
        os.environ[ENVIRONMENT[name]] = str(value)
    return _override


@contextlib.contextmanager
def limits_override(**changes: int) -> Iterator[Limits]:
    """Apply ``changes`` within a ``with`` block (tests, notebooks), then restore the previous limits."""
    global _override
    saved_override = _override
    saved_env = {ENVIRONMENT[name]: os.environ.get(ENVIRONMENT[name]) for name in changes}
    try:
        yield set_limits(**changes)
    finally:
        _override = saved_override
        for variable, value in saved_env.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value


def limit_message(name: str) -> str:
    """How to change limit ``name``: appended to every :class:`InputLimitError` message."""
    return f"limit {name}={getattr(get_limits(), name):,}; raise it with {ENVIRONMENT[name]} if the file is genuine"


def check_pixels(rows: int, cols: int, source: str) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before it is decoded."""
    limit = get_limits().max_pixels
    if rows * cols > limit:
        raise InputLimitError(f"{source}: the image declares {cols} x {rows} pixels ({rows * cols / 1e6:.0f} MP), "
                              f"more than any mammogram; refused before decoding ({limit_message('max_pixels')}, "
                              "or pass --max-pixels)")


def check_expansion(stored: int, decoded: int, source: str) -> None:
    """Refuse a compressed entry that would inflate far beyond its stored size (a zip or HDF5 bomb)."""
    limits = get_limits()
    if decoded > (1 << 20) and decoded > limits.max_expansion * max(stored, 1):
        raise InputLimitError(f"{source}: {stored:,} stored bytes would decode to {decoded:,} "
                              f"(more than {limits.max_expansion}x; {limit_message('max_expansion')})")


def read_bounded(file: BinaryIO, source: str, limit: int | None = None) -> bytes:
    """The whole of an open binary file, refused once it exceeds ``limit`` (default ``max_file_bytes``).

    Read in chunks: ``file.read(limit)`` would allocate the whole limit up front, even for a tiny file.
    """
    limit = get_limits().max_file_bytes if limit is None else limit
    chunks, total = [], 0
    while chunk := file.read(1 << 20):
        total += len(chunk)
        if total > limit:
            raise InputLimitError(f"{source}: larger than {limit:,} bytes ({limit_message('max_file_bytes')})")
        chunks.append(chunk)
    return b"".join(chunks)
