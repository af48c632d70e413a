"""Tables pickled by pandas (``DataFrame.to_pickle``), read without pandas' unpickler and without running code.

The meta-repository's reader-study ``results.pkl`` is a pickled DataFrame. Unpickling it the usual way
imports and calls whatever the file names, so a crafted file runs code. Here the file goes through the
restricted unpickler of :mod:`mammoscreen.core.safepickle`, where the few globals such a pickle names -
``DataFrame``, ``BlockManager``, ``_unpickle_block``, numpy's array reconstructors, ``Index``/``RangeIndex``,
pandas' ``StringArray`` - are inert stand-ins that only record their arguments. After loading, the
stand-ins are checked and turned into plain columns (:class:`PickledTable`): names, one 1-D numpy array per
column (numbers, or Python objects such as strings), and the row index. Anything else (categorical or
datetime columns, multi-indexes, other classes) is refused with a message suggesting CSV.

Layouts understood: pandas >= 1.4 (``BlockManager(blocks, axes)`` with ``_unpickle_block``) and the older
``BlockManager.__setstate__`` layout (the ``'0.14.1'`` state of pandas 0.14 to 1.x), any pickle protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from .limits import InputLimitError, get_limits, limit_message, read_bounded
from .safepickle import (NUMERIC_KINDS, PLAIN_GLOBALS, MalformedPickleError, SafeCallable, UnsafePickleError,
                         check_structure, unpickle)

TABLE_CONTENTS = ("only pandas DataFrames of numbers and strings (and plain data) are accepted; save the table "
                  "with DataFrame.to_csv and read the CSV instead")


class TableError(MalformedPickleError):
    """A pickled table has a layout or column type this reader does not accept."""


@dataclass
class PickledTable:
    """A DataFrame's contents as plain data: column names, one array per column, the row labels."""

    columns: list[Any]
    data: list[np.ndarray]
    index: np.ndarray | range
    index_name: Any = None


# ----------------------------------------------------------------------------------------------
# Stand-ins
# ----------------------------------------------------------------------------------------------

class _Frozen(type):
    """Metaclass of the stand-ins: a pickle cannot change them (``BUILD`` on a class sets attributes)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise UnsafePickleError(f"the pickle tries to modify {cls.__name__} (BUILD on a class)")


class _Stub(metaclass=_Frozen):
    """Base of the stand-ins: records constructor arguments and the state ``BUILD`` gives it."""

    args: tuple[Any, ...] = ()  # also for objects created by NEWOBJ, which skips __init__
    state: Any = None

    def __init__(self, *args: Any):
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        if self.state is not None:
            raise UnsafePickleError("the pickle sets the state of one object twice")
        self.state = state

    def pickle_children(self) -> list[Any]:
        return [*self.args, self.state]


class _Marker(metaclass=_Frozen):
    """A class named by the pickle only as an argument (``numpy.ndarray``, ``pandas.Index``...)."""

    kind = "marker"

    def __init__(self, *args: Any):
        raise UnsafePickleError(f"the pickle instantiates {self.kind} directly")


def _marker(kind: str) -> type:
    return type(f"{kind}Marker", (_Marker,), {"kind": kind})


NDArrayMarker = _marker("ndarray")
IndexMarker = _marker("Index")
RangeIndexMarker = _marker("RangeIndex")
StringArrayMarker = _marker("StringArray")


class FrameStub(_Stub):
    """``pandas.DataFrame`` (created by NEWOBJ or ``copyreg._reconstructor``, filled by BUILD)."""


class ManagerStub(_Stub):
    """``pandas...BlockManager``: called with (blocks, axes), or created empty and given the old state."""


class BlockStub(_Stub):
    """``_unpickle_block(values, placement, ndim)``."""


class IndexStub(_Stub):
    """``_new_Index(cls, attributes)``."""


class BackedArrayStub(_Stub):
    """``__pyx_unpickle_NDArrayBacked(cls, checksum, state)``: an extension array over a numpy array."""


class StringDtypeStub(_Stub):
    """``pandas.StringDtype(storage, na_value)``."""


class ArrayStub(_Stub):
    """``numpy.core.multiarray._reconstruct(ndarray, shape, dtype)``, filled by BUILD with the array's state."""


