"""A restricted unpickler for exam lists: plain data only, never code.

Exam lists travel between sites as pickles, and ``pickle.load`` on an untrusted file can run
arbitrary code. :func:`safe_load` accepts only what an exam list legitimately contains — lists,
tuples, dicts, sets, str, int, float, bool, None and numpy numeric scalars (which the official
preprocessing scripts write) — from any pickle protocol (0–5, including Python 2 pickles), and
raises :class:`UnsafePickleError` naming the offending global for anything else.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import collections
import io
import pickle
from typing import Any, BinaryIO

import numpy as np


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than plain data and was not loaded."""


# Numeric dtype kinds a scalar may have: bool, signed/unsigned int, float, complex.
_NUMERIC_KINDS = frozenset("biufc")


def _numpy_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"numpy dtype {spec!r} is not a plain numeric type")
    return np.dtype(spec, *args)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} is not a plain numeric type")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise UnsafePickleError("malformed numpy scalar in pickle")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8", *args: Any) -> bytes:
    # Protocols 0-2 store bytes objects (e.g. a numpy scalar's payload) as
    # _codecs.encode(<latin-1 str>, 'latin1').
    if not isinstance(text, str) or codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8"):
        raise UnsafePickleError("unexpected _codecs.encode call in pickle")
    return codecs.encode(text, encoding)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "dict"): dict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _codecs_encode,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles (protocols 0-2) name builtins '__builtin__' etc.; map them as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name}: exam lists may contain only lists, dicts, tuples, "
                "strings, numbers, booleans, None and numpy numeric scalars"
            ) from None


def safe_load(file: BinaryIO) -> Any:
    """Unpickle plain data from an open binary file, refusing any other object."""
    # encoding='latin1' lets Python 2 pickles' str objects (and numpy payloads) decode losslessly.
    return _RestrictedUnpickler(file, fix_imports=True, encoding="latin1").load()


def safe_loads(data: bytes) -> Any:
    """Unpickle plain data from bytes, refusing any other object."""
    return safe_load(io.BytesIO(data))
