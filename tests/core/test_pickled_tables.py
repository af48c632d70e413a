"""Pickled DataFrames read without pandas' unpickler."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pandas as pd
import pytest

from hostile import dataframe_with_canary
from mammoscreen.core.limits import limits_override
from mammoscreen.core.pickled_tables import TableError, load_table_bytes, load_table_pickle
from mammoscreen.core.safepickle import UnsafePickleError


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"case_ID": ["7", "7", "9", "9"], "side": ["L", "R", "L", "R"], "label": [0, 1, 0, 0],
                         "Reader01_POM": [0.1, 0.95, np.nan, 0.3], "AI_Net_POM": np.float32([0.2, 0.8, 0.1, 0.4]),
                         "flag": [True, False, True, True], 3: [1, 2, 3, 4]})


def _rebuilt(table) -> pd.DataFrame:
    frame = pd.DataFrame(dict(zip(range(len(table.columns)), table.data)), index=table.index)
    frame.columns = table.columns
    frame.index.name = table.index_name
    return frame


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_dataframes_of_every_protocol(protocol):
    frame = _frame()
    buffer = io.BytesIO()
    frame.to_pickle(buffer, protocol=protocol)
    rebuilt = _rebuilt(load_table_bytes(buffer.getvalue()))
    pd.testing.assert_frame_equal(rebuilt, frame)


def test_a_custom_index_and_a_column_block_in_any_order():
    frame = _frame().set_index("case_ID")[["AI_Net_POM", "label", "side", "Reader01_POM"]]
    buffer = io.BytesIO()
    frame.to_pickle(buffer)
    table = load_table_bytes(buffer.getvalue())
    assert table.columns == ["AI_Net_POM", "label", "side", "Reader01_POM"]
    assert list(table.index) == ["7", "7", "9", "9"]
    pd.testing.assert_frame_equal(_rebuilt(table), frame, check_index_type=False, check_column_type=False)


def test_the_released_reader_study_table(reference_dir):
    path = reference_dir.parent / "reader_study" / "results.pkl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    table = load_table_pickle(path)
    official = pd.read_pickle(path)  # the trusted release: the comparison may use pandas' own unpickler
    assert table.columns == list(official.columns) and list(table.index) == list(official.index)
    for name, values in zip(table.columns, table.data):
        assert list(values) == list(official[name]) or np.allclose(values, official[name], equal_nan=True), name


def test_a_crafted_cell_is_refused_and_nothing_runs(tmp_path):
    canary = tmp_path / "canary"
    with pytest.raises(UnsafePickleError, match="refusing to load io.open"):
        load_table_bytes(dataframe_with_canary(canary), "study.pkl")
    assert not canary.exists()


def test_other_objects_and_column_types_are_refused():
    with pytest.raises(TableError, match="expected a pickled pandas DataFrame"):
        load_table_bytes(pickle.dumps([1, 2]))
    categorical = pd.DataFrame({"a": pd.Categorical(["x", "y"])})
    with pytest.raises((TableError, UnsafePickleError), match="CSV"):
        load_table_bytes(pickle.dumps(categorical))


def test_array_sizes_are_checked_against_the_data_held():
    buffer = io.BytesIO()
    pd.DataFrame({"x": np.arange(1000, dtype=np.float64)}).to_pickle(buffer, protocol=2)
    data = buffer.getvalue()
    with limits_override(max_array_bytes=4000):
        with pytest.raises(UnsafePickleError, match="MAMMOSCREEN_MAX_ARRAY_BYTES"):
            load_table_bytes(data)
    # A shape that claims more values than the bytes hold: (1000,) -> (100000,) in the pickled tuple.
    doctored = data.replace(b"M\xe8\x03", b"J\xa0\x86\x01\x00", 1)
    assert doctored != data
    with pytest.raises((TableError, UnsafePickleError)):
        load_table_bytes(doctored)
