"""The opcode scans that run before a pickle is loaded: where they stop, what they refuse and say, the globals
they list, and when they vouch for a tree (so that the loaded object need not be walked)."""

from __future__ import annotations

import collections
import pickle
import pickletools
import struct

import pytest

from mammoscreen.core.limits import limits_override
from mammoscreen.core.pickle_scan import (MalformedPickleError, UnsafePickleError, _opcode_table, scan_opcodes,
                                          tree_scan)

SCANS = [scan_opcodes, tree_scan]


def refusal(scan, data, kind=UnsafePickleError):
    with pytest.raises(kind) as error:
        scan(data, "s.pkl")
    return str(error.value)


# ---------------------------------------------------------------------------------------------- scan_opcodes

def test_the_opcode_table_reads_arguments_as_the_pickle_format_defines_them():
    table = _opcode_table()  # byte -> (name, how the argument is read, fixed size or number of lines)
    assert len(table) == len(pickletools.opcodes) == 68
    assert table[ord(".")] == ("STOP", 0, 0) and table[ord("]")] == ("EMPTY_LIST", 0, 0)
    assert table[ord("K")] == ("BININT1", 0, 1) and table[ord("J")] == ("BININT", 0, 4)
    assert table[ord("q")] == ("BINPUT", 0, 1) and table[ord("r")] == ("LONG_BINPUT", 0, 4)
    assert table[0x95] == ("FRAME", 0, 8) and table[0x80] == ("PROTO", 0, 1)
    assert table[ord("c")] == ("GLOBAL", pickletools.UP_TO_NEWLINE, 2)  # module and name: two lines
    assert table[ord("i")] == ("INST", pickletools.UP_TO_NEWLINE, 2)
    assert table[ord("p")] == ("PUT", pickletools.UP_TO_NEWLINE, 1) and table[ord("I")] == ("INT", -1, 1)
    assert table[ord("X")] == ("BINUNICODE", pickletools.TAKEN_FROM_ARGUMENT4U, 1)
    assert table[ord("U")] == ("SHORT_BINSTRING", pickletools.TAKEN_FROM_ARGUMENT1, 1)
    assert table[0x8E] == ("BINBYTES8", pickletools.TAKEN_FROM_ARGUMENT8U, 1)


def test_the_default_source_is_pickle():
    for scan in SCANS:
        with pytest.raises(MalformedPickleError, match=r"^pickle: not a readable pickle \(unknown opcode"):
            scan(b"\x80\x02\xff.")


def test_the_scan_returns_the_position_after_stop():
    first, second = pickle.dumps([1, "a"], protocol=2), pickle.dumps({"b": 2}, protocol=4)
    assert scan_opcodes(first) == len(first)
    assert scan_opcodes(first + second) == len(first)
    assert scan_opcodes(first + second, start=len(first)) == len(first) + len(second)
    text = pickle.dumps([1, "a", 2.5], protocol=0)
    assert scan_opcodes(text + b"trailing") == len(text)


@pytest.mark.parametrize("scan", SCANS)
def test_memo_indices_may_not_skip_ahead(scan):
    # BINPUT: the first entry must be 0; LONG_BINPUT; PUT (text); MEMOIZE numbers itself.
    assert refusal(scan, b"\x80\x02]q\x01.") == (
        "s.pkl: memo index 1 at byte 3 skips ahead of the 0 entries defined so "
        "far; a pickler never writes that")
    assert refusal(scan, b"\x80\x02]q\x00]q\x02.").startswith("s.pkl: memo index 2 at byte 6 skips ahead of the 1 ")
    assert refusal(scan, b"\x80\x02]r" + struct.pack("<I", 2 ** 32 - 1) + b".").startswith(
        "s.pkl: memo index 4294967295 at byte 3 skips ahead of the 0 entries")
    assert refusal(scan, b"(lp1\n.").startswith("s.pkl: memo index 1 at byte 2 skips ahead of the 0 entries")
    assert refusal(scan, b"(lp-1\n.").startswith("s.pkl: memo index -1 at byte 2 skips ahead")
    assert refusal(scan, b"(lpx\n.", MalformedPickleError) == "s.pkl: not a readable pickle (bad memo index at byte 2)"
    assert refusal(scan, b"(lp0\np2\n.").startswith("s.pkl: memo index 2 at byte 5 skips ahead of the 1 entries")
    assert refusal(scan, b"\x80\x02]q\x01").startswith("s.pkl: memo index 1 at byte 3")  # its byte is the last
    assert refusal(scan, b"\x80\x02]q", MalformedPickleError).endswith("(truncated: no STOP opcode)")  # no index
    for fine in (b"\x80\x02]q\x00]q\x01e.", b"(lp0\n(lp1\na.", b"\x80\x04]\x94]\x94a.",
                 b"\x80\x02]q\x00]r\x01\x00\x00\x00a."):
        scan(fine)  # the next index (or any earlier one) is what picklers write


