"""The restricted unpickler, callable by callable: what each allowed global accepts, what it refuses and what it
says; the name a refusal gives the file; the structure measurement on hand-counted objects."""

from __future__ import annotations

import codecs
import io
import pickle

import numpy as np
import pytest
from numpy._core.multiarray import scalar as numpy_scalar

from mammoscreen.core.limits import limits_override
from mammoscreen.core.safepickle import (PLAIN_GLOBALS, MalformedPickleError, SafeCallable, UnsafePickleError,
                                         _global, _plain_constructor, check_structure, load_pickle, safe_load,
                                         safe_loads, unpickle)


class Call:
    """Pickles as ``function(*args)``: the real pickler writes the global and the arguments, so each test states
    the call a crafted file makes, not its opcodes."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def load(function, *args, protocol=2):
    return safe_loads(pickle.dumps(Call(function, *args), protocol=protocol), source="x.pkl")


def refused(function, *args, match):
    with pytest.raises(UnsafePickleError, match=match) as error:
        load(function, *args)
    assert str(error.value).startswith("x.pkl: ")  # every refusal names the file first
    return str(error.value)


# ---------------------------------------------------------------------------------------------- SafeCallable

def test_a_safe_callable_passes_the_call_on_and_refuses_changes():
    wrapped = SafeCallable(lambda *args: ("called", args), "some.function")
    assert wrapped(1, "a") == ("called", (1, "a"))
    assert repr(wrapped) == "<allowed some.function>"
    with pytest.raises(UnsafePickleError, match=r"^the pickle tries to modify some\.function \(BUILD on a global\)$"):
        wrapped._function = print
    assert wrapped(2) == ("called", (2,))  # unchanged
    assert not hasattr(wrapped, "__dict__")


def test_the_allow_list_names_each_global_as_it_is_looked_up():
    key, wrapped = _global("a.module", "name", len)
    assert key == ("a.module", "name") and repr(wrapped) == "<allowed a.module.name>" and wrapped("abc") == 3
    for (module, name), value in PLAIN_GLOBALS.items():
        assert repr(value) == f"<allowed {module}.{name}>"


# ---------------------------------------------------------------------------------------------- numpy

@pytest.mark.parametrize("spec", ["O8", "U4", "S3", "M8[s]", "V8", "i4,i4"])
def test_numpy_dtypes_other_than_numbers_are_refused(spec):
    message = refused(np.dtype, spec, False, True, match="is not a plain numeric type")
    assert f"numpy dtype {spec!r} is not a plain numeric type" in message


@pytest.mark.parametrize("spec", [b"f8", 8, ["f8"]])
def test_a_numpy_dtype_is_only_named_by_a_string(spec):
    message = refused(np.dtype, spec, match="is not a plain numeric type")
    assert f"numpy dtype {spec!r}" in message


def test_a_numpy_dtype_takes_only_its_two_flags():
    dtype = load(np.dtype, ">u2", False, True, {"attached": "by the file"})
    assert dtype == np.dtype(">u2") and dtype.metadata is None  # the fourth argument (metadata) is dropped


def test_numpy_scalars_of_every_numeric_kind_keep_their_value_and_type():
    for value in (np.int8(-3), np.uint64(2 ** 64 - 1), np.float16(0.5), np.float64(-2.25), np.complex64(1 - 2j),
                  np.bool_(False), np.dtype(">i4").type(-70000)):
        for protocol in (0, 2, 4):
            loaded = safe_loads(pickle.dumps(value, protocol=protocol))
            assert loaded == value and loaded.dtype == value.dtype


def test_a_numpy_scalar_from_python_2_takes_its_payload_as_latin_1():
    # Python 2 pickles store the payload bytes as a str; b'\xe9\x00' as latin-1 is u'\xe9\x00' (two characters,
    # where UTF-8 would need three bytes).
    assert load(numpy_scalar, np.dtype("<u2"), "\xe9\x00") == 0xE9
    assert load(numpy_scalar, np.dtype("<u2"), "\x00\x01") == 256


@pytest.mark.parametrize("dtype, payload", [(np.dtype("<i8"), b"\x00" * 4), (np.dtype("<i8"), 5),
                                            (np.dtype("<u2"), "\u0100\x00"), (np.dtype("<i4"), None)])
def test_a_numpy_scalar_needs_exactly_its_itemsize_in_bytes(dtype, payload):
    with pytest.raises((UnsafePickleError, MalformedPickleError)) as error:
        load(numpy_scalar, dtype, payload)
    if not isinstance(payload, str):  # a non-latin-1 str fails in the codec, any other type here
        assert str(error.value) == "x.pkl: malformed numpy scalar in pickle"


def test_a_numpy_scalar_needs_a_numeric_dtype_object():
    refused(numpy_scalar, "f8", b"\x00" * 8, match=r"^x\.pkl: numpy scalar of dtype 'f8' is not a plain numeric type$")
    # Only reachable by a direct call (the dtype stand-in refuses them earlier): object, and a numeric dtype with
    # fields (a union view of an int32).
    from mammoscreen.core.safepickle import _numpy_scalar

    for dtype in (np.dtype("O"),
                  np.dtype((np.int32, {"low": (np.int16, 0), "high": (np.int16, 2)})), np.dtype(("<i2", (2,)))):
        with pytest.raises(UnsafePickleError, match="is not a plain numeric type"):
            _numpy_scalar(dtype, b"\x00" * dtype.itemsize)


# ---------------------------------------------------------------------------------------------- _codecs.encode

def test_codecs_encode_gives_the_bytes_of_latin_1_and_utf_8_text_only():
    assert load(codecs.encode, "\xe9", "latin1") == b"\xe9"
    assert load(codecs.encode, "\xe9", "iso8859-1") == b"\xe9"
    assert load(codecs.encode, "\xe9", "utf-8") == b"\xc3\xa9"
    assert load(codecs.encode, "\xe9") == b"\xc3\xa9"  # the default encoding is UTF-8, as codecs.encode's
    for args in (("abc", "utf-16"), ("abc", "rot13"), (b"abc", "latin1"), ("abc", 5)):
        refused(codecs.encode, *args, match=r"^x\.pkl: unexpected _codecs\.encode call in pickle$")


# ---------------------------------------------------------------------------------------------- builtins

def test_bytearray_is_built_from_its_contents_only():
    assert load(bytearray) == bytearray()
    assert load(bytearray, b"ab") == bytearray(b"ab")
    assert load(bytearray, "\xe9a", "latin-1") == bytearray(b"\xe9a")
    for args, shown in [((10,), "int"), ((b"ab", "latin-1"), "bytes, str"), (("ab",), "str"), (("ab", 5), "str, int"),
                        (("ab", "latin-1", "strict"), "str, str, str")]:
        message = refused(bytearray, *args, match="never a length")
        assert message == (f"x.pkl: bytearray({shown}) in pickle: a bytearray is pickled with its contents, never a "
                           "length (a length would allocate memory the file does not contain)")


@pytest.mark.parametrize("kind", [list, tuple, dict, set, frozenset, bytes])
def test_plain_constructors_take_at_most_one_container_or_string(kind):
    for factory in (lambda *args: load(kind, *args), _plain_constructor(kind)):
        assert factory() == kind()
        contents = {"a": 1} if kind is dict else b"ab" if kind is bytes else [1, 2]
        assert factory(contents) == kind(contents)
        for args in ((5,), (contents, contents), (None,)):
            with pytest.raises(UnsafePickleError, match=rf"{kind.__name__}\(\) called with unexpected arguments in "
                                                        "pickle$"):
                factory(*args)


def test_complex_takes_up_to_two_real_numbers():
    assert load(complex, 1, 2.5) == 1 + 2.5j
    assert load(complex, 3) == 3 + 0j
    assert load(complex) == 0j
    for args in ((True,), ("1",), (1, 2, 3), (1, 1j)):
        refused(complex, *args, match=r"^x\.pkl: complex\(\) called with unexpected arguments in pickle$")


# ---------------------------------------------------------------------------------------------- the unpickler

def test_python_2_names_are_mapped_before_the_allow_list():
    # Protocol 0 as Python 2 wrote it: __builtin__.set([1]) and copy_reg._reconstructor (refused under its new name).
    assert safe_loads(b"c__builtin__\nset\n((lp0\nI1\natp1\nRp2\n.") == {1}
    with pytest.raises(UnsafePickleError, match=r"^pickle: refusing to load builtins\.int: "):
        safe_loads(b"c__builtin__\nlong\n(I7\ntR.")  # NAME_MAPPING: __builtin__.long is builtins.int (not allowed)
    with pytest.raises(UnsafePickleError, match=r"^y\.pkl: refusing to load copyreg\._reconstructor: only lists"):
        safe_loads(b"ccopy_reg\n_reconstructor\n(tR.", source="y.pkl")


def test_python_2_strings_are_read_as_latin_1():
    assert safe_loads(b"S'caf\\xe9'\np0\n.") == "caf\xe9"  # a Python 2 str holding the byte 0xE9
    assert safe_loads(b"\x80\x02U\x04caf\xe9q\x00.") == "caf\xe9"  # SHORT_BINSTRING


def test_an_unknown_global_is_refused_with_what_is_accepted():
    with pytest.raises(UnsafePickleError) as error:
        safe_loads(b"\x80\x02cnumpy\nndarray\n.", source="z.pkl")
    assert str(error.value) == ("z.pkl: refusing to load numpy.ndarray: only lists, dicts, tuples, strings, numbers, "
                                "booleans, None and numpy numeric scalars are accepted")
    with pytest.raises(UnsafePickleError, match=r"^z\.pkl: refusing to load numpy\.ndarray: tables only$"):
        unpickle(b"\x80\x02cnumpy\nndarray\n.", what="tables only", source="z.pkl")


def test_persistent_ids_are_refused():
    with pytest.raises(UnsafePickleError, match=r"^p\.pkl: the pickle refers to an external object \(persistent id\); "
                                                "only lists"):
        safe_loads(b"Pabc\n.", source="p.pkl")


def test_unpickle_scans_unless_told_the_scan_ran():
    skipping = b"\x80\x02]r" + (5).to_bytes(4, "little") + b"."  # memo index 5 before entries 0-4
    with pytest.raises(UnsafePickleError, match=r"^m\.pkl: memo index 5 at byte 3 skips ahead of the 0 entries"):
        unpickle(skipping, source="m.pkl")
    assert unpickle(skipping, source="m.pkl", scanned=True) == []  # the C unpickler itself accepts it


def test_what_the_unpickler_raises_becomes_one_named_refusal():
    with pytest.raises(MalformedPickleError, match=r"^pickle: not a readable pickle \(EOFError: Ran out of input\)$"):
        unpickle(b"\x80\x02]q\x00(", scanned=True)  # truncated, given to the unpickler unscanned
    from unittest import mock

    from mammoscreen.core import safepickle

    for raised, message in [(RecursionError, r"^d\.pkl: nested too deeply to load \(limit max_depth=100; raise it "
                                             r"with MAMMOSCREEN_MAX_DEPTH"),
                            (MemoryError, r"^d\.pkl: loading it would exhaust the memory$")]:
        with mock.patch.object(safepickle._RestrictedUnpickler, "load", side_effect=raised):
            with pytest.raises(UnsafePickleError, match=message):
                unpickle(pickle.dumps([1]), source="d.pkl")


def test_the_file_size_limit_applies_to_bytes_and_to_open_files(tmp_path):
    data = pickle.dumps("x" * 100)
    with limits_override(max_file_bytes=len(data) - 1):
        for call in (lambda: safe_loads(data, source="big.pkl"), lambda: unpickle(data, source="big.pkl")):
            with pytest.raises(UnsafePickleError, match=rf"^big\.pkl: larger than {len(data) - 1:,} bytes \(limit "
                                                        "max_file_bytes="):
                call()
        with pytest.raises(UnsafePickleError, match=r"^big\.pkl.*MAMMOSCREEN_MAX_FILE_BYTES"):
            safe_load(io.BytesIO(data), source="big.pkl")
    with limits_override(max_file_bytes=len(data)):
        assert safe_loads(data) == "x" * 100 and unpickle(data) == "x" * 100


def test_refusals_name_the_file_they_came_from(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\n.")
    for call, name in [(lambda: load_pickle(path), str(path)), (lambda: safe_load(open(path, "rb")), str(path)),
                       (lambda: safe_load(io.BytesIO(path.read_bytes())), "pickle"),
                       (lambda: safe_load(io.BytesIO(path.read_bytes()), source="given"), "given")]:
        with pytest.raises(UnsafePickleError) as error:
            call()
        assert str(error.value).startswith(f"{name}: refusing to load os.system")
    path.write_bytes(pickle.dumps([1, {"a": (2,)}], protocol=0))
    assert load_pickle(path) == [1, {"a": (2,)}]
    assert safe_load(io.BytesIO(path.read_bytes())) == [1, {"a": (2,)}]


# ---------------------------------------------------------------------------------------------- structure

def test_structure_is_measured_as_counted_by_hand():
    assert check_structure(5) == (0, 1)
    assert check_structure([]) == (1, 1)
    # root: itself, 1, [2, 3] (3), {"a": (4,)} (dict 1 + "a" 1 + tuple 2 = 4): 9 elements, 3 levels.
    assert check_structure([1, [2, 3], {"a": (4,)}]) == (3, 9)
    inner = [1, 2]
    assert check_structure([inner, inner, [inner]]) == (3, 1 + 3 + 3 + (1 + 3))  # shared: counted per reference
    assert check_structure(np.array([[1], 2, "x"], dtype=object)) == (2, 1 + 2 + 1 + 1)
    assert check_structure([np.arange(3), np.float32(1), b"ab", 2j]) == (1, 5)


class _Table:
    """A stand-in object of another loader, which lists its contents with ``pickle_children``."""

    def __init__(self, *cells):
        self.cells = list(cells)

    def pickle_children(self):
        return self.cells


def test_leaves_are_weighed_and_stand_ins_are_walked():
    # bytes: an int64 array of 3 (24), a numpy float (8, like any number), b"ab" (2), a complex (8) = 42
    leaves = [np.arange(3, dtype=np.int64), np.float32(1), b"ab", 2j]
    with limits_override(max_file_bytes=42):
        assert check_structure(leaves) == (1, 5)
    with limits_override(max_file_bytes=41):
        with pytest.raises(UnsafePickleError, match=r"^pickle: its strings expand to more than 41 bytes"):
            check_structure(leaves)  # the default source is 'pickle'
    table = _Table("abc", [1, 2], _Table(5))
    assert check_structure(table) == (2, 1 + 1 + 3 + 2)
    assert check_structure([table, table]) == (3, 1 + 2 * 7)
    numbers = np.zeros((2, 2))
    assert check_structure([numbers]) == (1, 2)  # a numeric array is one leaf
    with limits_override(max_file_bytes=31):
        with pytest.raises(UnsafePickleError, match="more than 31 bytes"):
            check_structure([numbers])


def test_the_structure_limits_are_each_enforced_at_their_value():
    data = ["abcd"] * 5 + [["x" * 10]]  # 1 + 5 + 2 = 8 elements, 4 * 5 + 10 = 30 string bytes, depth 2
    assert check_structure(data) == (2, 8)
    with limits_override(max_items=8, max_file_bytes=30, max_depth=2):
        assert check_structure(data) == (2, 8)
    with limits_override(max_items=7):
        with pytest.raises(UnsafePickleError, match=r"^s\.pkl: expands to more than 7 elements \(shared references "
                                                    r"counted each time they are used; limit max_items=7"):
            check_structure(data, "s.pkl")
    with limits_override(max_file_bytes=29):
        with pytest.raises(UnsafePickleError, match=r"^s\.pkl: its strings expand to more than 29 bytes \(shared "
                                                    r"references counted each time they are used; limit "):
            check_structure(data, "s.pkl")
    with limits_override(max_depth=1):
        with pytest.raises(UnsafePickleError, match=r"^s\.pkl: nested more than 1 levels deep \(limit max_depth=1"):
            check_structure(data, "s.pkl")
    with limits_override(max_items=2, max_file_bytes=20):  # 2 elements (not more than 2), 25 bytes: the bytes
        with pytest.raises(UnsafePickleError, match=r"^pickle: its strings expand to more than 20 bytes"):
            check_structure(["x" * 25])
    # a single list of scalars: the limit is checked as its elements are counted (nothing follows to catch it)
    with limits_override(max_items=5):
        assert check_structure(["a"] * 4) == (1, 5)
        with pytest.raises(UnsafePickleError, match=r"^r\.pkl: expands to more than 5 elements"):
            check_structure(["a"] * 5, "r.pkl")
    with limits_override(max_file_bytes=24):
        assert check_structure([1, 2.5, None]) == (1, 4)  # 8 bytes for each number (and None)
        with pytest.raises(UnsafePickleError, match=r"^r\.pkl: its strings expand to more than 24 bytes"):
            check_structure([1, 2, 3, True], "r.pkl")
    with limits_override(max_items=5):  # the same for leaves of other types (numpy scalars), at the limit
        assert check_structure([np.float32(1)] * 4) == (1, 5)
        with pytest.raises(UnsafePickleError, match="more than 5 elements"):
            check_structure([np.float32(1)] * 5)
    with limits_override(max_file_bytes=6):
        assert check_structure(["abc", b"def"]) == (1, 3)
        with pytest.raises(UnsafePickleError, match="more than 6 bytes"):
            check_structure(["abc", b"defg"])
    shared = [["x" * 10]] * 3  # 10 string bytes held once, expanded three times
    with limits_override(max_file_bytes=29):
        with pytest.raises(UnsafePickleError, match="strings expand to more than 29 bytes"):
            check_structure(shared)
    with limits_override(max_items=6):
        with pytest.raises(UnsafePickleError, match="more than 6 elements"):
            check_structure(shared)  # 1 + 3 * 2 = 7


def test_shared_containers_are_measured_after_loading_under_the_files_name():
    shared = [list(range(10))] * 10  # the scan cannot vouch for it: the loaded object is walked
    with limits_override(max_items=110):
        with pytest.raises(UnsafePickleError, match=r"^s\.pkl: expands to more than 110 elements"):
            safe_loads(pickle.dumps(shared), source="s.pkl")
    with limits_override(max_items=111):
        assert safe_loads(pickle.dumps(shared), source="s.pkl") == shared


def test_a_cycle_is_refused_wherever_it_closes():
    inner: list = [1]
    outer = [[inner], 2]
    inner.append(outer)
    with pytest.raises(UnsafePickleError, match=r"^c\.pkl: a container holds itself \(a reference cycle\); plain data "
                                                "never does$"):
        check_structure(outer, "c.pkl")
    with pytest.raises(UnsafePickleError, match="holds itself"):
        safe_loads(pickle.dumps(outer))
    itself: list = []
    itself.append(itself)
    with pytest.raises(UnsafePickleError, match="holds itself"):
        check_structure([[1], itself])  # a cycle below the root
    with limits_override(max_depth=1):  # found as a cycle at the root, before any nesting is counted
        with pytest.raises(UnsafePickleError, match="holds itself"):
            check_structure(itself)
