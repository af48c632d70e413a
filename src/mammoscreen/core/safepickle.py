"""A restricted unpickler: plain data only, never code, and never more memory or time than the file justifies.

Exam lists and reader-study tables travel between sites as pickles, and ``pickle.load`` on an untrusted file
can run arbitrary code. :func:`safe_loads` accepts only what such files legitimately contain - lists,
tuples, dicts, sets, str, bytes, int, float, bool, None and numpy numeric scalars (which the official
preprocessing scripts write) - from any pickle protocol (0-5, including Python 2 pickles), and raises
:class:`UnsafePickleError` naming the offending global for anything else.

Refusing code is not enough: a pickle of a few dozen bytes can still ask for gigabytes. Three checks bound
what a file can cost (limits in :mod:`mammoscreen.core.limits`):

1. before loading, a scan of the opcodes (linear in the file size, nothing built) refuses memo indices
   beyond those defined so far (the C unpickler would grow its memo table to the index) and frames longer
   than the file;
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
import pickletools
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np

from .limits import InputLimitError, get_limits, limit_message, read_bounded


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than plain data, or exceeds a limit, and was not loaded."""


class MalformedPickleError(pickle.UnpicklingError):
    """The file is not a well-formed pickle of plain data."""


# ----------------------------------------------------------------------------------------------
# The callables a pickle may reach
# ----------------------------------------------------------------------------------------------

class SafeCallable:
    """An allow-listed callable as the unpickler hands it out: ``BUILD`` cannot set its attributes (no
    ``__dict__``, ``__setattr__`` refused), so one file cannot change how the next one is loaded."""

    __slots__ = ("_function", "_name")

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
# 1. The opcode scan
# ----------------------------------------------------------------------------------------------

def _opcode_table() -> dict[int, tuple[str, int, int]]:
    """byte -> (name, how its argument is read, fixed size): from pickletools' description of the format."""
    table = {}
    for op in pickletools.opcodes:
        arg = op.arg
        if arg is None:
            table[op.code.encode("latin-1")[0]] = (op.name, 0, 0)
        elif arg.n >= 0:
            table[op.code.encode("latin-1")[0]] = (op.name, 0, arg.n)
        else:
            lines = 2 if arg.name == "stringnl_noescape_pair" else 1
            table[op.code.encode("latin-1")[0]] = (op.name, arg.n, lines)
    return table


_OPCODES = _opcode_table()
_LENGTH_PREFIX = {pickletools.TAKEN_FROM_ARGUMENT1: ("<B", 1), pickletools.TAKEN_FROM_ARGUMENT4: ("<i", 4),
                  pickletools.TAKEN_FROM_ARGUMENT4U: ("<I", 4), pickletools.TAKEN_FROM_ARGUMENT8U: ("<Q", 8)}