@pytest.mark.parametrize("scan", SCANS)
def test_a_frame_longer_than_the_file_is_refused(scan):
    # A frame's bytes follow its 8-byte length; it may declare exactly the bytes after that, not one more.
    body = b"]\x94."
    framed = b"\x80\x04\x95" + struct.pack("<Q", len(body)) + body
    scan(framed)
    scan(b"\x80\x04\x95" + struct.pack("<Q", 0) + framed[2:])  # an empty frame, then the real one
    assert pickle.loads(b"\x80\x04\x95" + struct.pack("<Q", 0) + framed[2:]) == []

    def frame_refusal(declared, after=body):
        return refusal(scan, b"\x80\x04\x95" + struct.pack("<Q", declared) + after, MalformedPickleError)

    truncated = "s.pkl: not a readable pickle (truncated: the frame at byte 2 declares {:,} bytes, {} follow)"
    assert frame_refusal(len(body) + 1) == truncated.format(4, 3)
    assert frame_refusal(len(body) + 8) == truncated.format(11, 3)
    assert frame_refusal(len(body) + 100) == truncated.format(103, 3)
    assert frame_refusal(100, b"") == truncated.format(100, 0)  # nothing after the length
    assert frame_refusal(2 ** 64 - 1) == truncated.format(2 ** 64 - 1, 3)
    assert frame_refusal(10 ** 12) == truncated.format(10 ** 12, 3)
    assert refusal(scan, b"\x80\x04\x95\x01\x00", MalformedPickleError).endswith("(truncated: no STOP opcode)")
    # A pickle cut short inside its frame: what a partly copied file looks like.
    whole = pickle.dumps(list(range(20)), protocol=4)
    assert whole[2] == 0x95 and struct.unpack_from("<Q", whole, 3)[0] == len(whole) - 11
    scan(whole)
    assert frame_refusal(len(whole) - 11, whole[11:-1]) == truncated.format(len(whole) - 11, len(whole) - 12)


@pytest.mark.parametrize("scan", SCANS)
def test_malformed_streams_are_named_with_the_byte(scan):
    assert refusal(scan, b"\x80\x02\xff.", MalformedPickleError) == ("s.pkl: not a readable pickle (unknown opcode "
                                                                     "b'\\xff' at byte 2)")
    assert refusal(scan, b"\x80\x02]", MalformedPickleError) == \
        "s.pkl: not a readable pickle (truncated: no STOP opcode)"
    assert refusal(scan, b"(I12", MalformedPickleError) == "s.pkl: not a readable pickle (truncated at byte 1)"
    assert refusal(scan, b"\x80\x02X\x05\x00", MalformedPickleError).endswith("(truncated: no STOP opcode)")
    assert refusal(scan, b"\x80\x02T" + struct.pack("<i", -1) + b".", MalformedPickleError) == (
        "s.pkl: not a readable pickle (negative length at byte 2)")
    assert refusal(scan, b"", MalformedPickleError).endswith("(truncated: no STOP opcode)")


def test_the_scan_skips_arguments_of_every_width():
    # Strings whose bytes look like opcodes (a STOP, an unknown opcode) must be skipped, not read as opcodes.
    for value in ["", b"", ".\xff" * 3, b".\xff" * 200, "." * 70_000,
              b"." * 300, bytearray(b".\xff"), 2 ** 100, -(2 ** 2000),
                  1.5, 255, 65535, 2 ** 31, [None, True, False]]:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            data = pickle.dumps([value, "end"], protocol=protocol)
            assert scan_opcodes(data) == len(data), (value, protocol)
            assert tree_scan(data) is True


def globals_of(data: bytes) -> set[str]:
    found: set[str] = set()
    scan_opcodes(data, globals_found=found)
    return found