_ARRAY_KINDS = NUMERIC_KINDS | {"O", "U", "S"}


def _table_dtype(spec: Any, *args: Any) -> np.dtype:
    dtype = np.dtype(spec) if isinstance(spec, str) else None
    if dtype is None or dtype.kind not in _ARRAY_KINDS:
        raise TableError(f"numpy dtype {spec!r} is not numbers, strings or objects; {TABLE_CONTENTS}")
    return np.dtype(spec, *args[:2])


def _check_shape(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) > 2:
        raise TableError(f"{where}: array shape {shape!r} is not 1-D or 2-D")
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape):
        raise TableError(f"{where}: array shape {shape!r} is not made of non-negative integers")
    return tuple(shape)


def _array_from(shape: Any, dtype: Any, fortran: Any, raw: Any, where: str) -> np.ndarray:
    shape = _check_shape(shape, where)
    if not isinstance(dtype, np.dtype) or dtype.kind not in _ARRAY_KINDS or dtype.fields or dtype.subdtype:
        raise TableError(f"{where}: arrays of dtype {dtype!r} are not accepted; {TABLE_CONTENTS}")
    count = int(np.prod(shape, dtype=np.int64))
    limits = get_limits()
    order: Literal["C", "F"] = "F" if fortran else "C"
    if dtype.kind == "O":
        if count > limits.max_items:
            raise UnsafePickleError(f"{where}: an object array of {count:,} elements ({limit_message('max_items')})")
        if not isinstance(raw, list) or len(raw) != count:
            raise TableError(f"{where}: an object array of shape {shape} without its {count} values")
        array = np.empty(count, dtype=object)
        array[:] = raw
        return array.reshape(shape, order=order)
    nbytes = count * dtype.itemsize
    if nbytes > limits.max_array_bytes:
        raise UnsafePickleError(f"{where}: an array of {nbytes:,} bytes ({limit_message('max_array_bytes')})")
    if isinstance(raw, str):  # Python 2 pickles: the buffer as a latin-1 str
        raw = raw.encode("latin-1")
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != nbytes:
        got = len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
        raise TableError(f"{where}: an array of shape {shape} and dtype {dtype} needs {nbytes:,} bytes, the "
                         f"pickle holds {got}")
    return np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order=order).copy()


def _reconstruct(cls: Any, shape: Any = (0,), code: Any = b"b") -> ArrayStub:
    if cls is not NDArrayMarker:
        raise TableError(f"numpy _reconstruct of {cls!r}; {TABLE_CONTENTS}")
    return ArrayStub()


def _frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
    return _array_from(shape, dtype, order == "F", buffer, "numpy array")


def _unpickle_block(values: Any, placement: Any, ndim: Any = 2) -> BlockStub:
    return BlockStub(values, placement, ndim)


def _new_index(cls: Any, attributes: Any) -> IndexStub:
    if cls not in (IndexMarker, RangeIndexMarker):
        raise TableError(f"index class {cls!r}; {TABLE_CONTENTS}")
    return IndexStub(cls, attributes)


def _unpickle_backed(cls: Any, checksum: Any, state: Any) -> BackedArrayStub:
    if cls is not StringArrayMarker:
        raise TableError(f"pandas extension array {cls!r}; {TABLE_CONTENTS}")
    stub = BackedArrayStub(cls)
    if state is not None:
        stub.__setstate__(state)
    return stub


def _reconstructor(cls: Any, base: Any, state: Any = None) -> Any:
    # copyreg._reconstructor: how protocols 0 and 1 create an object of a plain Python class.
    if not (isinstance(cls, type) and issubclass(cls, (FrameStub, ManagerStub))) or base is not object:
        raise TableError(f"copyreg._reconstructor({cls!r}, {base!r}); {TABLE_CONTENTS}")
    return cls.__new__(cls)


def _slice(*args: Any) -> slice:
    if not 1 <= len(args) <= 3 or not all(a is None or (isinstance(a, int) and not isinstance(a, bool)) for a in args):
        raise TableError("a slice of something other than integers")
    return slice(*args)


