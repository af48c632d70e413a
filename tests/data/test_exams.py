"""Exam lists: validation, pickle/JSON round trips, the restricted unpickler."""

from __future__ import annotations

import json
import os
import pickle
import pickletools

import numpy as np
import pytest

from mammoscreen.data import (Exam, ExamListError, UnsafePickleError, add_image_metadata, exams_from_data,
                              exams_to_data, iter_images, load_exam_list, safe_loads, save_exam_list)


def sample_data():
    """An exam list as the official preprocessing writes it: numpy int64 scalars in tuples."""
    i = np.int64
    return [
        {"horizontal_flip": "NO", "L-CC": ["a_L-CC"], "R-CC": ["a_R-CC"], "L-MLO": ["a_L-MLO"], "R-MLO": ["a_R-MLO"],
         "cancer_label": {"benign": 1, "malignant": 0, "left_benign": 0, "right_benign": 1, "left_malignant": 0,
                          "right_malignant": 0, "unknown": 0},
         "L-CC_benign_seg": ["a_L-CC_benign"],
         "window_location": {v: [(i(0), i(2000), i(0), i(800))] for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")},
         "best_center": {v: [(i(1000), i(-200))] for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")}},
        {"horizontal_flip": "YES", "L-CC": ["b_L-CC", "b_L-CC2"], "R-CC": [], "L-MLO": [], "R-MLO": ["b_R-MLO"],
         "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 1, "right_malignant": 0},
         "window_location": {"L-CC": [(1, 2, 3, 4), (5, 6, 7, 8)], "R-CC": [], "L-MLO": [], "R-MLO": [(9, 10, 11, 12)]},
         "best_center": {"L-CC": [(1, 2), (3, 4)], "R-CC": [], "L-MLO": [], "R-MLO": [(5, 6)]}},
    ]


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol_loads_to_the_same_plain_data(tmp_path, protocol):
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps(sample_data(), protocol=protocol))
    exams = load_exam_list(path)
    assert exams_to_data(exams) == sample_data()
    # numpy scalars become plain Python ints
    assert type(exams[0].image_metadata["window_location"]["L-CC"][0][1]) is int


def test_written_pickle_uses_protocol_4_and_round_trips(tmp_path):
    exams = exams_from_data(sample_data())
    path = save_exam_list(exams, tmp_path / "out.pkl")
    first_opcode = next(pickletools.genops(path.read_bytes()))
    assert first_opcode[0].name == "PROTO" and first_opcode[1] == 4
    assert exams_to_data(load_exam_list(path)) == sample_data()


def test_json_round_trip_restores_tuples(tmp_path):
    exams = exams_from_data(sample_data())
    path = save_exam_list(exams, tmp_path / "out.json")
    raw = json.loads(path.read_text())
    assert raw[0]["best_center"]["L-CC"] == [[1000, -200]]
    again = load_exam_list(path)
    assert exams_to_data(again) == sample_data()
    assert again[1].image_metadata["best_center"]["L-CC"][1] == (3, 4)


def test_unknown_keys_are_kept():
    exams = exams_from_data(sample_data())
    assert exams[0].extra == {"L-CC_benign_seg": ["a_L-CC_benign"]}
    assert exams_to_data(exams)[0]["L-CC_benign_seg"] == ["a_L-CC_benign"]


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_crafted_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([{"L-CC": ["x"], "evil": _RunsCode(str(marker))}], protocol=2)
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(ExamListError, match="refusing to load posix.mkdir|refusing to load os.mkdir"):
        load_exam_list(path)
    assert not marker.exists()


@pytest.mark.parametrize("obj", [np.arange(3), np.array(["a"], dtype=object)[0:1], Exam(), np.str_("x")])
def test_non_plain_objects_are_refused(obj):
    with pytest.raises(UnsafePickleError):
        safe_loads(pickle.dumps(obj))


def test_plain_containers_and_numpy_scalars_are_accepted():
    data = {"a": [1, 2.5, None, True, "s", (np.float32(1.5), np.int16(-3), np.bool_(True))], "b": {1, 2}}
    assert safe_loads(pickle.dumps(data, protocol=2)) == data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d[0].__setitem__("L-CC", "a_L-CC"),
     "exam 0, key 'L-CC': expected a list of image names, got the string"),
    (lambda d: d[0].__setitem__("horizontal_flip", "no"), "exam 0, key 'horizontal_flip'"),
    (lambda d: d[1]["cancer_label"].__setitem__("left_malignant", 2),
     r"exam 1, key 'cancer_label'\['left_malignant'\]"),
    (lambda d: d[1]["best_center"].__setitem__("L-CC", [(1, 2)]),
     r"exam 1, key 'best_center'\['L-CC'\]: expected a list with one entry per image \(2\)"),
    (lambda d: d[0]["best_center"].pop("R-MLO"), "exam 0, key 'best_center': no entry for view 'R-MLO'"),
    (lambda d: d[0]["window_location"].__setitem__("L-CC", [(1, 2, 3)]),
     r"exam 0, key 'window_location'\['L-CC'\]\[0\]: expected a sequence of 4"),
    (lambda d: d[0]["best_center"].__setitem__("L-CC", [(1.5, 2)]), "expected an integer, got 1.5"),
])
def test_structure_errors_name_the_exam_and_key(mutate, message):
    data = sample_data()
    mutate(data)
    with pytest.raises(ExamListError, match=message):
        exams_from_data(data, source="list.pkl")


