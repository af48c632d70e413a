"""The content fingerprint of an in-memory exam list: the same content gives the same fingerprint whatever the
dict order, the objects or the Python session; any change of content gives another one."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mammoscreen.data.exam_fingerprint import exam_list_fingerprint
from mammoscreen.data.exams import Exam, ExamListError, load_exam_list, save_exam_list

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def _exams():
    return [Exam({v: [f"e{e}_{v}"] for v in VIEWS}, "NO",
                 {"left_benign": e % 2, "right_benign": 0, "left_malignant": 0, "right_malignant": 1 - e % 2},
                 {"best_center": {v: [(80 + e, 60 - e)] for v in VIEWS}}, {"note": ["a", 1]}, {"age": 50 + e})
            for e in range(3)]


def _reversed_dicts(value):
    if isinstance(value, dict):
        return {k: _reversed_dicts(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_reversed_dicts(v) for v in value]
    return value


def _rebuilt(exam, change=lambda value: value):
    return Exam(*(change(copy.deepcopy(getattr(exam, name)))
                  for name in ("images", "horizontal_flip", "cancer_label", "image_metadata", "extra", "metadata")))


def test_the_same_content_gives_the_same_fingerprint():
    exams = _exams()
    reference = exam_list_fingerprint(exams)
    assert len(reference) == 64 and int(reference, 16) >= 0  # a sha256 in hex
    assert exam_list_fingerprint(_exams()) == reference  # other objects, same content
    assert exam_list_fingerprint([_rebuilt(e, _reversed_dicts) for e in exams]) == reference  # other dict order
    # coordinates as lists or NumPy values instead of tuples: the same values, as when an exam list is read
    as_lists = [_rebuilt(e) for e in exams]
    for e in as_lists:
        e.image_metadata["best_center"] = {v: [list(map(np.int64, c)) for c in cs]
                                           for v, cs in e.image_metadata["best_center"].items()}
    assert exam_list_fingerprint(as_lists) == reference


def test_a_saved_and_reloaded_list_keeps_its_fingerprint(tmp_path):
    exams = _exams()
    for name in ("exams.pkl", "exams.json"):
        save_exam_list(exams, tmp_path / name)
        assert exam_list_fingerprint(load_exam_list(tmp_path / name)) == exam_list_fingerprint(exams)


def test_the_fingerprint_does_not_depend_on_the_python_session():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from test_exam_fingerprint import _exams; "
            "from mammoscreen.data.exam_fingerprint import exam_list_fingerprint; "
            "print(exam_list_fingerprint(_exams()))")
    here = str(Path(__file__).parent)
    printed = {subprocess.run([sys.executable, "-c", code, here], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert printed == {exam_list_fingerprint(_exams())}


def test_every_change_of_content_changes_the_fingerprint():
    exams = _exams()
    reference = exam_list_fingerprint(exams)

    def changed(index, **fields):
        out = [_rebuilt(e) for e in exams]
        out[index] = replace(out[index], **fields)
        return out

    flipped = dict(exams[1].cancer_label, left_benign=1 - exams[1].cancer_label["left_benign"])
    fewer = {v: list(n) for v, n in exams[2].images.items()}
    fewer["R-MLO"] = []
    centres = copy.deepcopy(exams[0].image_metadata)
    centres["best_center"]["L-CC"] = [(81, 60)]
    variants = {
        "a label flipped": changed(1, cancer_label=flipped),
        "an image removed": changed(2, images=fewer),
        "a centre moved": changed(0, image_metadata=centres),
        "a flip changed": changed(0, horizontal_flip="YES"),
        "a label unknown": changed(0, cancer_label=None),
        "metadata changed": changed(0, metadata={"age": 51}),
        "an extra key changed": changed(0, extra={"note": ["a", 2]}),
        "an int became a string": changed(0, extra={"note": ["a", "1"]}),
        "an int became a bool": changed(0, extra={"note": ["a", True]}),
        "an int became a float": changed(0, extra={"note": ["a", 1.0]}),
        "a list became a dict": changed(0, extra={"note": {"a": 1}}),
        "exams reordered": [exams[1], exams[0], exams[2]],
        "an exam removed": exams[:2],
        "an exam repeated": exams + exams[-1:],
    }
    fingerprints = {name: exam_list_fingerprint(v) for name, v in variants.items()}
    assert reference not in fingerprints.values()
    assert len(set(fingerprints.values())) == len(variants)


# Nested plain values; dict keys as the exam-list readers leave them (strings and ints)
_plain = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3) | st.integers(),
                                                                                  inner, max_size=3), max_leaves=12)


@given(extra=st.dictionaries(st.text(max_size=4), _plain, max_size=4))
def test_plain_values_fingerprint_by_content(extra):
    exam = replace(_exams()[0], extra=extra)
    assert exam_list_fingerprint([exam]) == exam_list_fingerprint([replace(exam, extra=_reversed_dicts(
        copy.deepcopy(extra)))])


def test_values_that_are_not_plain_data_are_refused():
    class Thing:
        pass

    exam = replace(_exams()[0], extra={"note": {"x": [Thing()]}})
    with pytest.raises(ExamListError, match=r"^validation exam list: exam 1, extra\['note'\]\['x'\]: a Thing is not "
                                            r"plain data \(strings, numbers, lists, dicts\); convert it before "
                                            r"training$"):
        exam_list_fingerprint([_exams()[0], exam], "validation exam list")
    with pytest.raises(ExamListError, match=r"^exam list: exam 0: expected an Exam, got dict$"):
        exam_list_fingerprint([{"L-CC": ["a"]}])