def _globals() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = dict(PLAIN_GLOBALS)
    safe = lambda f, name: SafeCallable(f, name)  # noqa: E731
    for numpy_core in ("numpy.core", "numpy._core"):
        table[(f"{numpy_core}.multiarray", "_reconstruct")] = safe(_reconstruct, "numpy _reconstruct")
        table[(f"{numpy_core}.numeric", "_frombuffer")] = safe(_frombuffer, "numpy _frombuffer")
    table[("numpy", "ndarray")] = NDArrayMarker
    table[("numpy", "dtype")] = safe(_table_dtype, "numpy.dtype")
    table[("builtins", "slice")] = safe(_slice, "slice")
    table[("builtins", "object")] = object
    table[("copyreg", "_reconstructor")] = safe(_reconstructor, "copyreg._reconstructor")
    for module in ("pandas", "pandas.core.frame"):
        table[(module, "DataFrame")] = FrameStub
    table[("pandas.core.internals.managers", "BlockManager")] = ManagerStub
    table[("pandas._libs.internals", "_unpickle_block")] = safe(_unpickle_block, "_unpickle_block")
    table[("pandas.core.indexes.base", "_new_Index")] = safe(_new_index, "_new_Index")
    for module in ("pandas", "pandas.core.indexes.base"):
        table[(module, "Index")] = IndexMarker
    for module in ("pandas", "pandas.core.indexes.range"):
        table[(module, "RangeIndex")] = RangeIndexMarker
    for module in ("pandas.core.indexes.numeric",):  # pandas < 2: integer and float indexes
        for name in ("Int64Index", "UInt64Index", "Float64Index", "NumericIndex"):
            table[(module, name)] = IndexMarker
    table[("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked")] = safe(_unpickle_backed, "NDArrayBacked")
    for module in ("pandas", "pandas.arrays", "pandas.core.arrays.string_"):
        table[(module, "StringArray")] = StringArrayMarker
    for module in ("pandas", "pandas.core.arrays.string_"):
        table[(module, "StringDtype")] = StringDtypeStub
    return table


TABLE_GLOBALS = _globals()


# ----------------------------------------------------------------------------------------------
# From stand-ins to columns
# ----------------------------------------------------------------------------------------------

