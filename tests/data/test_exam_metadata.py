"""Exam-list metadata: validated at the edge, carried through every round trip, crop and centres."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from mammoscreen.data import Exam, ExamListError, add_image_metadata, exams_from_data, load_exam_list, save_exam_list
from mammoscreen.data.exam_metadata import breast_value, image_value, metadata_coverage
from mammoscreen.data.exams import exams_to_data


def exam_dict(prefix="a", metadata=None, views=("L-CC", "R-CC", "L-MLO", "R-MLO")):
    raw = {"horizontal_flip": "NO", "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 1,
                                                     "right_malignant": 0}}
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        raw[view] = [f"{prefix}_{view}"] if view in views else []
    if metadata is not None:
        raw["metadata"] = metadata
    return raw


METADATA = {"age": 61, "manufacturer": "HOLOGIC", "site": "2", "implant": False, "bmi": 23.5, "subtype": None,
            "images": {"a_L-CC": {"density": "C", "abnormality": "mass"}, "a_L-MLO": {"density": "C"},
                       "a_R-CC": {"density": "B"}}}


@pytest.mark.parametrize("suffix", [".pkl", ".json"])
def test_metadata_round_trips_through_pickle_and_json(tmp_path, suffix):
    exams = exams_from_data([exam_dict(metadata=METADATA), exam_dict("b")])
    path = save_exam_list(exams, tmp_path / f"list{suffix}")
    again = load_exam_list(path)
    assert again == exams
    assert again[0].metadata == METADATA
    assert exams_to_data(again)[0]["metadata"] == METADATA
    # an exam without metadata is written without the key: old lists keep their exact shape
    assert "metadata" not in exams_to_data(again)[1]
    assert again[1].metadata == {}


def test_old_exam_lists_without_metadata_load_unchanged(tmp_path):
    raw = [exam_dict()]
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=2))
    exams = load_exam_list(path)
    assert exams[0].metadata == {} and exams_to_data(exams) == raw
    # and written back, byte for byte what a list without metadata gives
    assert pickle.loads(save_exam_list(exams, tmp_path / "again.pkl").read_bytes()) == raw


def test_numpy_scalars_become_plain_values_and_nan_means_missing():
    raw = exam_dict(metadata={"age": np.int64(53), "weight": np.float32(61.5), "site": float("nan"),
                              "images": {"a_L-CC": {"density": np.str_("D")}}})
    (exam,) = exams_from_data([raw])
    assert exam.metadata == {"age": 53, "weight": 61.5, "site": None, "images": {"a_L-CC": {"density": "D"}}}
    assert type(exam.metadata["age"]) is int and type(exam.metadata["weight"]) is float


@pytest.mark.parametrize("metadata, message", [
    ([("age", 50)], "expected a dict"),
    ({"age": [50, 51]}, "must be text, numbers"),
    ({"age": {"years": 50}}, "must be text, numbers"),
    ({"age": float("inf")}, "finite number"),
    ({"note": "x" * 2000}, "short categories"),
    ({3: "x"}, "non-empty text"),
    ({"images": {"z_L-CC": {"density": "A"}}}, "'z_L-CC' is not an image of this exam"),
    ({"images": ["a_L-CC"]}, "image name -> "),
    ({"images": {"b_L-CC": {"images": {}}}}, "reserved"),
    ({"images": {"b_L-CC": {"density": ("A", "B")}}}, "must be text, numbers"),
])
def test_malformed_metadata_is_refused_naming_the_file_exam_and_key(tmp_path, metadata, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps([exam_dict(), exam_dict("b", metadata=metadata)]))
    with pytest.raises(ExamListError, match=message) as error:
        load_exam_list(path)
    assert str(path) in str(error.value) and "exam 1" in str(error.value)


def test_an_exam_built_with_metadata_among_unknown_keys_keeps_it_as_metadata():
    exam = Exam(images={"L-CC": ["a_L-CC"], "R-CC": [], "L-MLO": [], "R-MLO": []},
                extra={"metadata": {"age": 70}, "note": 1})
    assert exam.metadata == {"age": 70} and exam.extra == {"note": 1}
    assert exams_from_data(exams_to_data([exam])) == [exam]


def test_writing_metadata_that_names_a_missing_image_fails_before_the_file_is_written(tmp_path):
    exam = Exam(images={"L-CC": ["a_L-CC"], "R-CC": [], "L-MLO": [], "R-MLO": []},
                metadata={"images": {"gone": {"density": "A"}}})
    with pytest.raises(ExamListError, match="'gone' is not an image"):
        save_exam_list([exam], tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_crop_and_centres_stage_keeps_metadata_and_drops_the_values_of_dropped_images():
    (exam,) = exams_from_data([exam_dict(metadata=METADATA)])
    values = {name: {"original_shape": (100, 80)} for name in ("a_L-CC", "a_R-CC", "a_R-MLO")}  # a_L-MLO failed
    (cropped,) = add_image_metadata([exam], values)
    expected = {k: v for k, v in METADATA.items() if k != "images"}
    expected["images"] = {"a_L-CC": METADATA["images"]["a_L-CC"], "a_R-CC": METADATA["images"]["a_R-CC"]}
    assert cropped.metadata == expected
    assert exams_from_data(exams_to_data([cropped])) == [cropped]
    # the input exam is untouched
    assert exam.metadata == METADATA


def test_image_and_breast_values_follow_the_documented_resolution():
    metadata = {"density": "B", "age": 50,
                "images": {"a_L-CC": {"density": "C"}, "a_L-MLO": {"density": "C"},
                           "a_R-CC": {"density": "A"}, "a_R-MLO": {"density": "D"}}}
    (exam,) = exams_from_data([exam_dict(metadata=metadata)])
    assert image_value(exam, "a_L-CC", "density") == "C"
    assert image_value(exam, "a_L-CC", "age") == 50  # the exam's value
    assert image_value(exam, "a_L-CC", "site") is None
    assert breast_value(exam, "left", "density") == ("C", False)  # the images agree
    assert breast_value(exam, "right", "density") == ("B", False)  # they disagree: the exam's value
    assert breast_value(exam, "left", "age") == (50, False)
    del metadata["density"]
    (exam,) = exams_from_data([exam_dict(metadata=metadata)])
    assert breast_value(exam, "right", "density") == (None, True)  # disagree, no exam value: reported
    # an image without its own value does not vote
    (exam,) = exams_from_data([exam_dict(metadata={"images": {"a_L-CC": {"density": "D"}}})])
    assert breast_value(exam, "left", "density") == ("D", False)
    assert breast_value(exam, "right", "density") == (None, False)
    # True and 1 are different values
    (exam,) = exams_from_data([exam_dict(metadata={"images": {"a_L-CC": {"x": True}, "a_L-MLO": {"x": 1}}})])
    assert breast_value(exam, "left", "x") == (None, True)


def test_coverage_counts_exams_images_and_values():
    exams = exams_from_data([
        exam_dict("a", {"age": 61, "images": {"a_L-CC": {"density": "C"}, "a_L-MLO": {"density": "C"},
                                               "a_R-CC": {"density": "A"}, "a_R-MLO": {"density": "B"}}}),
        exam_dict("b", {"age": 45, "density": "B"}, views=("L-CC", "R-CC")),
        exam_dict("c"),
    ])
    coverage = {c.key: c for c in metadata_coverage(exams)}
    assert list(coverage) == ["age", "density"]
    age, density = coverage["age"], coverage["density"]
    assert (age.n_exams, age.n_images) == (2, 6)
    assert age.numeric == {"min": 45.0, "median": 61.0, "max": 61.0}
    assert (density.n_exams, density.n_images) == (2, 6)
    assert density.values == {"B": 3, "C": 2, "A": 1}
    assert density.disagreeing_breasts == ["exam 0 right"]
    line = density.describe(3, 10)
    assert line.startswith("density: 2/3 exams, 6/10 images; B (3), C (2), A (1)") and "exam 0 right" in line


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_validate_command_prints_the_metadata_coverage(synthetic_dataset, capsys):
    from mammoscreen.cli import main

    main(["validate", "--images", str(synthetic_dataset / "images"), "--exam-list",
          str(synthetic_dataset / "exam_list.pkl"), "--quiet", "--workers", "1"])
    out = capsys.readouterr().out
    assert "metadata coverage:" in out
    assert "age: 4/4 exams, 16/16 images; numeric" in out
    assert "density: 4/4 exams, 16/16 images;" in out


def test_json_metadata_file_is_plain_json(tmp_path):
    exams = exams_from_data([exam_dict(metadata=METADATA)])
    raw = json.loads(save_exam_list(exams, tmp_path / "l.json").read_text())
    assert raw[0]["metadata"]["images"]["a_L-CC"] == {"density": "C", "abnormality": "mass"}
    assert raw[0]["metadata"]["implant"] is False


def test_real_crop_and_centres_carry_the_metadata_to_their_exam_lists(tmp_path):
    from testutils import synthetic_breast

    from mammoscreen.data.images import write_png
    from mammoscreen.preprocess.centers import centers_dataset
    from mammoscreen.preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    images = tmp_path / "images"
    for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
        image = synthetic_breast((400, 260), facing="right" if view[0] == "L" else "left", seed=ord(view[2]))
        if view == "R-MLO":
            image[:] = 0  # cannot be cropped: dropped with its metadata
        write_png(images / f"a_{view}.png", image)
    metadata = dict(METADATA, images=dict(METADATA["images"], **{"a_R-MLO": {"density": "B"}}))
    exams = exams_from_data([exam_dict(metadata=metadata)])
    cropped, failures = crop_dataset(images, exams, tmp_path / "cropped", iterations=20, buffer_size=10,
                                     progress=False)
    assert [f.name for f in failures] == ["a_R-MLO"]
    saved = load_exam_list(tmp_path / "cropped" / CROPPED_EXAM_LIST)
    assert saved[0].metadata == METADATA  # a_R-MLO's value went with the image
    centred, _ = centers_dataset(tmp_path / "cropped", saved, tmp_path / "data.json", windows={"CC": (200, 120),
                                                                                              "MLO": (200, 120)},
                                 progress=False)
    assert load_exam_list(tmp_path / "data.json")[0].metadata == METADATA == centred[0].metadata
