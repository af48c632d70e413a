"""Fuzzing the exam-list boundary: generated exams with hostile names, in every pickle protocol and JSON,
and mutated JSON text. A name that is a path never gets through; every refusal names the file and exam."""

from __future__ import annotations

import json
import pickle
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from testutils import examples

from fuzzing import bounded_call, hostile_names
from mammoscreen.core.paths import UnsafePathError, name_problem, output_path
from mammoscreen.data.exams import VIEWS, ExamListError, load_exam_list
from mammoscreen.data.images import image_path

WORK = Path(tempfile.mkdtemp(prefix="mammoscreen-fuzz-exams-"))
MEMORY = 64 * 2 ** 20

exams = st.lists(st.fixed_dictionaries(
    {view: st.lists(hostile_names(), max_size=2) for view in VIEWS},
    optional={"horizontal_flip": st.sampled_from(["NO", "YES", "no", 1]),
              "cancer_label": st.dictionaries(st.sampled_from(["left_benign", "right_malignant", "x"]),
                                              st.sampled_from([0, 1, 2, None, "1"]), max_size=3),
              "extra": st.recursive(st.integers() | st.text(max_size=5), lambda x: st.lists(x, max_size=3),
                                    max_leaves=10)}), min_size=1, max_size=3)


@settings(max_examples=examples(200))
@given(exams, st.sampled_from(["pkl0", "pkl2", "pkl4", "pkl5", "json"]))
def test_generated_exam_lists(data, form):
    path = WORK / f"exams.{'json' if form == 'json' else 'pkl'}"
    if form == "json":
        path.write_text(json.dumps(data))
    else:
        path.write_bytes(pickle.dumps(data, protocol=int(form[3:])))
    loaded, error, _ = bounded_call(lambda: load_exam_list(path), (ExamListError,), MEMORY)
    if error is not None:
        message = str(error)
        assert str(path) in message and ("exam " in message or "expected" in message), message
        if "image name '" in message or 'image name "' in message:
            assert "is not a plain file name: " in message
        return
    out = WORK / "out"
    for exam in loaded:
        for names in exam.images.values():
            for name in names:
                assert name_problem(name) is None, name  # only plain names get through
                assert image_path(WORK / "images", name).parent == WORK / "images"
                assert output_path(out, "maps", name + ".npz").parent == out / "maps"


@settings(max_examples=examples(200))
@given(st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(list('[]{}",:0123456789aeflnrstu\\ \x00é')),
                          st.booleans()), min_size=1, max_size=8))
def test_mutated_json_exam_lists(mutations):
    text = list(json.dumps([{"L-CC": ["0_L-CC"], "R-CC": ["0_R-CC"], "horizontal_flip": "NO",
                             "cancer_label": {"left_benign": 0, "right_benign": 1},
                             "best_center": {"L-CC": [[1, 2]], "R-CC": [[3, 4]]}}]))
    for position, character, insert in mutations:
        at = position % (len(text) + 1)
        if insert or at == len(text):
            text.insert(at, character)
        else:
            text[at] = character
    path = WORK / "mutated.json"
    path.write_text("".join(text), encoding="utf-8", errors="surrogatepass")
    bounded_call(lambda: load_exam_list(path), (ExamListError,), MEMORY)


@settings(max_examples=examples(100))
@given(st.lists(hostile_names(), min_size=1, max_size=3))
def test_output_paths_never_leave_the_output_directory(parts):
    out = WORK / "out"
    try:
        path = output_path(out, *parts)
    except UnsafePathError:
        return
    assert path.resolve().is_relative_to(out.resolve())