def _values(obj: Any, where: str) -> np.ndarray:
    """The numpy array an array stand-in (numpy or a pandas StringArray) holds."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, ArrayStub):
        state = obj.state
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TableError(f"{where}: malformed numpy array state")
        shape, dtype, fortran, raw = state[-4:]
        return _array_from(shape, dtype, fortran, raw, where)
    if isinstance(obj, BackedArrayStub):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2:
            return _values(state[1], where)
        raise TableError(f"{where}: malformed pandas string array")
    raise TableError(f"{where}: column values of type {type(obj).__name__}; {TABLE_CONTENTS}")


def _axis(obj: Any, where: str) -> np.ndarray | range:
    if isinstance(obj, IndexStub):
        cls, attributes = obj.args
        if not isinstance(attributes, dict):
            raise TableError(f"{where}: malformed index")
        if cls is RangeIndexMarker:
            bounds = [attributes.get(k, d) for k, d in (("start", 0), ("stop", 0), ("step", 1))]
            if not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) or bounds[2] == 0:
                raise TableError(f"{where}: malformed RangeIndex")
            axis = range(*bounds)
            if len(axis) > get_limits().max_items:
                raise UnsafePickleError(f"{where}: a RangeIndex of {len(axis):,} rows ({limit_message('max_items')})")
            return axis
        return _axis(attributes.get("data"), where)
    values = _values(obj, where)
    if values.ndim != 1:
        raise TableError(f"{where}: a multi-dimensional index; {TABLE_CONTENTS}")
    return values


def _placement(obj: Any, n_columns: int, where: str) -> list[int]:
    if isinstance(obj, slice):
        positions = list(range(n_columns)[obj])
    else:
        array = _values(obj, where) if not isinstance(obj, (list, tuple)) else np.asarray(obj)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise TableError(f"{where}: block placement is not a list of column positions")
        positions = [int(p) for p in array]
    if any(not 0 <= p < n_columns for p in positions):
        raise TableError(f"{where}: block placement outside the {n_columns} columns")
    return positions


def _blocks(manager: ManagerStub, where: str) -> tuple[list[tuple[Any, Any]], list[Any]]:
    """[(values, placement)] and [columns axis, rows axis] of a BlockManager stand-in, either layout."""
    if len(manager.args) == 2 and manager.state is None:  # pandas >= 1.4: BlockManager(blocks, axes)
        blocks, axes = manager.args
        if not isinstance(blocks, (tuple, list)) or not all(isinstance(b, BlockStub) for b in blocks):
            raise TableError(f"{where}: malformed block list")
        return [(b.args[0], b.args[1]) for b in blocks if len(b.args) >= 2], list(axes)
    state = manager.state
    if not manager.args and isinstance(state, tuple) and state and isinstance(state[-1], dict):
        newer = state[-1].get("0.14.1")
        if isinstance(newer, dict) and isinstance(newer.get("blocks"), list):
            blocks = [(b.get("values"), b.get("mgr_locs")) for b in newer["blocks"] if isinstance(b, dict)]
            return blocks, list(newer.get("axes") or [])
    raise TableError(f"{where}: a DataFrame layout this reader does not know; {TABLE_CONTENTS}")


def table_from_stub(frame: Any, source: str) -> PickledTable:
    """The columns of a DataFrame stand-in; :class:`TableError` for anything else."""
    if not isinstance(frame, FrameStub):
        raise TableError(f"{source}: expected a pickled pandas DataFrame, found {type(frame).__name__}")
    state = frame.state
    if not isinstance(state, dict):
        raise TableError(f"{source}: malformed DataFrame (no state)")
    manager = state.get("_mgr", state.get("_data"))
    if not isinstance(manager, ManagerStub):
        raise TableError(f"{source}: malformed DataFrame (no block manager)")
    blocks, axes = _blocks(manager, source)
    if len(axes) != 2:
        raise TableError(f"{source}: a DataFrame needs two axes, found {len(axes)}")
    columns = _axis(axes[0], f"{source}: column names")
    rows = _axis(axes[1], f"{source}: row index")
    n_rows = len(rows)
    data: list[np.ndarray | None] = [None] * len(columns)
    for values, placement in blocks:
        array = _values(values, f"{source}: column block")
        if array.ndim == 1:
            array = array.reshape(1, -1)
        positions = _placement(placement, len(columns), f"{source}: column block")
        if array.shape != (len(positions), n_rows):
            raise TableError(f"{source}: a block of shape {array.shape} for {len(positions)} columns of {n_rows} rows")
        for row, position in enumerate(positions):
            if data[position] is not None:
                raise TableError(f"{source}: column {position} is given twice")
            data[position] = array[row]
    missing = [i for i, column in enumerate(data) if column is None]
    if missing:
        raise TableError(f"{source}: no values for column {missing[0]}")
    names = columns.tolist() if isinstance(columns, np.ndarray) else list(columns)
    index = rows if isinstance(rows, range) else rows.copy()
    index_name = axes[1].args[1].get("name") if isinstance(axes[1], IndexStub) else None
    if not isinstance(index_name, (str, int, float, type(None))):
        index_name = None
    return PickledTable(names, [column for column in data if column is not None], index, index_name)


def load_table_bytes(data: bytes, source: str = "pickle") -> PickledTable:
    """A pickled DataFrame's contents as plain columns, without running code (see the module docstring)."""
    frame = unpickle(data, allowed=TABLE_GLOBALS, what=TABLE_CONTENTS, source=source)
    check_structure(frame, source)
    return table_from_stub(frame, source)


def load_table_pickle(path: Any) -> PickledTable:
    """:func:`load_table_bytes` of a file (read whole, within ``max_file_bytes``)."""
    from pathlib import Path

    path = Path(path)
    with open(path, "rb") as f:
        try:
            data = read_bounded(f, str(path))
        except InputLimitError as e:
            raise UnsafePickleError(str(e)) from None
    return load_table_bytes(data, str(path))


__all__: Sequence[str] = ["PickledTable", "TableError", "load_table_bytes", "load_table_pickle", "TABLE_GLOBALS"]