_PUT_SIZES = {"BINPUT": "<B", "LONG_BINPUT": "<I"}


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                         "SHORT_BINSTRING"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def scan_opcodes(data: bytes, source: str = "pickle", start: int = 0, globals_found: set[str] | None = None) -> int:
    """Refuse a pickle whose opcodes would make the unpickler allocate more than the file holds; return the
    position after its STOP opcode.

    Walks the opcodes without building anything (argument lengths only, so it costs far less than the
    load itself): memo indices must not skip ahead of the entries defined so far - a pickler numbers them
    0, 1, 2, ... and the C unpickler sizes its memo table to the largest index, so one LONG_BINPUT
    4294967295 would ask for 32 GB - and a frame must not be longer than the file. With ``globals_found``,
    the ``module.name`` of every global the pickle refers to is added to it ('?' for one that cannot be
    told without running the pickle).
    """
    unpack_from = struct.unpack_from
    size = len(data)
    position = start
    memo_entries = 0
    track = globals_found is not None
    strings: dict[int, str] = {}  # memo index -> string (module and class names of STACK_GLOBAL)
    recent: list[str | None] = [None, None]  # the values the last two pushes left, when they were strings
    while position < size:
        code = data[position]
        entry = _OPCODES.get(code)
        if entry is None:
            raise MalformedPickleError(f"{source}: not a readable pickle (unknown opcode {bytes([code])!r} at byte "
                                       f"{position})")
        name, how, fixed = entry
        opcode_start = position
        position += 1
        pushed: str | None = None
        if how == 0:
            if name in _PUT_SIZES:
                index = unpack_from(_PUT_SIZES[name], data, position)[0] if position + fixed <= size else 0
                if index > memo_entries:
                    raise UnsafePickleError(f"{source}: memo index {index} at byte {opcode_start} skips ahead of the "
                                            f"{memo_entries} entries defined so far; a pickler never writes that")
                memo_entries += 1
                if track and recent[-1] is not None:
                    strings[index] = recent[-1]
                position += fixed
                continue
            if name == "FRAME" and position + 8 <= size and unpack_from("<Q", data, position)[0] > size - position:
                raise UnsafePickleError(f"{source}: frame at byte {opcode_start} declares "
                                        f"{unpack_from('<Q', data, position)[0]:,} bytes, more than the file holds")
            if name == "MEMOIZE":
                if track and recent[-1] is not None:
                    strings[memo_entries] = recent[-1]
                memo_entries += 1
                continue
            if name == "STOP":
                return position
            if track:
                if name in _GET_OPS and position + fixed <= size:
                    pushed = strings.get(unpack_from("<B" if fixed == 1 else "<I", data, position)[0])
                elif name == "STACK_GLOBAL":
                    found = f"{recent[-2]}.{recent[-1]}" if None not in recent else "?"
                    globals_found.add(found)
                elif name == "FRAME" or name == "PROTO":
                    position += fixed
                    continue
            position += fixed
        elif how == pickletools.UP_TO_NEWLINE:
            lines = []
            for _ in range(fixed):  # one or two lines
                end = data.find(b"\n", position)
                if end < 0:
                    raise MalformedPickleError(f"{source}: not a readable pickle (truncated at byte {opcode_start})")
                lines.append(data[position:end])
                position = end + 1
            if name == "PUT":
                try:
                    index = int(lines[0])
                except ValueError:
                    raise MalformedPickleError(f"{source}: not a readable pickle (bad memo index at byte "
                                               f"{opcode_start})") from None
                if not 0 <= index <= memo_entries:
                    raise UnsafePickleError(f"{source}: memo index {index} at byte {opcode_start} skips ahead of the "
                                            f"{memo_entries} entries defined so far; a pickler never writes that")
                memo_entries += 1
                if track and recent[-1] is not None:
                    strings[index] = recent[-1]
                continue
            if track:
                if name in ("GLOBAL", "INST"):
                    globals_found.add(".".join(line.decode("latin-1") for line in lines))
                elif name == "GET":
                    pushed = strings.get(int(lines[0])) if lines[0].strip().isdigit() else None
        else:
            fmt, width = _LENGTH_PREFIX[how]
            if position + width > size:
                break
            length = unpack_from(fmt, data, position)[0]
            if length < 0:
                raise MalformedPickleError(f"{source}: not a readable pickle (negative length at byte {opcode_start})")
            if track and name in _STRING_OPS:
                pushed = data[position + width:position + width + length].decode("utf-8", "replace")
            position += width + length
        if track:
            recent = [recent[-1], pushed]
    raise MalformedPickleError(f"{source}: not a readable pickle (truncated: no STOP opcode)")


_SCALAR_PUSH = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "NONE", "NEWTRUE", "NEWFALSE", "FLOAT",
    "BINFLOAT", "GLOBAL", "EXT1", "EXT2", "EXT4"})
_TEXT_PUSH = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8",
                        "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"})
_EMPTY = frozenset({"EMPTY_LIST", "EMPTY_TUPLE", "EMPTY_DICT", "EMPTY_SET"})
_FROM_MARK = frozenset({"LIST", "TUPLE", "DICT", "FROZENSET", "INST", "OBJ"})
_INTO_FROM_MARK = frozenset({"APPENDS", "SETITEMS", "ADDITEMS"})
_MEMO_ARGUMENT = frozenset({"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET"})