def test_a_dict_instead_of_a_list_is_explained(tmp_path):
    with pytest.raises(ExamListError, match="got a single dict"):
        exams_from_data(sample_data()[0])
    path = tmp_path / "x.csv"
    path.write_text("a,b")
    with pytest.raises(ExamListError, match="unknown exam-list format"):
        load_exam_list(path)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ExamListError, match="not a readable pickle"):
        load_exam_list(bad)


def test_iter_images_follows_the_official_order_with_labels():
    records = list(iter_images(exams_from_data(sample_data())))
    assert [(r.exam_index, r.view, r.name) for r in records] == [
        (0, "L-CC", "a_L-CC"), (0, "R-CC", "a_R-CC"), (0, "L-MLO", "a_L-MLO"), (0, "R-MLO", "a_R-MLO"),
        (1, "L-CC", "b_L-CC"), (1, "L-CC", "b_L-CC2"), (1, "R-MLO", "b_R-MLO")]
    assert [(r.benign_label, r.malignant_label) for r in records] == [
        (0, 0), (1, 0), (0, 0), (1, 0), (0, 1), (0, 1), (0, 0)]
    # horizontal_flip 'NO': right views are mirrored; 'YES': left views are.
    assert [r.flip for r in records] == [False, True, False, True, True, True, False]
    assert records[5].metadata["best_center"] == (3, 4)


def test_add_image_metadata_drops_missing_images_and_keeps_alignment():
    exams = exams_from_data(sample_data())
    values = {name: {"best_center": (k, k)} for k, name in enumerate(
        ["a_L-CC", "a_R-CC", "a_L-MLO", "a_R-MLO", "b_L-CC2", "b_R-MLO"])}  # b_L-CC failed
    out = add_image_metadata(exams, values)
    assert out[1].images["L-CC"] == ["b_L-CC2"]
    assert out[1].image_metadata["window_location"]["L-CC"] == [(5, 6, 7, 8)]
    assert out[1].image_metadata["best_center"]["L-CC"] == [(4, 4)]
    assert exams[1].images["L-CC"] == ["b_L-CC", "b_L-CC2"]  # the input is not modified


def test_unlabelled_exam_gives_unknown_labels():
    exam = Exam(images={"L-CC": ["x"], "R-CC": [], "L-MLO": [], "R-MLO": []})
    (record,) = iter_images([exam])
    assert (record.benign_label, record.malignant_label) == (None, None)


def test_reference_lists_load_unchanged(reference_dir):
    for name in ("exam_list_before_cropping.pkl", "gmic/cropped/cropped_exam_list.pkl", "gmic/data.pkl"):
        path = reference_dir / name
        with open(path, "rb") as f:
            raw = pickle.load(f)
        assert exams_to_data(load_exam_list(path)) == raw


@pytest.mark.parametrize("key", ["L-XCCL", "l-cc", "RCC", "LEFT_MLO", "R-CC-ID"])
def test_an_unknown_view_key_is_an_error_naming_the_file_exam_and_key(tmp_path, key):
    data = sample_data()
    data[1][key] = ["b_extra"]
    path = tmp_path / "exams.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(ExamListError) as error:
        load_exam_list(path)
    message = str(error.value)
    assert message.startswith(f"{path}: exam 1, key {key!r}: not a view mammoscreen knows")
    assert "--ignore-unknown-views" in message and "b_extra" in message


def test_ignoring_unknown_views_warns_once_naming_every_image_left_out(tmp_path):
    from mammoscreen.data.exams import UnknownViewWarning

    data = sample_data()
    data[0]["L-XCCL"] = ["a_xccl"]
    data[1]["l-cc"] = ["b_lower1", "b_lower2"]
    path = tmp_path / "exams.json"
    path.write_text(json.dumps(data, default=int))
    with pytest.warns(UnknownViewWarning) as caught:
        exams = load_exam_list(path, ignore_unknown_views=True)
    assert len(caught) == 1
    message = str(caught[0].message)
    for text in (str(path), "exam 0 'L-XCCL': a_xccl", "exam 1 'l-cc': b_lower1, b_lower2"):
        assert text in message
    assert [r.name for r in iter_images(exams)] == [r.name for r in iter_images(exams_from_data(sample_data()))]
    assert "L-XCCL" not in exams[0].extra and exams[0].extra["L-CC_benign_seg"] == ["a_L-CC_benign"]
