"""The prediction engine with a stand-in model: order, labels, bad images, batching, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from mammoscreen.data import exams_from_data, read_png, write_png
from mammoscreen.engine import PredictOptions, predict_images
from mammoscreen.models.interfaces import ImagePrediction, Predictor
from mammoscreen.models.registry import ModelSpec

SPEC = ModelSpec(name="mean-intensity", title="test model", paper="-", license="-", output_level="image",
                 prediction_columns=("benign_pred", "malignant_pred"))


class MeanIntensity(Predictor):
    """Predicts the mean pixel value / 1000; fails on images whose name contains 'boom'."""

    spec = SPEC

    def __init__(self, stop_after=None):
        self.batches = []
        self.stop_after = stop_after

    def prepare(self, record, images_dir):
        return record.name, read_png(Path(images_dir) / f"{record.name}.png").astype(np.float64)

    def predict_batch(self, prepared):
        self.batches.append([name for name, _ in prepared])
        if self.stop_after is not None and sum(map(len, self.batches)) > self.stop_after:
            raise KeyboardInterrupt
        if any("boom" in name for name, _ in prepared):
            raise RuntimeError("model exploded")
        return [ImagePrediction({"benign_pred": float(img.mean()) / 1000, "malignant_pred": float(img.max()) / 1000},
                                maps={"mean": np.array([img.mean()])}) for _, img in prepared]

    def visualize(self, record, prepared, prediction, segmentations, path):
        write_png(path, np.zeros((4, 4), np.uint8))

    def provenance(self):
        return {"model": "mean-intensity"}


def make_data(tmp_path, names_per_exam):
    images = tmp_path / "images"
    data = []
    for e, names in enumerate(names_per_exam):
        exam = {"horizontal_flip": "NO", "L-CC": [], "R-CC": [], "L-MLO": [], "R-MLO": [],
                "cancer_label": {"left_benign": 1, "right_benign": 0, "left_malignant": 0, "right_malignant": e % 2}}
        for view, name in names.items():
            exam[view] = [name]
            if not name.startswith("missing"):
                write_png(images / f"{name}.png", np.full((8, 6), 100 * (len(name) + e), np.uint16))
        data.append(exam)
    return images, exams_from_data(data)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_rows_follow_official_order_with_labels_and_bad_images_are_skipped(tmp_path):
    images, exams = make_data(tmp_path, [
        {"R-MLO": "a_rmlo", "L-CC": "a_lcc", "R-CC": "missing_rcc", "L-MLO": "a_boom"},
        {"R-CC": "b_rcc"}])
    out = tmp_path / "out"
    run = predict_images(MeanIntensity(), exams, images, out,
                         PredictOptions(batch_size=2, save_maps=True, visualize=True, progress=False))
    rows = read_csv(run.csv_path)
    assert [r["image_index"] for r in rows] == ["a_lcc", "a_rmlo", "b_rcc"]
    assert list(rows[0]) == ["image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label"]
    assert [(r["benign_label"], r["malignant_label"]) for r in rows] == [("1", "0"), ("0", "0"), ("0", "1")]
    assert float(rows[0]["benign_pred"]) == pytest.approx(0.5)
    assert sorted(f.name for f in run.failures) == ["a_boom", "missing_rcc"]
    assert "file not found" in dict((f.name, f.reason) for f in run.failures)["missing_rcc"]
    assert "model exploded" in dict((f.name, f.reason) for f in run.failures)["a_boom"]
    assert {r["image_index"] for r in read_csv(out / "failures.csv")} == {"a_boom", "missing_rcc"}
    assert sorted(p.name for p in (out / "maps").iterdir()) == ["a_lcc.npz", "a_rmlo.npz", "b_rcc.npz"]
    assert np.load(out / "maps" / "a_lcc.npz")["mean"][0] == pytest.approx(500)
    assert (out / "visualization" / "b_rcc.png").is_file()


def test_interrupted_run_resumes_without_redoing_finished_images(tmp_path):
    names = [{"L-CC": f"e{i}_lcc", "R-CC": f"e{i}_rcc"} for i in range(3)]
    images, exams = make_data(tmp_path, names)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        predict_images(MeanIntensity(stop_after=2), exams, images, out, PredictOptions(progress=False))
    second = MeanIntensity()
    run = predict_images(second, exams, images, out, PredictOptions(progress=False))
    assert [b[0] for b in second.batches] == ["e1_lcc", "e1_rcc", "e2_lcc", "e2_rcc"]
    assert len(read_csv(run.csv_path)) == 6
    # asking for maps afterwards redoes the images that lack them
    third = MeanIntensity()
    predict_images(third, exams, images, out, PredictOptions(save_maps=True, progress=False))
    assert len(third.batches) == 6


def test_duplicate_image_names_are_refused(tmp_path):
    images, exams = make_data(tmp_path, [{"L-CC": "same"}, {"L-CC": "same"}])
    with pytest.raises(ValueError, match="more than once"):
        predict_images(MeanIntensity(), exams, images, tmp_path / "out", PredictOptions(progress=False))


def test_a_changed_input_image_is_predicted_again(tmp_path):
    images, exams = make_data(tmp_path, [{"L-CC": "x_lcc", "R-CC": "x_rcc"}])
    out = tmp_path / "out"
    predict_images(MeanIntensity(), exams, images, out, PredictOptions(progress=False))
    write_png(images / "x_rcc.png", np.full((8, 6), 2000, np.uint16))
    again = MeanIntensity()
    run = predict_images(again, exams, images, out, PredictOptions(progress=False))
    assert again.batches == [["x_rcc"]]
    assert float(read_csv(run.csv_path)[1]["benign_pred"]) == pytest.approx(2.0)


class SometimesNaN(MeanIntensity):
    """Predicts NaN (malignant) or infinity (benign) for images whose name says so."""

    def predict_batch(self, prepared):
        out = super().predict_batch(prepared)
        for (name, _), prediction in zip(prepared, out):
            if "nan" in name:
                prediction.values["malignant_pred"] = float("nan")
            if "inf" in name:
                prediction.values["benign_pred"] = float("inf")
        return out


def test_an_output_that_is_not_a_number_fails_its_image_and_is_never_journaled(tmp_path):
    images, exams = make_data(tmp_path, [{"L-CC": "a_nan", "R-CC": "a_ok", "L-MLO": "a_inf"}])
    out = tmp_path / "out"
    run = predict_images(SometimesNaN(), exams, images, out, PredictOptions(batch_size=3, save_maps=True,
                                                                            progress=False))
    assert [r["image_index"] for r in read_csv(run.csv_path)] == ["a_ok"]  # no empty score cells
    reasons = {f.name: f.reason for f in run.failures}
    assert set(reasons) == {"a_nan", "a_inf"} and not any(f.io_error for f in run.failures)
    assert "malignant_pred=nan" in reasons["a_nan"] and "benign_pred=inf" in reasons["a_inf"]
    assert "not a number" in reasons["a_nan"]
    assert not (out / "maps" / "a_nan.npz").exists()
    # Retried by the next run (a fixed model then predicts it), not reused.
    again = predict_images(MeanIntensity(), exams, images, out, PredictOptions(save_maps=True, progress=False))
    assert [r["image_index"] for r in read_csv(again.csv_path)] == ["a_nan", "a_ok", "a_inf"]
    assert again.reused == 1 and not again.failures


def test_a_journaled_prediction_of_the_wrong_shape_is_recomputed_not_used(tmp_path):
    import json

    images, exams = make_data(tmp_path, [{"L-CC": "a_lcc", "R-CC": "a_rcc"}])
    out = tmp_path / "out"
    first = predict_images(MeanIntensity(), exams, images, out, PredictOptions(progress=False))
    journal = out / ".predict_journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    lines[1]["value"]["result"] = {"benign_pred": "0.5; rm -rf", "malignant_pred": 1e300 * 10}  # hand-edited
    lines[2]["value"]["result"] = {"malignant_pred": 0.5}  # a column missing
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    again = predict_images(MeanIntensity(), exams, images, out, PredictOptions(progress=False))
    assert again.reused == 0 and read_csv(again.csv_path) == read_csv(first.csv_path)