def test_the_scan_lists_the_globals_a_pickle_names():
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps([collections.OrderedDict, collections.Counter, collections.OrderedDict, len],
                            protocol=protocol)
        builtins = "__builtin__" if protocol < 3 else "builtins"  # as the pickler writes it, not mapped
        assert globals_of(data) == {"collections.OrderedDict", "collections.Counter", f"{builtins}.len"}, protocol
    assert globals_of(b"\x80\x04\x8c\x02os\x8c\x06system\x93.") == {"os.system"}
    # STACK_GLOBAL on strings recalled from the memo (BINGET, LONG_BINGET, GET)
    assert globals_of(b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93h\x00h\x01\x93.") == {"os.system"}
    assert globals_of(b"\x80\x04\x8c\x02os\x94\x8c\x04kill\x94j\x00\x00\x00\x00j\x01\x00\x00\x00\x93.") == {"os.kill"}
    assert globals_of(b"\x80\x02X\x02\x00\x00\x00osq\x00X\x01\x00\x00\x00pq\x01h\x00h\x01\x93.") == {"os.p"}
    assert globals_of(b"\x80\x04\x8c\x02osp0\n\x8c\x04pathp1\ng0\ng1\n\x93.") == {"os.path"}  # PUT, GET (text)
    assert globals_of(b"\x80\x04\x8c\x02osp0\n\x8c\x04pathp1\ngx\ng1\n\x93.") == {"?"}
    assert globals_of(b"(ios\nsystem\n.") == {"os.system"}  # INST
    # a global whose name is not a string the scan can follow
    assert globals_of(b"\x80\x04}}\x93.") == {"?"}
    assert globals_of(b"\x80\x04\x8c\x02os\x94K\x01\x93.") == {"?"}
    assert globals_of(b"\x80\x04\x8c\x02osh\x07\x8c\x01x\x93.") == {"?"}  # recalled entry never stored
    assert globals_of(b"\x80\x04\x8c\x02os\x94\x8c\x01x\x94\x95" + struct.pack("<Q", 3) + b"h\x01.") == set()
    assert globals_of(pickle.dumps({"a": [1, "b"]}, protocol=4)) == set()


def test_the_names_a_global_is_built_from_are_the_last_two_pushes():
    # PROTO and FRAME push nothing: a name on either side of them still counts; any other opcode in between does
    assert globals_of(b"\x80\x04\x8c\x02os\x80\x04\x8c\x06system\x93.") == {"os.system"}
    frame = b"\x95" + struct.pack("<Q", 10)
    assert globals_of(b"\x80\x04\x8c\x02os" + frame + b"\x8c\x06system\x93.") == {"os.system"}
    assert globals_of(b"\x80\x04\x8c\x02osK\x01\x8c\x06system\x93.") == {"?"}
    # names that are not UTF-8 (a Python 2 str) are shown with replacement characters
    assert globals_of(b"\x80\x02U\x02\xe9\xe9U\x01x\x93.") == {"\ufffd\ufffd.x"}
    # LONG_BINGET reads four bytes: memo entry 256 and 257
    many = b"\x80\x04" + b"\x8c\x01a\x94" * 256 + b"\x8c\x02os\x94\x8c\x04path\x94"
    assert globals_of(many + b"j\x00\x01\x00\x00j\x01\x01\x00\x00\x93.") == {"os.path"}
    # BINGET reads one unsigned byte: entries 128 and 129
    above = b"\x80\x04" + b"\x8c\x01a\x94" * 128 + b"\x8c\x02os\x94\x8c\x04path\x94"
    assert globals_of(above + b"h\x80h\x81\x93.") == {"os.path"}
    with pytest.raises(MalformedPickleError, match=r"truncated: no STOP opcode"):
        globals_of(b"\x80\x04\x8c\x02os\x94h")  # BINGET without its index


def test_memo_entries_other_than_strings_are_not_taken_for_names():
    # The memo holds a list (entry 0) and a string (entry 1): GET 0 is not a name.
    data = b"\x80\x04]\x94\x8c\x01x\x94h\x00h\x01\x93."
    assert globals_of(data) == {"?"}
    data = b"\x80\x02]q\x00X\x01\x00\x00\x00xq\x01h\x01h\x01\x93."
    assert globals_of(data) == {"x.x"}


# ---------------------------------------------------------------------------------------------- tree_scan

@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_trees_are_vouched_for(protocol):
    tree = [{"a": (1, 2.5, None), "b": [True, b"xy", "z" * 300]}, (), [], {}, {1, 2}, frozenset({3}), (4,), (5, 6),
            (7, 8, 9), (1, 2, 3, 4)]
    assert tree_scan(pickle.dumps(tree, protocol=protocol)) is True


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_shared_containers_are_left_to_the_structure_check(protocol):
    inner = [1]
    assert tree_scan(pickle.dumps([inner, inner], protocol=protocol)) is False
    assert tree_scan(pickle.dumps({"a": inner, "b": {"c": inner}}, protocol=protocol)) is False
    text = "shared string"
    assert tree_scan(pickle.dumps([text, text, (text,)], protocol=protocol)) is True  # strings are scalars


def test_dup_of_a_container_is_sharing_and_of_a_scalar_is_not():
    assert tree_scan(b"\x80\x02]2a.") is False  # [x] then DUP: the list twice
    assert tree_scan(b"\x80\x02](K\x012e.") is True  # DUP of an int: a scalar
    assert tree_scan(b"\x80\x02]]0.") is True  # POP removes the second list
    assert tree_scan(b"\x80\x02](0.") is True  # POP of a MARK
    assert tree_scan(b"\x80\x02](]1.") is True  # POP_MARK drops what follows the mark


def test_dup_copies_the_top_item_not_one_below_it():
    # [[5, 5]] built as: outer list, inner list, MARK, 5, DUP, APPENDS, APPEND. When DUP runs the stack holds
    # outer list, inner list, 5: the copy is of the int (a scalar, no sharing), so the tree is 2 deep.
    data = b"\x80\x02]](K\x052ea."
    assert pickle.loads(data) == [[5, 5]]
    with limits_override(max_depth=2):
        assert tree_scan(data) is True
    with limits_override(max_depth=1):
        assert tree_scan(data) is False


def test_the_vouching_respects_each_limit_at_its_value():
    nested = pickle.dumps([[[["abcdefghij"]]]], protocol=2)  # depth 4, 5 pushes, 10 text bytes
    with limits_override(max_depth=4, max_items=5, max_file_bytes=len(nested)):
        assert tree_scan(nested) is True
    with limits_override(max_depth=3):
        assert tree_scan(nested) is False
    with limits_override(max_items=4):
        assert tree_scan(nested) is False
    shared_text = pickle.dumps(["abcdefghij"] * 3, protocol=2)  # one string, recalled twice: 30 text bytes
    with limits_override(max_file_bytes=30):
        assert tree_scan(shared_text) is True
    with limits_override(max_file_bytes=29):
        assert tree_scan(shared_text) is False
    with limits_override(max_file_bytes=60):
        assert tree_scan(pickle.dumps(["a" * 20, "b" * 20, "c" * 20])) is True
    with limits_override(max_file_bytes=70):
        many = pickle.dumps(["abcdefghij"] * 8, protocol=2)  # 80 text bytes from a 40-byte file
        assert len(many) <= 70 and tree_scan(many) is False


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_text_bytes_and_pushes_are_counted_in_every_protocol(protocol):
    texts = pickle.dumps(["abcdefghij", "klmnopqrst"], protocol=protocol)  # 20 bytes of text, 3 pushes
    with limits_override(max_file_bytes=20, max_items=3):
        assert tree_scan(texts) is True
    with limits_override(max_file_bytes=19):
        assert tree_scan(texts) is False
    with limits_override(max_items=2):
        assert tree_scan(texts) is False
    four = pickle.dumps(["a", "b", "c", "d"], protocol=protocol)  # 5 pushes
    with limits_override(max_items=5):
        assert tree_scan(four) is True
    with limits_override(max_items=4):
        assert tree_scan(four) is False


def test_recalled_strings_count_their_bytes_and_recalled_numbers_none():
    # [5, 5, 'a'] with the 5 memoized right after its push (BINPUT), or after a MARK: 1 byte of text
    for data in (b"\x80\x02](K\x05q\x00h\x00X\x01\x00\x00\x00ae.", b"\x80\x02](K\x05(q\x001h\x00X\x01\x00\x00\x00ae."):
        with limits_override(max_file_bytes=1):
            assert tree_scan(data) is True
    # 'a' memoized twice (entries 0 and 1), then recalled from entry 1 (BINGET) or 0 (LONG_BINGET): 2 bytes
    for data in (b"\x80\x02](X\x01\x00\x00\x00aq\x00q\x01h\x01e.",
                 b"\x80\x02](X\x01\x00\x00\x00aq\x00q\x01j\x00\x00\x00\x00e."):
        with limits_override(max_file_bytes=2):
            assert tree_scan(data) is True
        with limits_override(max_file_bytes=1):
            assert tree_scan(data) is False
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):  # one string, recalled twice: 4 pushes
        thrice = pickle.dumps(["x"] * 3, protocol=protocol)
        with limits_override(max_items=4):
            assert tree_scan(thrice) is True
        with limits_override(max_items=3):
            assert tree_scan(thrice) is False


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_lists_and_tuples_built_from_the_stack_count_once(protocol):
    data = pickle.dumps([(1, 2)], protocol=protocol)  # list, 1, 2, tuple: 4 pushes (LIST/TUPLE or TUPLE2)
    with limits_override(max_items=4):
        assert tree_scan(data) is True
    with limits_override(max_items=3):
        assert tree_scan(data) is False


