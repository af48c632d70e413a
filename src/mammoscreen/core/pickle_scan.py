"""Reading a pickle's opcodes without running them: what the restricted unpickler checks before it loads.

:func:`scan_opcodes` walks a pickle (argument lengths only, far cheaper than loading it) and refuses what would
make the C unpickler allocate more than the file holds - memo indices that skip ahead (the memo table is
sized to the largest index) and frames longer than the file - and can list the globals the pickle names.
:func:`tree_scan` does the same while simulating the unpickler's stack with the nesting depth of each item:
when no container reaches the stack twice it proves the result a tree within the depth, element and byte
limits, so the walk over the loaded object (:func:`mammoscreen.core.safepickle.check_structure`) is skipped.
"""

from __future__ import annotations

import pickle
import pickletools
import struct

from .limits import get_limits


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle refers to something other than plain data, or exceeds a limit, and was not loaded."""


class MalformedPickleError(pickle.UnpicklingError):
    """The file is not a well-formed pickle of plain data."""


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


def _check_frame(data: bytes, position: int, opcode_start: int, source: str) -> None:
    """Refuse a frame longer than the bytes after its 8-byte length (a truncated or damaged file: loading it from a
    file object would first allocate the declared size)."""
    if position + 8 <= len(data):
        declared, left = struct.unpack_from("<Q", data, position)[0], len(data) - position - 8
        if declared > left:
            raise MalformedPickleError(f"{source}: not a readable pickle (truncated: the frame at byte {opcode_start} "
                                       f"declares {declared:,} bytes, {left:,} follow)")


def scan_opcodes(data: bytes, source: str = "pickle", start: int = 0, globals_found: set[str] | None = None) -> int:
    """Refuse a pickle whose opcodes would make the unpickler allocate more than the file holds; return the
    position after its STOP opcode.

    Walks the opcodes without building anything (argument lengths only, so it costs far less than the
    load itself): memo indices must not skip ahead of the entries defined so far - a pickler numbers them
    0, 1, 2, ... and the C unpickler sizes its memo table to the largest index, so one LONG_BINPUT
    4294967295 would ask for 32 GB - and a frame must not be longer than the bytes after its length (a
    truncated file). With ``globals_found``, the ``module.name`` of every global the pickle refers to is added
    to it ('?' for one that cannot be told without running the pickle).
    """
    unpack_from = struct.unpack_from
    size = len(data)
    position = start
    memo_entries = 0
    track = globals_found is not None
    collected: set[str] = globals_found if globals_found is not None else set()  # filled only when tracking
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
            if name == "FRAME":
                _check_frame(data, position, opcode_start, source)
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
                    collected.add(found)
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
                    collected.add(".".join(line.decode("latin-1") for line in lines))
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
            elif name == "FRAME":
                _check_frame(data, position, opcode_start, source)
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
                depth, length = memo[argument]  # type: ignore[index]  # the GET opcodes always carry one
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
