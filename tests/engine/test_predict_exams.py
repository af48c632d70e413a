"""The exam-level prediction engine with a stand-in model: order, labels, missing views, bad exams, resume;
and the image engine's hooks used by nyu_model_single (image selection, pandas-style index column)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mammoscreen.data import exams_from_data, read_png, write_png
from mammoscreen.data.exams import VIEWS
from mammoscreen.engine import PredictOptions, predict_exams, predict_images, run_prediction
from mammoscreen.models.interfaces import ExamPrediction, ExamPredictor, ImagePrediction, Predictor
from mammoscreen.models.registry import ModelSpec

COLUMNS = ("left_benign", "right_benign", "left_malignant", "right_malignant")
EXAM_SPEC = ModelSpec(name="exam-means", title="test", paper="-", license="-", output_level="breast",
                      prediction_columns=COLUMNS)
OPTIONS = PredictOptions(device="cpu", progress=False)


class ExamMeans(ExamPredictor):
    """left_* = mean of the L views / 1000, right_* = mean of the R views / 1000; fails on names with 'boom'."""

    spec = EXAM_SPEC

    def __init__(self):
        self.planned = None
        self.predicted = []

    def plan(self, exams, images_dir):
        self.planned = len(exams)

    def prepare(self, exam_index, exam, images_dir):
        return exam_index, {v: read_png(Path(images_dir) / f"{exam.images[v][0]}.png").astype(np.float64)
                            for v in VIEWS}, exam

    def predict_exam(self, prepared):
        index, images, exam = prepared
        self.predicted.append(index)
        if any("boom" in exam.images[v][0] for v in VIEWS):
            raise RuntimeError("model exploded")
        left = (images["L-CC"].mean() + images["L-MLO"].mean()) / 2000
        right = (images["R-CC"].mean() + images["R-MLO"].mean()) / 2000
        return ExamPrediction({"left_benign": left, "right_benign": right, "left_malignant": left / 2,
                               "right_malignant": right / 2}, maps={"left": np.array([left])})


def make_exams(tmp_path, specs):
    """specs: list of dicts view -> image name (a missing view is left empty); pixel value = 10 * (exam + 1)."""
    images = tmp_path / "images"
    data = []
    for e, names in enumerate(specs):
        exam = {"horizontal_flip": "NO", **{v: [] for v in VIEWS},
                "cancer_label": {"left_benign": e % 2, "right_benign": 0, "left_malignant": 0, "right_malignant": 1}}
        for view, name in names.items():
            exam[view] = [name]
            value = 10 * (e + 1) * (1 if view[0] == "L" else 3)
            write_png(images / f"{name}.png", np.full((8, 6), value, np.uint16))
        data.append(exam)
    return images, exams_from_data(data)


def four(prefix):
    return {v: f"{prefix}_{v}" for v in VIEWS}


def read_rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_one_row_per_exam_in_list_order_with_breast_labels(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    run = predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    with open(run.csv_path) as f:
        header = f.readline().strip().split(",")
    assert header == ["exam_index", *COLUMNS, *[c + "_label" for c in COLUMNS]]
    rows = read_rows(run.csv_path)
    assert [r["exam_index"] for r in rows] == ["0", "1"]
    assert float(rows[0]["left_benign"]) == pytest.approx(0.01)  # exam 0: left pixels 10
    assert float(rows[1]["right_benign"]) == pytest.approx(0.06)  # exam 1: right pixels 60
    assert [r["left_benign_label"] for r in rows] == ["0", "1"]
    assert all(r["right_malignant_label"] == "1" for r in rows)
    assert not (tmp_path / "out" / "failures.csv").exists()


def test_exam_missing_a_view_is_reported_and_skipped(tmp_path):
    cc_only = {"L-CC": "c_L-CC", "R-CC": "c_R-CC"}
    images, exams = make_exams(tmp_path, [four("a"), cc_only, four("b")])
    predictor = ExamMeans()
    run = predict_exams(predictor, exams, images, tmp_path / "out", OPTIONS)
    assert [r["exam_index"] for r in read_rows(run.csv_path)] == ["0", "2"]
    assert predictor.predicted == [0, 2]
    failures = read_rows(tmp_path / "out" / "failures.csv")
    assert failures[0]["exam_index"] == "1"
    assert "L-MLO, R-MLO" in failures[0]["reason"] and "skipped" in failures[0]["reason"]


def test_bad_exam_does_not_stop_the_others(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), four("boom"), four("c")])
    (images / "c_R-MLO.png").write_bytes(b"not a png")
    run = predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    assert [r["exam_index"] for r in read_rows(run.csv_path)] == ["0"]
    reasons = {f.name: f.reason for f in run.failures}
    assert "exploded" in reasons["exam 1"]
    assert "c_R-MLO.png" in reasons["exam 2"]


def test_finished_exams_are_not_predicted_again_and_maps_are_written(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    options = PredictOptions(device="cpu", progress=False, save_maps=True)
    first = ExamMeans()
    predict_exams(first, exams, images, tmp_path / "out", options)
    assert first.planned == 2
    assert np.load(tmp_path / "out" / "maps" / "exam_1.npz")["left"][0] == pytest.approx(0.02)
    (tmp_path / "out" / "maps" / "exam_1.npz").unlink()  # a missing output makes the exam unfinished
    second = ExamMeans()
    run = predict_exams(second, exams, images, tmp_path / "out", options)
    assert second.predicted == [1]
    assert len(run.rows) == 2


def test_changed_exam_list_starts_afresh(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    again = ExamMeans()
    predict_exams(again, exams[:1], images, tmp_path / "out", OPTIONS)
    assert again.predicted == [0]


def test_a_change_inside_a_large_array_of_an_in_memory_exam_list_starts_afresh(tmp_path):
    """A list given in memory may hold NumPy arrays (a file's may not); a value changed in the middle of a large
    one - which its printed form leaves out - is still a changed list."""
    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    exams[1].image_metadata["profile"] = {"L-CC": [np.zeros(5000)]}
    predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    same = ExamMeans()
    predict_exams(same, exams, images, tmp_path / "out", OPTIONS)
    assert same.predicted == []  # unchanged: everything reused
    exams[1].image_metadata["profile"]["L-CC"][0][2500] = 1.0
    changed = ExamMeans()
    predict_exams(changed, exams, images, tmp_path / "out", OPTIONS)
    assert changed.predicted == [0, 1]


def test_run_prediction_dispatches_on_the_output_level(tmp_path):
    images, exams = make_exams(tmp_path, [four("a")])
    run = run_prediction(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    assert read_rows(run.csv_path)[0]["exam_index"] == "0"


# -- the image engine's hooks ----------------------------------------------------------------------------

INDEXED_SPEC = ModelSpec(name="indexed", title="test", paper="-", license="-", output_level="image",
                         prediction_columns=("malignant_pred",),
                         extra={"csv_index_column": True})


class LastViewFirst(Predictor):
    """Predicts only R views, R-MLO before R-CC; writes pandas-style index rows."""

    spec = INDEXED_SPEC

    def select_images(self, exams):
        from mammoscreen.data.exams import iter_images

        records = [r for r in iter_images(exams) if r.side == "R"]
        return sorted(records, key=lambda r: (r.exam_index, r.view != "R-MLO"))

    def prepare(self, record, images_dir):
        return record.name

    def predict_batch(self, prepared):
        return [ImagePrediction({"malignant_pred": 0.5, "benign_pred": 0.25}) for _ in prepared]


def test_selected_images_in_their_order_with_an_unnamed_index_column(tmp_path):
    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    run = predict_images(LastViewFirst(), exams, images, tmp_path / "out", OPTIONS)
    lines = run.csv_path.read_text().splitlines()
    assert lines[0] == ",image_index,malignant_pred,malignant_label"
    assert lines[1:] == ["0,a_R-MLO,0.5,1", "1,a_R-CC,0.5,1", "2,b_R-MLO,0.5,1", "3,b_R-CC,0.5,1"]


def test_breast_level_csv_with_skipped_exams_is_evaluated_by_exam_index(tmp_path):
    from mammoscreen.evaluate.io import read_predictions
    from mammoscreen.evaluate.levels import breast_level_data

    cc_only = {"L-CC": "c_L-CC", "R-CC": "c_R-CC"}
    images, exams = make_exams(tmp_path, [four("a"), cc_only, four("b")])
    run = predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    table = read_predictions(run.csv_path)
    assert table.level == "breast" and table.exam_indices.tolist() == [0, 2]
    data = breast_level_data(table, exams)
    assert data.case_names == ["exam 0 left", "exam 2 left", "exam 0 right", "exam 2 right"]
    assert data.y_true.tolist() == [0, 0, 1, 1]  # right_malignant is 1 in every exam
    assert data.y_score[1] == pytest.approx(0.03 / 2)  # exam 2: left pixels 30 -> left_malignant 0.015
    assert data.benign_true.tolist() == [0, 0, 0, 0]


def test_exam_index_beyond_the_exam_list_is_explained(tmp_path):
    from mammoscreen.evaluate.io import read_predictions
    from mammoscreen.evaluate.levels import breast_level_data
    from mammoscreen.evaluate.validation import EvaluationInputError

    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    run = predict_exams(ExamMeans(), exams, images, tmp_path / "out", OPTIONS)
    with pytest.raises(EvaluationInputError, match="exam_index 1 .* has 1 exams"):
        breast_level_data(read_predictions(run.csv_path), exams[:1])


def test_an_exam_whose_output_is_not_a_number_fails(tmp_path):
    class NaNForB(ExamMeans):
        def predict_exam(self, prepared):
            prediction = super().predict_exam(prepared)
            if prepared[2].images["L-CC"][0].startswith("b"):
                prediction.values["left_malignant"] = float("nan")
            return prediction

    images, exams = make_exams(tmp_path, [four("a"), four("b")])
    run = predict_exams(NaNForB(), exams, images, tmp_path / "out", OPTIONS)
    assert [r["exam_index"] for r in read_rows(run.csv_path)] == ["0"]
    (failure,) = run.failures
    assert failure.name == "exam 1" and "left_malignant=nan" in failure.reason