def test_newobj_stack_global_and_dup_are_followed():
    assert tree_scan(b"\x80\x02cbuiltins\nlist\n)\x81.") is True  # list() by NEWOBJ
    assert tree_scan(b"\x80\x04]\x8c\x08builtins\x8c\x04list\x93)Ra.") is True  # [list()]
    bare_global = b"\x80\x04]\x8c\x08builtins\x8c\x04list\x93a."  # [list]: a global is a scalar
    with limits_override(max_depth=1):
        assert tree_scan(bare_global) is True


def test_a_dict_keeps_the_depth_of_its_earlier_items():
    data = pickle.dumps({"a": [[1]], "b": 1}, protocol=0)  # SETITEM per item: the second is shallower
    with limits_override(max_depth=3):
        assert tree_scan(data) is True
    with limits_override(max_depth=2):
        assert tree_scan(data) is False


@pytest.mark.parametrize("data", [
    b"\x80\x02]K\x01K\x02\x86.",  # two items left on the stack
    b"\x80\x02a.",  # APPEND without a list
    b"\x80\x02\x85.",  # TUPLE1 on an empty stack
    b"\x80\x02K\x01\x86.",  # TUPLE2 with one item
    b"\x80\x02h\x00.",  # BINGET of nothing
    b"\x80\x02Pabc\n.",  # a persistent id
    b"\x80\x05\x97.",  # NEXT_BUFFER (out of band)
])
def test_anything_the_simulation_cannot_follow_is_not_vouched_for(data):
    assert tree_scan(data) is False


