"""end2end and frcnn_cad in the registry, the prediction engine and the pipeline, with small generated models."""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
from figures import check_detection_figure, check_input_figure
from testutils import synthetic_breast
from zoo2_files import write_tiny_end2end, write_tiny_frcnn

from mammoscreen.data.exams import load_exam_list
from mammoscreen.data.images import read_png, write_png
from mammoscreen.engine import PredictOptions, predict_images
from mammoscreen.models.end2end.predictor import (
    DEFAULT_MEAN_PIXEL_INTENSITY,
    MEAN_PIXEL_INTENSITY,
    VARIANT_FILES,
    preprocess_end2end,
    resolve_mean_pixel_intensity,
)
from mammoscreen.models.factory import PredictorRequest, build_predictor
from mammoscreen.models.frcnn_cad.predictor import FRCNNPredictor, to_8bit_bgr
from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.weights import WeightsError
from mammoscreen.workflows.pipeline import run_pipeline

OFFICIAL_ORDER = ["e0_L-CC", "e0_L-MLO", "e0_R-CC", "e0_R-MLO", "e1_L-CC", "e1_R-CC"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two exams of small synthetic mammograms (exam 1 has CC views only, right breast malignant)."""
    root = tmp_path_factory.mktemp("zoo2data")
    images = root / "images"
    for i, name in enumerate(OFFICIAL_ORDER):
        facing = "left" if "_R-" in name else "right"
        write_png(images / f"{name}.png", synthetic_breast((240, 160), facing=facing, seed=i))
    exams = [{"horizontal_flip": "NO", "L-CC": ["e0_L-CC"], "R-CC": ["e0_R-CC"], "L-MLO": ["e0_L-MLO"],
              "R-MLO": ["e0_R-MLO"], "cancer_label": {"left_malignant": 0, "right_malignant": 0,
                                                      "left_benign": 1, "right_benign": 0}},
             {"horizontal_flip": "NO", "L-CC": ["e1_L-CC"], "R-CC": ["e1_R-CC"], "L-MLO": [], "R-MLO": [],
              "cancer_label": {"left_malignant": 0, "right_malignant": 1, "left_benign": 0, "right_benign": 0}}]
    exam_list = root / "exams.pkl"
    exam_list.write_bytes(pickle.dumps(exams, protocol=4))
    small_exam_list = root / "exam1.pkl"  # the Faster R-CNN runs at ~2100 px whatever the image size: keep it short
    small_exam_list.write_bytes(pickle.dumps(exams[1:], protocol=4))
    weights = root / "weights"
    weights.mkdir()
    write_tiny_end2end(weights / VARIANT_FILES["ddsm_resnet50"])
    write_tiny_frcnn(weights / "vgg16_frcnn_cad.caffemodel")
    return {"images": images, "exam_list": exam_list, "small_exam_list": small_exam_list, "weights": weights}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_registry_entries():
    e2e, frcnn = get_model_spec("end2end"), get_model_spec("frcnn_cad")
    for spec in (e2e, frcnn):
        assert spec.output_level == "image" and spec.prediction_columns == ("malignant_pred",)
        assert spec.needs_crop is False and spec.center_windows is None  # original images, no NYU crop/centres
        assert spec.csv_view_order == ("L-CC", "L-MLO", "R-CC", "R-MLO")
    assert set(e2e.variants) == set(VARIANT_FILES) and len(VARIANT_FILES) == 6
    assert {w.filename for w in e2e.weights.values()} == {
        "ddsm_resnet50_s10_[512-512-1024]x2.h5", "ddsm_vgg16_s10_512x1.h5", "ddsm_vgg16_s10_[512-512-1024]x2_hybrid.h5",
        "ddsm_YaroslavNet_s10.h5", "inbreast_vgg16_512x1.h5", "inbreast_vgg16_[512-512-1024]x2_hybrid.h5"}
    assert all("non-commercial" in w.license for w in e2e.weights.values())
    assert e2e.extra["mean_pixel_intensity"] == {"ddsm": 52.18, "inbreast": 44.4, "nyu": 31.28, "cmmd": 18.01}
    assert frcnn.weight_file().filename == "vgg16_frcnn_cad.caffemodel" and frcnn.weight_file().url.endswith(
        "vgg16_frcnn_cad.caffemodel")


def test_mean_pixel_intensity_option():
    assert resolve_mean_pixel_intensity(None) == DEFAULT_MEAN_PIXEL_INTENSITY == 44.4
    assert resolve_mean_pixel_intensity("DDSM") == MEAN_PIXEL_INTENSITY["ddsm"]
    assert resolve_mean_pixel_intensity("31.5") == 31.5
    with pytest.raises(ValueError, match="ddsm"):
        resolve_mean_pixel_intensity("mias")


def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path):
    with pytest.raises(WeightsError, match=r"ddsm_vgg16_s10_512x1\.h5.*drive\.google\.com"):
        build_predictor(PredictorRequest("end2end", tmp_path, "ddsm_vgg16", "cpu"))
    with pytest.raises(ValueError, match="unknown end2end variant"):
        build_predictor(PredictorRequest("end2end", tmp_path, "resnet", "cpu"))
    with pytest.raises(WeightsError, match="vgg16_frcnn_cad.caffemodel"):
        build_predictor(PredictorRequest("frcnn_cad", tmp_path, None, "cpu"))


def test_end2end_predictions_in_official_order_with_a_bad_image_skipped(dataset, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for p in dataset["images"].iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    write_png(images / "e0_R-CC.png", np.zeros((240, 160), np.uint16))  # blank
    predictor = build_predictor(PredictorRequest("end2end", dataset["weights"], None, "cpu",
                                                 {"mean_pixel_intensity": "ddsm"}))
    assert predictor.provenance()["mean_pixel_intensity"] == 52.18
    run = predict_images(predictor, load_exam_list(dataset["exam_list"]), images, tmp_path / "out",
                         PredictOptions(device="cpu", batch_size=2, save_maps=True, visualize=True, progress=False))
    assert [f.name for f in run.failures] == ["e0_R-CC"] and "blank" in run.failures[0].reason
    rows = _rows(run.csv_path)
    assert [r["image_index"] for r in rows] == [n for n in OFFICIAL_ORDER if n != "e0_R-CC"]
    assert list(rows[0]) == ["image_index", "malignant_pred", "malignant_label"]
    assert [r["malignant_label"] for r in rows] == ["0", "0", "0", "0", "1"]
    maps = np.load(tmp_path / "out" / "maps" / "e0_L-CC.npz")
    assert maps["probabilities"].shape == (2,)
    assert float(rows[0]["malignant_pred"]) == pytest.approx(float(maps["probabilities"][1]), abs=1e-8)
    # the figure shows the network input
    x, _ = preprocess_end2end(read_png(images / "e1_R-CC.png"), predictor.mean_pixel_intensity, predictor.input_size)
    check_input_figure(tmp_path / "out" / "visualization" / "e1_R-CC.png", x)


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_frcnn_detections_in_maps_and_figure(dataset, tmp_path):
    predictor = build_predictor(PredictorRequest("frcnn_cad", dataset["weights"] / "vgg16_frcnn_cad.caffemodel", None,
                                                 "cpu"))
    run = predict_images(predictor, load_exam_list(dataset["small_exam_list"]), dataset["images"], tmp_path / "out",
                         PredictOptions(device="cpu", save_maps=True, visualize=True, progress=False))
    assert not run.failures and [r["image_index"] for r in run.rows] == ["e1_L-CC", "e1_R-CC"]
    maps = np.load(tmp_path / "out" / "maps" / "e1_R-CC.npz")
    malignant, probabilities = maps["malignant_detections"], maps["class_probabilities"]
    assert malignant.shape[1] == 5 and maps["benign_detections"].shape[1] == 5
    assert (np.diff(malignant[:, 4]) <= 0).all()  # strongest first
    # the image score is the strongest malignant detection = the highest malignant probability of any proposal
    score = float(_rows(run.csv_path)[1]["malignant_pred"])
    assert score == pytest.approx(float(malignant[0, 4]), abs=1e-7)
    assert score == pytest.approx(float(probabilities[:, 2].max()), abs=1e-7)
    h, w = maps["original_shape"]
    assert (malignant[:, [0, 2]] <= w - 1).all() and (malignant[:, [1, 3]] <= h - 1).all() and (malignant >= 0).all()
    for name in ("e1_L-CC", "e1_R-CC"):
        maps = np.load(tmp_path / "out" / "maps" / f"{name}.npz")
        grey = to_8bit_bgr(read_png(dataset["images"] / f"{name}.png"))[:, :, 0]
        check_detection_figure(tmp_path / "out" / "visualization" / f"{name}.png", grey,
                               {"malignant": maps["malignant_detections"], "benign": maps["benign_detections"]})


@pytest.mark.slow
def test_pipeline_runs_both_models_on_the_original_images(dataset, tmp_path, monkeypatch):
    out = tmp_path / "run"
    requests = [PredictorRequest("end2end", dataset["weights"]), PredictorRequest("frcnn_cad", dataset["weights"])]
    options = PredictOptions(device="cpu", progress=False)
    exam_list = dataset["small_exam_list"]
    result = run_pipeline(dataset["images"], exam_list, out, requests, options=options, log=lambda m: None)
    assert not (out / "cropped_images").exists() and not result.center_exam_lists  # no NYU crop or centres
    for name in ("end2end", "frcnn_cad"):
        rows = _rows(out / name / "predictions.csv")
        assert [(r["image_index"], r["malignant_label"]) for r in rows] == [("e1_L-CC", "0"), ("e1_R-CC", "1")]
        assert all(0.0 <= float(r["malignant_pred"]) <= 1.0 for r in rows)
    before = (out / "frcnn_cad" / "predictions.csv").read_text()

    def fail(self, prepared):
        raise AssertionError("finished images must not be predicted again")

    monkeypatch.setattr(FRCNNPredictor, "predict_batch", fail)
    again = run_pipeline(dataset["images"], exam_list, out, requests, options=options, log=lambda m: None)
    assert not again.failures["frcnn_cad"] and len(again.predictions["end2end"].rows) == 2  # resumed
    assert (out / "frcnn_cad" / "predictions.csv").read_text() == before


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_cli_run_with_a_model_option(dataset, tmp_path, capsys):
    from mammoscreen.cli import main

    out = tmp_path / "cli"
    args = ["run", "--model", "end2end", "--weights", str(dataset["weights"]), "--images", str(dataset["images"]),
            "--exam-list", str(dataset["exam_list"]), "--output-dir", str(out), "--device", "cpu", "--quiet",
            "--workers", "1"]
    assert main(args + ["--model-option", "mean_pixel_intensity=nyu"]) == 0
    rows = _rows(out / "end2end" / "predictions.csv")
    assert [r["image_index"] for r in rows] == OFFICIAL_ORDER
    journal = (out / "end2end" / ".predict_journal.jsonl").read_text()
    assert '"mean_pixel_intensity": 31.28' in journal  # the option reached the predictor
    assert main(args + ["--model-option", "scale=2"]) == 2
    assert "has no option scale" in capsys.readouterr().err