def tree_scan(data: bytes, source: str = "pickle") -> bool:
    """The opcode scan of :func:`scan_opcodes` (same refusals), and whether the pickle provably builds a tree
    within the depth, element and byte limits, so that :func:`check_structure` need not walk the result.

    The stack is simulated with the nesting depth of each item. A container that reaches the stack twice
    (from the memo or by DUP) may be shared, and anything this simulation does not follow exactly returns
    False: the caller then measures the loaded object instead. True is only returned when no container is
    shared - then depths are exact upper bounds and every element was pushed once.
    """
    limits = get_limits()
    unpack_from = struct.unpack_from
    size = len(data)
    position = 0
    stack: list[int] = []  # nesting depth of each stack item (0: a scalar)
    marks: list[int] = []
    memo: dict[int, tuple[int, int]] = {}  # index -> (depth, bytes of a string)
    memo_entries = 0
    pushes = text_bytes = 0
    shared = False
    last_text = 0

    def from_mark() -> int:
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return max(items, default=0)

    while position < size:
        code = data[position]
        entry = _OPCODES.get(code)
        if entry is None:
            raise MalformedPickleError(f"{source}: not a readable pickle (unknown opcode {bytes([code])!r} at byte "
                                       f"{position})")
        name, how, fixed = entry
        opcode_start = position
        position += 1
        argument = None
        text = 0
        if how == 0:
            if name in _MEMO_ARGUMENT:
                if position + fixed > size:
                    break
                argument = unpack_from("<B" if fixed == 1 else "<I", data, position)[0]
            elif name == "FRAME" and position + 8 <= size and unpack_from("<Q", data, position)[0] > size - position:
                raise UnsafePickleError(f"{source}: frame at byte {opcode_start} declares "
                                        f"{unpack_from('<Q', data, position)[0]:,} bytes, more than the file holds")
            position += fixed
        elif how == pickletools.UP_TO_NEWLINE:
            for _ in range(fixed):
                end = data.find(b"\n", position)
                if end < 0:
                    raise MalformedPickleError(f"{source}: not a readable pickle (truncated at byte {opcode_start})")
                if name in ("PUT", "GET"):
                    try:
                        argument = int(data[position:end])
                    except ValueError:
                        raise MalformedPickleError(f"{source}: not a readable pickle (bad memo index at byte "
                                                   f"{opcode_start})") from None
                text += end - position
                position = end + 1
        else:
            fmt, width = _LENGTH_PREFIX[how]
            if position + width > size:
                break
            text = unpack_from(fmt, data, position)[0]
            if text < 0:
                raise MalformedPickleError(f"{source}: not a readable pickle (negative length at byte {opcode_start})")
            position += width + text
        try:
            if name in _TEXT_PUSH:
                stack.append(0)
                pushes += 1
                text_bytes += text
                last_text = text
                continue
            if name in _SCALAR_PUSH:
                stack.append(0)
                pushes += 1
                last_text = 0
                continue
            last = last_text
            last_text = 0
            if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = memo_entries if name == "MEMOIZE" else argument
                if index is None or index < 0 or index > memo_entries:
                    raise UnsafePickleError(f"{source}: memo index {index} at byte {opcode_start} skips ahead of the "
                                            f"{memo_entries} entries defined so far; a pickler never writes that")
                memo[index] = (stack[-1], last if stack[-1] == 0 else 0)
                memo_entries += 1
                last_text = last
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                depth, length = memo[argument]
                if depth:
                    shared = True  # a container reaching the stack twice: measure the result instead
                stack.append(depth)
                pushes += 1
                text_bytes += length
            elif name in _EMPTY:
                stack.append(1)
                pushes += 1
            elif name == "MARK":
                marks.append(len(stack))
            elif name == "APPEND":
                child = stack.pop()
                stack[-1] = max(stack[-1], child + 1)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                stack[-1] = max(stack[-1], key + 1, value + 1)
            elif name in _INTO_FROM_MARK:
                deepest = from_mark()
                stack[-1] = max(stack[-1], deepest + 1)
            elif name in _FROM_MARK:
                stack.append(from_mark() + 1)
                pushes += 1
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                count = int(name[-1])
                items = stack[-count:]
                del stack[-count:]
                if len(items) != count:
                    return False
                stack.append(max(items) + 1)
                pushes += 1
            elif name in ("REDUCE", "NEWOBJ"):
                arguments = stack.pop()
                stack[-1] = arguments  # list(tuple), dict(...), a numpy scalar: no deeper than the arguments
            elif name == "NEWOBJ_EX":
                keywords, arguments = stack.pop(), stack.pop()
                stack[-1] = max(arguments, keywords)
            elif name == "BUILD":
                state = stack.pop()
                stack[-1] = max(stack[-1], state)
            elif name == "STACK_GLOBAL":
                del stack[-2:]
                stack.append(0)
            elif name == "POP":
                if marks and marks[-1] == len(stack):
                    marks.pop()
                else:
                    stack.pop()
            elif name == "POP_MARK":
                from_mark()
            elif name == "DUP":
                if stack[-1]:
                    shared = True
                stack.append(stack[-1])
            elif name in ("PROTO", "FRAME"):
                pass
            elif name == "STOP":
                if len(stack) != 1 or shared:
                    return False
                return stack[0] <= limits.max_depth and pushes <= limits.max_items \
                    and text_bytes <= limits.max_file_bytes
            else:  # persistent ids, out-of-band buffers: nothing plain data needs; the loader refuses them
                return False
        except (IndexError, KeyError):  # an opcode without its operands: the loader reports the pickle
            return False
    raise MalformedPickleError(f"{source}: not a readable pickle (truncated: no STOP opcode)")


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