def test_depth_is_simulated_through_every_building_opcode():
    deep = {"APPEND": b"]]a", "APPENDS": b"](]e", "SETITEM": b"}K\x01]s", "SETITEMS": b"}(K\x01]u",
            "LIST": b"(]l", "TUPLE": b"(]t", "DICT": b"(K\x01]d", "TUPLE1": b"]\x85", "TUPLE2": b"K\x01]\x86",
            "TUPLE3": b"K\x01K\x02]\x87", "FROZENSET": b"(]\x91", "ADDITEMS": b"\x8f(]\x90",
            "SETITEM key": b"}]K\x01s", "LIST of nothing": b"](la"}
    for name, body in deep.items():
        data = b"\x80\x04" + body + b"."
        with limits_override(max_depth=2):
            assert tree_scan(data) is True, name
        with limits_override(max_depth=1):
            assert tree_scan(data) is False, name


def test_calls_are_no_deeper_than_their_arguments():
    call = b"\x80\x02cbuiltins\nlist\n]]a\x85R."  # list(([[]],)): arguments depth 3
    with limits_override(max_depth=3):
        assert tree_scan(call) is True
    with limits_override(max_depth=2):
        assert tree_scan(call) is False
    build = b"\x80\x02cbuiltins\nlist\n)R]]ab."  # list() with the state [[]]: depth 2
    with limits_override(max_depth=2):
        assert tree_scan(build) is True
    with limits_override(max_depth=1):
        assert tree_scan(build) is False
    stacked = b"\x80\x04\x8c\x08builtins\x8c\x04list\x93]]a\x85R."  # STACK_GLOBAL, then a call as above
    with limits_override(max_depth=3):
        assert tree_scan(stacked) is True
    with limits_override(max_depth=2):
        assert tree_scan(stacked) is False
    newobj_ex = b"\x80\x04\x8c\x08builtins\x8c\x04list\x93]]a\x85}\x92."  # keywords shallower than args
    with limits_override(max_depth=3):
        assert tree_scan(newobj_ex) is True
    with limits_override(max_depth=2):
        assert tree_scan(newobj_ex) is False
