"""JSON with a depth and a size limit, measured without parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mammoscreen.core.limits import limits_override
from mammoscreen.core.safejson import JSONInputError, json_depth, load_json, loads_json

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(alphabet=st.sampled_from('ab[]{}"\\\n é')),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=4),
                           max_leaves=30)


def _depth(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@given(json_values)
def test_the_measured_depth_is_the_parsed_depth(value):
    # Brackets and quotes inside strings (escaped or not) do not count.
    text = json.dumps(value, ensure_ascii=False)
    assert json_depth(text) == _depth(value)
    assert loads_json(text) == value


def test_deep_and_large_documents_are_refused_before_parsing(tmp_path):
    with pytest.raises(JSONInputError, match="nested 100000 levels deep"):
        loads_json("[" * 100_000 + "]" * 100_000, "exams.json")
    with limits_override(max_file_bytes=100):
        with pytest.raises(JSONInputError, match="MAMMOSCREEN_MAX_FILE_BYTES"):
            loads_json("[" + "1," * 100 + "1]")
        path = tmp_path / "big.json"
        path.write_text("[" + "1," * 100 + "1]")
        with pytest.raises(JSONInputError, match="big.json: larger than 100 bytes"):
            load_json(path)


def test_malformed_json_names_the_source(tmp_path):
    with pytest.raises(JSONInputError, match="^exams.json is not valid JSON"):
        loads_json("{", "exams.json")
    with pytest.raises(JSONInputError, match="not usable JSON"):
        loads_json("1" * 5000)  # more digits than Python converts to an int
    path = tmp_path / "latin1.json"
    path.write_bytes(b'["\xe9"]')
    with pytest.raises(JSONInputError, match="not UTF-8"):
        load_json(path)


def test_an_unterminated_string_costs_linear_time():
    # Every later quote would start a new failed match with a naive pattern (quadratic time).
    text = '"' + '\\"' * 200_000
    assert json_depth(text) == 0
