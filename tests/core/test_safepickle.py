"""The restricted unpickler: plain data from every protocol, nothing else, and bounded cost."""

from __future__ import annotations

import pickle
import tracemalloc

import numpy as np
import pytest

from hostile import (billion_laughs, build_on_list, canary_call, deep_list, exam_list_laughs, huge_bytearray,
                     memo_index)
from mammoscreen.core.limits import limits_override
from mammoscreen.core.safepickle import (MalformedPickleError, SafeCallable, UnsafePickleError, check_structure,
                                         safe_loads, PLAIN_GLOBALS)

PLAIN = [{"L-CC": ["0_L-CC"], "R-CC": [], "horizontal_flip": "NO",
          "cancer_label": {"left_benign": 0, "right_malignant": 1, "unknown": None},
          "window_location": {"L-CC": [(0, 3328, 10, 2560)]}, "flags": {True, False}, "frozen": frozenset({1}),
          "bytes": b"\x00\xff", "buffer": bytearray(b"ab"), "float": 1.5, "complex": 1 + 2j, "big": 2 ** 80,
          "numpy": [np.int64(7), np.float32(0.25), np.uint16(65535), np.bool_(True)]}]


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_of_every_protocol_round_trips(protocol):
    loaded = safe_loads(pickle.dumps(PLAIN, protocol=protocol))
    assert loaded == PLAIN
    assert [type(x) for x in loaded[0]["numpy"]] == [np.int64, np.float32, np.uint16, np.bool_]


@pytest.mark.parametrize("how", ["open", "system", "exec", "popen"])
def test_globals_that_would_run_code_are_refused_and_nothing_runs(tmp_path, how):
    canary = tmp_path / "canary"
    with pytest.raises(UnsafePickleError, match="refusing to load"):
        safe_loads(canary_call(canary, how), source="x.pkl")
    assert not canary.exists()


@pytest.mark.slow
def test_each_limit_is_enforced_before_the_data_is_expanded():
    tracemalloc.start()
    try:
        with pytest.raises(UnsafePickleError, match="more than 50,000,000 elements"):
            safe_loads(billion_laughs(10, 10))  # 10**10 elements when copied
        with pytest.raises(UnsafePickleError, match="more than 50,000,000 elements"):
            safe_loads(exam_list_laughs(9, 10))
        with pytest.raises(UnsafePickleError, match="bytearray"):
            safe_loads(huge_bytearray(3 * 10 ** 9))
        with pytest.raises(UnsafePickleError, match="memo index 2147483647"):
            safe_loads(memo_index(2 ** 31 - 1))
        with pytest.raises(UnsafePickleError, match="nested more than 100 levels"):
            safe_loads(deep_list(100_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2 ** 20  # the refused files cost what their bytes cost, not what they ask for


def test_build_on_a_list_is_a_clear_error():
    with pytest.raises(MalformedPickleError, match="BUILD on a list"):
        safe_loads(build_on_list())


def test_limits_can_be_changed():
    data = pickle.dumps([[[[1]]]])
    with limits_override(max_depth=3):
        with pytest.raises(UnsafePickleError, match="MAMMOSCREEN_MAX_DEPTH"):
            safe_loads(data)
    assert safe_loads(data) == [[[[1]]]]
    shared = [list(range(10))] * 10  # 10 references to one list: 1 + 10 * 11 = 111 elements when walked
    assert check_structure(safe_loads(pickle.dumps(shared)))[1] == 111
    with limits_override(max_items=110):
        with pytest.raises(UnsafePickleError, match="more than 110 elements"):
            safe_loads(pickle.dumps(shared))


def test_cycles_are_refused():
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(UnsafePickleError, match="holds itself"):
        safe_loads(pickle.dumps(cycle))


def test_allowed_callables_cannot_be_changed_by_a_pickle():
    # BUILD with (None, {'_function': ...}) would set attributes on the callable the next load uses.
    pickled = b"\x80\x02cbuiltins\nlist\nN}X\x09\x00\x00\x00_functionK\x01s\x86b."
    with pytest.raises((UnsafePickleError, MalformedPickleError)):
        safe_loads(pickled)
    callable_ = PLAIN_GLOBALS[("builtins", "list")]
    assert isinstance(callable_, SafeCallable) and callable_([1]) == [1]


def test_malformed_pickles_name_the_source():
    with pytest.raises(MalformedPickleError, match="^exams.pkl: not a readable pickle"):
        safe_loads(b"\x80\x02]q\x00(", source="exams.pkl")
    with pytest.raises(MalformedPickleError, match="^exams.pkl"):
        safe_loads(b"not a pickle at all", source="exams.pkl")
