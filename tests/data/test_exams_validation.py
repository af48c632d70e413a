"""Exam lists at the edge: every refusal names the file, the exam and the key and says what was expected; the
small helpers (views, flips, labels, records) and the writers' exact output."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pytest

from mammoscreen.data.exams import (VIEWS, Exam, ExamListError, ImageRecord, add_image_metadata, exam_from_dict,
                                    exams_from_data, exams_to_data, iter_images, load_exam_list, needs_flip,
                                    save_exam_list, save_exam_list_if_changed, view_angle, view_side)


def exam(**changes):
    raw = {"horizontal_flip": "NO", "L-CC": ["l_cc"], "R-CC": ["r_cc"], "L-MLO": [], "R-MLO": ["r_mlo"],
           "cancer_label": {"left_benign": 0, "right_benign": 1, "left_malignant": 0, "right_malignant": 1}}
    raw.update(changes)
    return raw


def error_of(raw, **kwargs):
    with pytest.raises(ExamListError) as error:
        exam_from_dict(raw, 3, "list.pkl", **kwargs)
    return str(error.value)


# ---------------------------------------------------------------------------------------------- helpers

def test_views_sides_angles_and_flips():
    assert [(view_side(v), view_angle(v)) for v in VIEWS] == [("L", "CC"), ("R", "CC"), ("L", "MLO"), ("R", "MLO")]
    assert [needs_flip(v, "NO") for v in VIEWS] == [False, True, False, True]
    assert [needs_flip(v, "YES") for v in VIEWS] == [True, False, True, False]
    with pytest.raises(ValueError, match=r"^horizontal_flip must be 'YES' or 'NO', got 'no'$"):
        needs_flip("L-CC", "no")
    record = ImageRecord(0, "R-MLO", 0, "x", "YES", {})
    assert (record.side, record.angle, record.flip) == ("R", "MLO", False)


def test_labels_of_a_view_come_from_its_breast():
    (loaded,) = exams_from_data([exam()])
    assert loaded.labels_for_view("L-CC") == (0, 0) and loaded.labels_for_view("R-MLO") == (1, 1)
    partial = Exam(cancer_label={"left_malignant": 1})
    assert partial.labels_for_view("L-MLO") == (None, 1) and partial.labels_for_view("R-CC") == (None, None)
    assert Exam().labels_for_view("L-CC") == (None, None) and Exam().image_names() == []
    assert loaded.image_names() == ["l_cc", "r_cc", "r_mlo"]


def test_metadata_given_among_the_unknown_keys_moves_to_its_place():
    moved = Exam(images={"L-CC": ["a"]}, extra={"metadata": {"age": 50}, "other": 1})
    assert moved.metadata == {"age": 50} and moved.extra == {"other": 1}
    kept = Exam(images={"L-CC": ["a"]}, extra={"metadata": {"age": 50}}, metadata={"age": 60})
    assert kept.metadata == {"age": 60} and kept.extra == {}
    extra = {"metadata": {"age": 50}}
    Exam(extra=extra)
    assert extra == {"metadata": {"age": 50}}  # the caller's dict is not modified


def test_to_dict_writes_the_nyu_format():
    written = Exam(images={"L-CC": ["a"], "R-CC": ["b"]}, horizontal_flip="YES", cancer_label=None,
                   image_metadata={"best_center": {"L-CC": [(1, 2)], "R-CC": [(3, 4)]}},
                   extra={"L-CC_benign_seg": ["s"]}).to_dict()
    assert written == {"horizontal_flip": "YES", "L-CC": ["a"], "R-CC": ["b"], "L-MLO": [], "R-MLO": [],
                       "L-CC_benign_seg": ["s"], "best_center": {"L-CC": [(1, 2)], "R-CC": [(3, 4)]}}
    assert "cancer_label" not in written and "metadata" not in written
    with pytest.raises(ExamListError) as error:
        Exam(images={"L-CC": ["a", "b", "c"], "R-CC": ["d", "e"]},
             metadata={"images": {"z": {"density": "A"}}}).to_dict()
    assert str(error.value) == (
        "exam with images ['a', 'b', 'c', 'd']: metadata['images']: 'z' is not an image of this "
        "exam (its images: ['a', 'b', 'c', 'd', 'e'])")  # the first four images name the exam


# ---------------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize("raw, message", [
    (["not", "a", "dict"], "list.pkl: exam 3: expected a dict, got list"),
    (exam(**{"L-CC": ["a", 5]}),
     "list.pkl: exam 3, key 'L-CC': expected a list of image names (strings), got ['a', 5]"),
    (exam(**{"R-CC": ["a", ""]}),
     "list.pkl: exam 3, key 'R-CC': expected a list of image names (strings), got ['a', '']"),
    (exam(**{"R-MLO": None}), "list.pkl: exam 3, key 'R-MLO': expected a list of image names (strings), got None"),
    (exam(**{"L-MLO": "x"}), "list.pkl: exam 3, key 'L-MLO': expected a list of image names, got the string 'x'"),
    ({"something": 1}, "list.pkl: exam 3: none of the keys L-CC, R-CC, L-MLO, R-MLO is present - is this an exam "
                       "list (a list of exam dicts)?"),
    (exam(horizontal_flip=None), "list.pkl: exam 3, key 'horizontal_flip': must be 'YES' or 'NO', got None"),
    (exam(cancer_label=[0, 1]), "list.pkl: exam 3, key 'cancer_label': expected a dict, got [0, 1]"),
    (exam(cancer_label={"left_benign": "1"}), "list.pkl: exam 3, key 'cancer_label'['left_benign']: labels must be 0 "
                                              "or 1, got '1'"),
    (exam(cancer_label={"left_benign": 0.5}), "list.pkl: exam 3, key 'cancer_label'['left_benign']: labels must be 0 "
                                              "or 1, got 0.5"),
    (exam(best_center=[(1, 2)]), "list.pkl: exam 3, key 'best_center': expected a dict of view -> list, got [(1, 2)]"),
    (exam(best_center={"L-CC": [(1, 2)], "R-CC": [(1, 2)], "R-MLO": (1, 2)}),
     "list.pkl: exam 3, key 'best_center'['R-MLO']: expected a list with one entry per image (1), got (1, 2)"),
    (exam(best_center={"L-CC": [(1, 2)], "R-CC": [(1, 2)], "R-MLO": [(1, 2)], "L-XX": []}),
     "list.pkl: exam 3, key 'best_center': unknown views ['L-XX']"),
    (exam(best_center={"L-CC": [(1, 2)], "R-CC": [(1, 2)], "R-MLO": [5]}),
     "list.pkl: exam 3, key 'best_center'['R-MLO'][0]: expected a sequence of 2 values, got 5"),
    (exam(distance_from_starting_side={"L-CC": [True], "R-CC": [1], "R-MLO": [1]}),
     "list.pkl: exam 3, key 'distance_from_starting_side'['L-CC'][0]: expected an integer, got True"),
    (exam(distance_from_starting_side={"L-CC": ["7"], "R-CC": [1], "R-MLO": [1]}),
     "list.pkl: exam 3, key 'distance_from_starting_side'['L-CC'][0]: expected an integer, got '7'"),
    (exam(distance_from_starting_side={"L-CC": [math.inf], "R-CC": [1], "R-MLO": [1]}),
     "list.pkl: exam 3, key 'distance_from_starting_side'['L-CC'][0]: expected an integer, got inf"),
    (exam(distance_from_starting_side={"L-CC": [math.nan], "R-CC": [1], "R-MLO": [1]}),
     "list.pkl: exam 3, key 'distance_from_starting_side'['L-CC'][0]: expected an integer, got nan"),
    (exam(metadata={"images": {"nowhere": {"density": "A"}}}), "list.pkl: exam 3, key 'metadata'"),
])
def test_each_refusal_names_the_exam_and_key_and_what_was_expected(raw, message):
    assert error_of(raw).startswith(message)


def test_image_names_must_be_plain_file_names():
    message = error_of(exam(**{"L-CC": ["../../etc/passwd"]}))
    assert message == ("list.pkl: exam 3, key 'L-CC': image name '../../etc/passwd' is not a plain file name: it "
                       "contains a path separator; exam lists name images by file name without .png, relative to "
                       "--images")
    long_name = "a/" + "b" * 100
    message = error_of(exam(**{"R-CC": [long_name]}))
    assert f"image name {(long_name[:77] + '...')!r} is not" in message  # shown cut to 80 characters
    assert f"image name {('c/' + 'd' * 78)!r} is not" in error_of(exam(**{"R-CC": ["c/" + "d" * 78]}))
    assert f"image name {('c/' + 'd' * 75 + '...')!r} is not" in error_of(exam(**{"R-CC": ["c/" + "d" * 79]}))


def test_an_unknown_view_key_without_images_says_none():
    message = error_of(exam(**{"L-XCCL": []}))
    assert message.endswith("to leave its images out (none)")
    assert error_of(exam(**{"RCC": "one"})) == (
        "list.pkl: exam 3, key 'RCC': not a view mammoscreen knows (it reads L-CC, R-CC, L-MLO, R-MLO, spelled exactly "
        "so); rename the key, or pass --ignore-unknown-views to leave its images out ('one')")
    dropped: list[str] = []
    loaded = exam_from_dict(exam(**{"L-XCCL": [], "rcc": ("x", "y")}), 3, "list.pkl", ignore_unknown_views=True,
                            dropped=dropped)
    assert dropped == ["exam 3 'L-XCCL': no images", "exam 3 'rcc': x, y"]
    assert loaded.image_names() == ["l_cc", "r_cc", "r_mlo"] and loaded.extra == {}
    # without a list to report to, the images are still left out
    assert exam_from_dict(exam(**{"RCC": ["z"]}), ignore_unknown_views=True).image_names() == ["l_cc", "r_cc", "r_mlo"]


def test_metadata_of_images_left_out_goes_with_them():
    raw = exam(**{"L-XCCL": ["x"]}, metadata={"age": 50, "images": {"x": {"density": "A"}, "l_cc": {"density": "B"}}})
    loaded = exam_from_dict(raw, ignore_unknown_views=True)
    assert loaded.metadata == {"age": 50, "images": {"l_cc": {"density": "B"}}}
    without_images = exam_from_dict(exam(**{"L-XCCL": ["x"]}, metadata={"age": 50}), ignore_unknown_views=True)
    assert without_images.metadata == {"age": 50}
    with pytest.raises(ExamListError, match=r"^exam list: exam 0, key 'metadata'"):
        exam_from_dict(exam(**{"L-XCCL": ["x"]}, metadata=["age", 50]), ignore_unknown_views=True)


# ---------------------------------------------------------------------------------------------- normalisation

def test_values_are_normalised_to_plain_python():
    raw = exam(cancer_label={"left_benign": True, "right_benign": np.int64(1), "left_malignant": None,
                             "right_malignant": 0.0, 7: 1},
               best_center={"L-CC": [np.array([1, 2])], "R-CC": [[3.0, np.int32(4)]], "R-MLO": [(5, 6)]},
               distance_from_starting_side={"L-CC": [np.float64(2.0)], "R-CC": [3], "R-MLO": [4]},
               note=np.float32(0.5), nested={"a": [np.int8(1), (np.uint8(2),)]})
    loaded = exam_from_dict(raw)
    assert loaded.cancer_label == {"left_benign": 1, "right_benign": 1, "left_malignant": None, "right_malignant": 0,
                                   "7": 1}
    assert [type(v) for v in loaded.cancer_label.values()] == [int, int, type(None), int, int]
    assert loaded.image_metadata["best_center"] == {"L-CC": [(1, 2)], "R-CC": [(3, 4)], "R-MLO": [(5, 6)]}
    assert type(loaded.image_metadata["best_center"]["R-CC"][0][0]) is int
    assert loaded.image_metadata["distance_from_starting_side"]["L-CC"] == [2]
    assert loaded.extra == {"note": 0.5, "nested": {"a": [1, (2,)]}}
    assert type(loaded.extra["note"]) is float and type(loaded.extra["nested"]["a"][1][0]) is int
    assert loaded.horizontal_flip == "NO"


def test_nested_coordinates_are_checked_at_every_level():
    points = {"L-CC": [((1,), 2)], "R-CC": [((1, 2), 3)], "R-MLO": [((1, 2), 3)]}
    assert error_of(exam(rightmost_points=points)) == (
        "list.pkl: exam 3, key 'rightmost_points'['L-CC'][0]: expected a sequence of 2 values, got (1,)")
    points["L-CC"] = [((1, 2.5), 3)]
    assert error_of(exam(rightmost_points=points)) == (
        "list.pkl: exam 3, key 'rightmost_points'['L-CC'][0]: expected an integer, got 2.5")
    points["L-CC"] = [([1, np.int16(2)], 3.0)]
    assert exam_from_dict(exam(rightmost_points=points)).image_metadata["rightmost_points"]["L-CC"] == [((1, 2), 3)]


def test_records_of_an_exam_built_in_python():
    built = Exam(images={"R-MLO": ["x", "y"]}, horizontal_flip="YES",
                 image_metadata={"best_center": {"R-MLO": [(1, 2), (3, 4)]}})  # no other view keys at all
    records = list(iter_images([built, built]))
    assert [(r.exam_index, r.view, r.index_in_view, r.name) for r in records] == [
        (0, "R-MLO", 0, "x"), (0, "R-MLO", 1, "y"), (1, "R-MLO", 0, "x"), (1, "R-MLO", 1, "y")]
    assert [r.metadata for r in records[:2]] == [{"best_center": (1, 2)}, {"best_center": (3, 4)}]
    out = add_image_metadata([built], {"y": {"note": 1}})
    assert out[0].images == {"L-CC": [], "R-CC": [], "L-MLO": [], "R-MLO": ["y"]}
    assert out[0].image_metadata["best_center"] == {"R-MLO": [(3, 4)]}  # views it never had stay absent


def test_adding_metadata_keeps_labels_flip_and_extra_keys():
    raw = exam(best_center={"L-CC": [(1, 2)], "R-CC": [(3, 4)], "R-MLO": [(5, 6)]}, note="kept")
    (before,) = exams_from_data([raw])
    (after,) = add_image_metadata([before], {"l_cc": {"x": 1}, "r_cc": {"x": 2}, "r_mlo": {"x": 3}})
    assert after.cancer_label == before.cancer_label and after.horizontal_flip == "NO"
    assert after.extra == {"note": "kept"} and after.extra is not before.extra
    assert after.image_metadata["best_center"] == {"L-CC": [(1, 2)], "R-CC": [(3, 4)], "R-MLO": [(5, 6)]}
    assert after.image_metadata["x"] == {"L-CC": [1], "R-CC": [2], "L-MLO": [], "R-MLO": [3]}


def test_an_exam_with_only_labels_or_a_flip_is_accepted():
    assert exam_from_dict({"cancer_label": {"left_benign": 0}}).image_names() == []
    assert exam_from_dict({"horizontal_flip": "YES"}).horizontal_flip == "YES"
    assert exam_from_dict({"L-CC": ["a"]}).cancer_label is None


def test_a_view_without_images_may_lack_metadata():
    loaded = exam_from_dict(exam(best_center={"L-CC": [(1, 2)], "R-CC": [(1, 2)], "R-MLO": [(1, 2)]}))
    assert "L-MLO" not in loaded.image_metadata["best_center"]
    assert error_of(exam(best_center={"L-CC": [(1, 2)], "R-CC": [(1, 2)]})) == (
        "list.pkl: exam 3, key 'best_center': no entry for view 'R-MLO', which has images ['r_mlo']")


def test_add_image_metadata_needs_every_key_for_every_kept_image():
    exams = exams_from_data([exam()])
    with pytest.raises(ExamListError, match=r"^image 'r_cc': no value for 'best_center'$"):
        add_image_metadata(exams, {"l_cc": {"best_center": (1, 2)}, "r_cc": {}})
    out = add_image_metadata(exams, {"l_cc": {"best_center": (1.0, 2), "note": np.int64(3)}})
    assert out[0].images == {"L-CC": ["l_cc"], "R-CC": [], "L-MLO": [], "R-MLO": []}
    assert out[0].image_metadata == {"best_center": {"L-CC": [(1, 2)], "R-CC": [], "L-MLO": [], "R-MLO": []},
                                     "note": {"L-CC": [3], "R-CC": [], "L-MLO": [], "R-MLO": []}}
    assert type(out[0].image_metadata["note"]["L-CC"][0]) is int
    with pytest.raises(ExamListError, match=r"^best_center of image 'l_cc': expected a sequence of 2 values"):
        add_image_metadata(exams, {"l_cc": {"best_center": 5}})


def test_defaults_name_the_first_exam_of_an_exam_list_and_refuse_unknown_views():
    with pytest.raises(ExamListError, match=r"^exam list: exam 0, key 'L-CC': expected a list of image names"):
        exam_from_dict({"L-CC": 5})
    with pytest.raises(ExamListError, match=r"^exam list: exam 0, key 'LCC': not a view mammoscreen knows"):
        exams_from_data([exam(LCC=["x"])])


def test_one_warning_lists_every_image_left_out_and_points_at_the_caller():
    with pytest.warns(UserWarning) as caught:
        exams_from_data([exam(LCC=["x"], RCC=["y", "z"])], source="s.pkl", ignore_unknown_views=True)
    # the warning points past exams.py, at its caller (this file; mutmut's trampoline when mutation testing)
    assert len(caught) == 1 and not caught[0].filename.endswith("exams.py")
    assert str(caught[0].message) == ("s.pkl: leaving out the images of unknown view keys (--ignore-unknown-views): "
                                      "exam 0 'LCC': x; exam 0 'RCC': y, z")


def test_exams_from_data_needs_a_list():
    with pytest.raises(ExamListError, match=r"^src: expected a list of exam dicts, got str$"):
        exams_from_data("exams", source="src")
    with pytest.raises(ExamListError, match=r"^src: expected a list of exam dicts, got a single dict \(keys \['L-CC', "
                                            r"'R-CC'\]\); wrap it in a list$"):
        exams_from_data({"R-CC": [], "L-CC": []}, source="src")
    assert exams_from_data(()) == [] and len(exams_from_data((exam(),))) == 1
    with pytest.raises(ExamListError, match=r"got a single dict \(keys \['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'\]\); "):
        exams_from_data({k: 1 for k in "ihgfedcba"})  # sorted, the first eight
    with pytest.raises(ExamListError, match=r"^exam list: exam 1: expected a dict"):
        exams_from_data([exam(), 5])


# ---------------------------------------------------------------------------------------------- files

@pytest.mark.parametrize("suffix", [".pkl", ".pickle", ".p", ".PKL", ".json", ".JSON"])
def test_every_documented_suffix_round_trips(tmp_path, suffix):
    exams = exams_from_data([exam(best_center={"L-CC": [(1, 2)], "R-CC": [(3, 4)], "R-MLO": [(5, 6)]})])
    path = save_exam_list(exams, tmp_path / f"list{suffix}")
    assert load_exam_list(path) == exams
    if suffix.lower() == ".json":
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=1) + "\n"  # indented, one newline at the end
    else:
        assert pickle.loads(path.read_bytes()) == exams_to_data(exams)


def test_load_errors_say_what_is_wrong_with_which_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^exam list not found: .*missing\.pkl$"):
        load_exam_list(tmp_path / "missing.pkl")
    with pytest.raises(ExamListError, match=r"unknown exam-list format '\.txt'; use \.pkl \(pickle\) or \.json$"):
        load_exam_list(_write(tmp_path / "list.txt", b"[]"))
    with pytest.raises(ExamListError, match=r"^exam list .*bad\.json"):
        load_exam_list(_write(tmp_path / "bad.json", b"[{"))
    with pytest.raises(ExamListError) as error:
        load_exam_list(_write(tmp_path / "evil.pkl", b"\x80\x02cos\nsystem\n."))
    assert str(error.value).startswith(f"{tmp_path / 'evil.pkl'}: refusing to load os.system")
    assert str(error.value).endswith(". An exam list holds only plain data; if you trust this file, convert it to "
                                     "plain data (or JSON) first")
    with pytest.raises(ExamListError, match=r"^exam list .*truncated\.pkl: not a readable pickle"):
        load_exam_list(_write(tmp_path / "truncated.pkl", pickle.dumps([exam()])[:-5]))
    with pytest.raises(ExamListError, match=r"^/.*number\.json: expected a list of exam dicts, got int$"):
        load_exam_list(_write(tmp_path / "number.json", b"5"))


@pytest.mark.parametrize("suffix, loader, kind", [(".json", "load_json", "json"), (".pkl", "load_pickle", "pickle")])
def test_any_other_loader_error_is_one_line_naming_the_file(tmp_path, suffix, loader, kind):
    from unittest import mock

    path = _write(tmp_path / f"list{suffix}", b"[]")
    with mock.patch(f"mammoscreen.data.exams.{loader}", side_effect=ValueError("odd")):
        with pytest.raises(ExamListError) as error:
            load_exam_list(path)
    assert str(error.value) == f"{path}: not a readable {kind} file (ValueError: odd)"


def _write(path, data):
    path.write_bytes(data)
    return path


def test_ignoring_unknown_views_reaches_the_loader(tmp_path):
    path = _write(tmp_path / "list.json", json.dumps([exam(**{"LCC": ["x"]})]).encode())
    with pytest.raises(ExamListError, match="not a view mammoscreen knows"):
        load_exam_list(path)
    with pytest.warns(UserWarning, match=r"list\.json: leaving out the images of unknown view keys "
                                         r"\(--ignore-unknown-views\): exam 0 'LCC': x$"):
        assert load_exam_list(path, ignore_unknown_views=True)[0].image_names() == ["l_cc", "r_cc", "r_mlo"]


def test_an_unchanged_exam_list_is_not_rewritten(tmp_path):
    exams = exams_from_data([exam()])
    path = save_exam_list(exams, tmp_path / "list.pkl")
    os.utime(path, (1_000_000, 1_000_000))
    assert save_exam_list_if_changed(exams, path) == path
    assert path.stat().st_mtime == 1_000_000  # the same list: untouched
    changed = exams_from_data([exam(horizontal_flip="YES")])
    save_exam_list_if_changed(changed, path)
    assert path.stat().st_mtime != 1_000_000 and load_exam_list(path) == changed
    path.write_bytes(b"garbage")  # unreadable: rewritten
    assert load_exam_list(save_exam_list_if_changed(changed, path)) == changed
    fresh = save_exam_list_if_changed(exams, tmp_path / "new.json")
    assert load_exam_list(fresh) == exams
