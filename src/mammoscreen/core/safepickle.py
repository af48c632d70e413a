"""A restricted unpickler: plain data only, never code, and never more memory or time than the file justifies.

Exam lists and reader-study tables travel between sites as pickles, and ``pickle.load`` on an untrusted file
can run arbitrary code. :func:`safe_loads` accepts only what such files legitimately contain - lists,
tuples, dicts, sets, str, bytes, int, float, bool, None and numpy numeric scalars (which the official
preprocessing scripts write) - from any pickle protocol (0-5, including Python 2 pickles), and raises
:class:`UnsafePickleError` naming the offending global for anything else.

Refusing code is not enough: a pickle of a few dozen bytes can still ask for gigabytes. Three checks bound
what a file can cost (limits in :mod:`mammoscreen.core.limits`):

1. before loading, a scan of the opcodes (:mod:`mammoscreen.core.pickle_scan`: linear in the file size,
   nothing built) refuses memo indices beyond those defined so far (the C unpickler would grow its memo
   table to the index) and frames longer than the file;
2. while loading, the only callables reachable are small wrappers that check their arguments
   (``bytearray(10**10)`` is refused, not allocated) and cannot be modified by ``BUILD``; ``BUILD`` on a
   list or dict is reported as such;
3. after loading, one pass over the object graph (each distinct container visited once) measures the
   nesting depth, the number of elements and the string bytes *as a consumer walking the data would see
   them*, counting a container referenced n times n times - the "billion laughs" of memo references is
   refused here, before any code copies it - and refuses cycles.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

from .limits import InputLimitError, get_limits, limit_message, read_bounded
from .pickle_scan import MalformedPickleError, UnsafePickleError, scan_opcodes, tree_scan


# ----------------------------------------------------------------------------------------------
# The callables a pickle may reach
# ----------------------------------------------------------------------------------------------

class SafeCallable:
    """An allow-listed callable as the unpickler hands it out: ``BUILD`` cannot set its attributes (no
    ``__dict__``, ``__setattr__`` refused), so one file cannot change how the next one is loaded."""

    __slots__ = ("_function", "_name")
    _function: Callable[..., Any]
    _name: str

    def __init__(self, function: Callable[..., Any], name: str):
        object.__setattr__(self, "_function", function)
        object.__setattr__(self, "_name", name)

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)

    def __setattr__(self, name: str, value: Any) -> None:
        raise UnsafePickleError(f"the pickle tries to modify {self._name} (BUILD on a global)")

    def __repr__(self) -> str:
        return f"<allowed {self._name}>"


# Numeric dtype kinds a scalar may have: bool, signed/unsigned int, float, complex.
NUMERIC_KINDS = frozenset("biufc")


def _numpy_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in NUMERIC_KINDS:
        raise UnsafePickleError(f"numpy dtype {spec!r} is not a plain numeric type")
    return np.dtype(spec, *args[:2])


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.kind not in NUMERIC_KINDS or dtype.fields or dtype.subdtype:
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} is not a plain numeric type")
    if isinstance(data, str):  # Python 2 pickles store the payload as a (latin-1) str
        data = data.encode("latin-1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise UnsafePickleError("malformed numpy scalar in pickle")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


def _codecs_encode(text: Any, encoding: str = "utf-8", *args: Any) -> bytes:
    # Protocols 0-2 store bytes objects (e.g. a numpy scalar's payload) as
    # _codecs.encode(<latin-1 str>, 'latin1').
    if (not isinstance(text, str) or not isinstance(encoding, str)
            or codecs.lookup(encoding).name not in ("latin-1", "iso8859-1", "utf-8")):
        raise UnsafePickleError("unexpected _codecs.encode call in pickle")
    return codecs.encode(text, encoding)


def _bytearray(*args: Any) -> bytearray:
    # Protocols 0-4 pickle a bytearray as bytearray(<bytes>) or bytearray(<str>, 'latin-1'); never a length.
    if not args:
        return bytearray()
    if isinstance(args[0], (bytes, bytearray)) and len(args) == 1:
        return bytearray(args[0])
    if isinstance(args[0], str) and len(args) == 2 and isinstance(args[1], str):
        return bytearray(_codecs_encode(args[0], args[1]))
    raise UnsafePickleError(f"bytearray({', '.join(type(a).__name__ for a in args)}) in pickle: a bytearray is "
                            "pickled with its contents, never a length (a length would allocate memory the "
                            "file does not contain)")


def _plain_constructor(kind: type) -> Callable[..., Any]:
    def construct(*args: Any) -> Any:
        if len(args) > 1 or (args and not isinstance(args[0], (list, tuple, dict, set, frozenset, str, bytes))):
            raise UnsafePickleError(f"{kind.__name__}() called with unexpected arguments in pickle")
        return kind(*args)
    return construct


def _complex(*args: Any) -> complex:
    if len(args) > 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise UnsafePickleError("complex() called with unexpected arguments in pickle")
    return complex(*args)


def _global(module: str, name: str, function: Callable[..., Any]) -> tuple[tuple[str, str], SafeCallable]:
    return (module, name), SafeCallable(function, f"{module}.{name}")


PLAIN_GLOBALS: dict[tuple[str, str], Any] = dict([
    _global("builtins", "list", _plain_constructor(list)),
    _global("builtins", "tuple", _plain_constructor(tuple)),
    _global("builtins", "dict", _plain_constructor(dict)),
    _global("builtins", "set", _plain_constructor(set)),
    _global("builtins", "frozenset", _plain_constructor(frozenset)),
    _global("builtins", "bytes", _plain_constructor(bytes)),  # protocols 0-2: b'' is bytes()
    _global("builtins", "bytearray", _bytearray),
    _global("builtins", "complex", _complex),
    _global("collections", "OrderedDict", _plain_constructor(dict)),
    _global("_codecs", "encode", _codecs_encode),
    _global("numpy", "dtype", _numpy_dtype),
    _global("numpy.core.multiarray", "scalar", _numpy_scalar),
    _global("numpy._core.multiarray", "scalar", _numpy_scalar),
])
"""The globals an exam list (plain data) may name: (module, name) -> the safe stand-in."""

PLAIN_DATA = ("lists, dicts, tuples, strings, numbers, booleans, None and numpy numeric scalars")


# ----------------------------------------------------------------------------------------------
# 2. Loading
# ----------------------------------------------------------------------------------------------

class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, allowed: Mapping[tuple[str, str], Any], what: str, source: str):
        super().__init__(file, fix_imports=True, encoding="latin1")
        self._allowed = allowed
        self._what = what
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles (protocols 0-2) name builtins '__builtin__' etc.; map them as pickle does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return self._allowed[(module, name)]
        except (KeyError, TypeError):
            raise UnsafePickleError(f"{self._source}: refusing to load {module}.{name}: {self._what}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: the pickle refers to an external object (persistent id); "
                                f"{self._what}")


def _read_limited(file: BinaryIO, source: str) -> bytes:
    try:
        return read_bounded(file, source)
    except InputLimitError as e:
        raise UnsafePickleError(str(e)) from None


def unpickle(data: bytes, *, allowed: Mapping[tuple[str, str], Any] = PLAIN_GLOBALS, what: str = "",
             source: str = "pickle", scanned: bool = False) -> Any:
    """Scan (unless ``scanned`` says :func:`scan_opcodes` or :func:`tree_scan` ran), then load ``data`` with only
    the ``allowed`` globals; no limit check of the result (see :func:`check_structure`). ``what`` says what the
    file may contain, for the refusal message."""
    what = what or f"only {PLAIN_DATA} are accepted"
    limit = get_limits().max_file_bytes
    if len(data) > limit:
        raise UnsafePickleError(f"{source}: larger than {limit:,} bytes ({limit_message('max_file_bytes')})")
    if not scanned:
        scan_opcodes(data, source)
    try:
        return _RestrictedUnpickler(io.BytesIO(data), allowed, what, source).load()
    except UnsafePickleError as e:
        if str(e).startswith(f"{source}:"):
            raise
        raise UnsafePickleError(f"{source}: {e}") from None  # refused by one of the allowed callables
    except AttributeError as e:
        # BUILD (set an object's state) on a list, dict or other object without attributes.
        raise MalformedPickleError(f"{source}: the pickle sets the state of an object that has none (BUILD on a "
                                   f"list, dict or number: {e}); plain data never does that") from None
    except RecursionError:
        raise UnsafePickleError(f"{source}: nested too deeply to load ({limit_message('max_depth')})") from None
    except MemoryError:
        raise UnsafePickleError(f"{source}: loading it would exhaust the memory") from None
    except Exception as e:  # the unpickler raises many types for malformed input
        raise MalformedPickleError(f"{source}: not a readable pickle ({type(e).__name__}: {e})") from None


def safe_loads(data: bytes, *, source: str = "pickle") -> Any:
    """Unpickle plain data from bytes, refusing any other object and any input beyond the limits."""
    limit = get_limits().max_file_bytes
    if len(data) > limit:
        raise UnsafePickleError(f"{source}: larger than {limit:,} bytes ({limit_message('max_file_bytes')})")
    is_tree = tree_scan(data, source)  # also makes the refusals of scan_opcodes
    obj = unpickle(data, source=source, scanned=True)
    if not is_tree:  # shared containers or a layout the scan does not follow: measure what was built
        check_structure(obj, source)
    return obj


def safe_load(file: BinaryIO, *, source: str | None = None) -> Any:
    """Unpickle plain data from an open binary file (read whole, up to ``max_file_bytes``)."""
    source = source or str(getattr(file, "name", "pickle"))
    return safe_loads(_read_limited(file, source), source=source)


def load_pickle(path: str | Path) -> Any:
    """Unpickle plain data from a file."""
    path = Path(path)
    with open(path, "rb") as f:
        return safe_load(f, source=str(path))


# ----------------------------------------------------------------------------------------------
# 3. The structure check
# ----------------------------------------------------------------------------------------------

_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None), np.generic)
_SCALAR_TYPES = frozenset({str, bytes, int, float, bool, type(None)})


def _raise_expansion(source: str, frame: list[Any], limits: Any) -> None:
    if frame[3] > limits.max_items:
        raise UnsafePickleError(f"{source}: expands to more than {limits.max_items:,} elements (shared references "
                                f"counted each time they are used; {limit_message('max_items')})")
    raise UnsafePickleError(f"{source}: its strings expand to more than {limits.max_file_bytes:,} bytes (shared "
                            f"references counted each time they are used; {limit_message('max_file_bytes')})")


def children(obj: Any) -> Any:
    """The values a container holds (keys too for dicts); None for a scalar. Stand-in objects of other
    loaders (pickled tables) expose theirs with a ``pickle_children()`` method."""
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, np.ndarray):
        return obj.ravel().tolist() if obj.dtype.kind == "O" else None
    method = getattr(type(obj), "pickle_children", None)
    if method is not None:
        return method(obj)
    return None


def _leaf_bytes(obj: Any) -> int:
    if isinstance(obj, (str, bytes, bytearray)):
        return len(obj)
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    return 8


def check_structure(root: Any, source: str = "pickle") -> tuple[int, int]:
    """(depth, elements) of a loaded object graph, refusing cycles and anything beyond the limits.

    Shared containers count once per reference (that is what a consumer copying the data sees), but each
    distinct container is walked only once, so the check costs time linear in the file, not in the
    expansion it refuses.
    """
    limits = get_limits()
    measured: dict[int, tuple[int, int, int]] = {}  # id -> (depth, elements, bytes) of a finished container
    on_path: set[int] = set()
    root_children = children(root)
    if root_children is None:
        return 0, 1
    # Each frame: [object, iterator over its children, depth so far, elements so far, bytes so far].
    stack: list[list[Any]] = [[root, iter(root_children), 0, 1, 0]]
    on_path.add(id(root))
    while stack:
        frame = stack[-1]
        for child in frame[1]:
            kind = type(child)
            if kind in _SCALAR_TYPES:  # the common case, without the generic lookups below
                frame[3] += 1
                frame[4] += len(child) if kind is str or kind is bytes else 8
                if frame[3] > limits.max_items or frame[4] > limits.max_file_bytes:
                    _raise_expansion(source, frame, limits)
                continue
            grand = None if isinstance(child, _SCALARS) else children(child)
            if grand is None:
                frame[3] += 1
                frame[4] += _leaf_bytes(child)
            elif id(child) in measured:
                depth, elements, size = measured[id(child)]
                frame[2] = max(frame[2], depth)
                frame[3] += elements
                frame[4] += size
            elif id(child) in on_path:
                raise UnsafePickleError(f"{source}: a container holds itself (a reference cycle); plain data "
                                        "never does")
            else:
                if len(stack) >= limits.max_depth:
                    raise UnsafePickleError(f"{source}: nested more than {limits.max_depth} levels deep "
                                            f"({limit_message('max_depth')})")
                on_path.add(id(child))
                stack.append([child, iter(grand), 0, 1, 0])
                break
            if frame[3] > limits.max_items or frame[4] > limits.max_file_bytes:
                _raise_expansion(source, frame, limits)
        else:
            stack.pop()
            obj, _, depth, elements, size = frame
            on_path.discard(id(obj))
            measured[id(obj)] = (depth + 1, elements, size)
            if stack:
                parent = stack[-1]
                parent[2] = max(parent[2], depth + 1)
                parent[3] += elements
                parent[4] += size
                if parent[3] > limits.max_items or parent[4] > limits.max_file_bytes:
                    _raise_expansion(source, parent, limits)
            else:
                return depth + 1, elements
    raise AssertionError("unreachable")  # pragma: no cover
