"""Fuzzing the restricted unpickler: generated plain data, mutated pickles and random opcode streams."""

from __future__ import annotations

import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testutils import examples

from fuzzing import assert_no_canary, bounded_call
from hostile import canary_call
from mammoscreen.core.pickled_tables import TableError, load_table_bytes
from mammoscreen.core.safepickle import (MalformedPickleError, UnsafePickleError, check_structure, safe_loads,
                                         tree_scan, unpickle)

REFUSED = (UnsafePickleError, MalformedPickleError)
MEMORY = 64 * 2 ** 20  # traced bytes any input of a few kilobytes may cost

CANARY_DIR = Path(tempfile.mkdtemp(prefix="mammoscreen-canary-"))
CANARY = CANARY_DIR / "ran"

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
           | st.binary(max_size=20) | st.complex_numbers(allow_nan=False))
plain_data = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=5), max_leaves=40)


@settings(max_examples=examples(150))
@given(plain_data, st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_plain_data_round_trips(data, protocol):
    pickled = pickle.dumps(data, protocol=protocol)
    loaded, error, _ = bounded_call(lambda: safe_loads(pickled), REFUSED, MEMORY)
    assert error is None and loaded == data
    _scan_is_sound(pickled)


# Fragments an attacker splices into a valid pickle: code-running globals, state changes, memo games.
FRAGMENTS = [
    canary_call(CANARY, "open")[2:-1], canary_call(CANARY, "system")[2:-1], canary_call(CANARY, "exec")[2:-1],
    canary_call(CANARY, "popen")[2:-1],
    b"cbuiltins\nbytearray\n\x8a\x05\x00\x00\x00\x00\x01\x85R",  # bytearray(2**32)
    b"}X\x01\x00\x00\x00aK\x01sb",  # BUILD
    b"r\xff\xff\xff\x7f", b"h\x00", b"j\xff\xff\xff\x7f", b"(", b"t", b"e", b"s", b"u", b"0", b"2", b"1",
    b"\x95" + struct.pack("<Q", 2 ** 60),  # FRAME larger than the file
    b"\x8c\x08builtins\x8c\x04eval\x93", b"\x81", b"\x92", b"\x82\x01", b"P", b"Q",
    b"cnumpy\ndtype\nX\x02\x00\x00\x00O8\x85R", b"cnumpy.core.multiarray\n_reconstruct\n",
    b"]" * 200 + b"a" * 199,
]


def _exam_pickle(protocol: int) -> bytes:
    exam = {"horizontal_flip": "NO", "L-CC": ["0_L-CC"], "R-CC": ["0_R-CC"], "L-MLO": [], "R-MLO": [],
            "cancer_label": {"left_benign": 0, "right_benign": 1, "left_malignant": 0, "right_malignant": 0},
            "best_center": {"L-CC": [(np.int64(10), np.int64(20))], "R-CC": [(1, 2)]}}
    return pickle.dumps([exam, exam], protocol=protocol)


@settings(max_examples=examples(300))
@given(st.integers(0, pickle.HIGHEST_PROTOCOL), st.lists(st.tuples(
    st.sampled_from(["flip", "insert", "delete", "splice", "truncate"]), st.integers(0, 10_000),
    st.integers(0, 255), st.integers(0, len(FRAGMENTS) - 1)), min_size=1, max_size=4))
def test_mutated_exam_list_pickles(protocol, mutations):
    data = bytearray(_exam_pickle(protocol))
    for kind, position, byte, fragment in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] = byte
        elif kind == "insert":
            data[at:at] = bytes([byte])
        elif kind == "delete":
            del data[at:at + 1 + byte % 8]
        elif kind == "splice":
            data[at:at] = FRAGMENTS[fragment]
        else:
            del data[at:]
    for loader in (lambda: safe_loads(bytes(data), source="fuzz.pkl"),
                   lambda: load_table_bytes(bytes(data), "fuzz.pkl")):
        bounded_call(loader, REFUSED + (TableError,), MEMORY)
    assert_no_canary(CANARY_DIR)
    _scan_is_sound(bytes(data))


def _scan_is_sound(data: bytes) -> None:
    """When the opcode scan vouches for a tree within the limits (and safe_loads skips the structure check),
    the loaded object must pass that check."""
    try:
        vouched = tree_scan(data)
        loaded = unpickle(data, scanned=True)
    except REFUSED:
        return
    if vouched:
        check_structure(loaded)


# Random opcode streams: containers, memo traffic, globals (allowed and not), state, calls.
OPCODES = [b"(", b"]", b"}", b")", b"a", b"e", b"s", b"u", b"t", b"\x85", b"\x86", b"\x87", b"0", b"1", b"2",
           b"b", b"R", b"\x81", b"\x94", b"N", b"\x88", b"\x89", b"K\x07", b"J\xff\xff\xff\x7f",
           b"\x8c\x01x", b"C\x02ab", b"G\x7f\xf8\x00\x00\x00\x00\x00\x00", b"h\x00", b"h\x01", b"q\x00", b"q\x01",
           b"\x8c\x08builtins\x8c\x04list\x93", b"\x8c\x08builtins\x8c\tbytearray\x93",
           b"\x8c\x05numpy\x8c\x05dtype\x93", b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93",
           b"cbuiltins\nopen\n", b"cos\nsystem\n", b"\x8c\x06pandas\x8c\tDataFrame\x93",
           b"\x8c\x1epandas.core.internals.managers\x8c\x0cBlockManager\x93",
           b"\x8c\x05numpy\x8c\x07ndarray\x93", b"\x8c\x15numpy.core.multiarray\x8c\x0c_reconstruct\x93"]


@settings(max_examples=examples(300))
@given(st.lists(st.integers(0, len(OPCODES) - 1), max_size=60), st.integers(2, 5))
def test_random_opcode_streams(indices, protocol):
    data = bytes([0x80, protocol]) + b"".join(OPCODES[i] for i in indices) + b"."
    bounded_call(lambda: safe_loads(data, source="fuzz.pkl"), REFUSED, MEMORY)
    bounded_call(lambda: load_table_bytes(data, "fuzz.pkl"), REFUSED + (TableError,), MEMORY)
    assert_no_canary(CANARY_DIR)
    _scan_is_sound(data)


@pytest.mark.parametrize("depth", [99, 101, 20_000])
def test_nesting_at_and_beyond_the_limit(depth):
    data = b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."
    result, error, _ = bounded_call(lambda: safe_loads(data), REFUSED, MEMORY + 64 * depth)
    assert (error is None) == (depth <= 100)
