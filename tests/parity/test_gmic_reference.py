"""Parity with the official GMIC implementation on the reference images (../shared/reference).

One `mammoscreen run` over the six reference mammograms (exam 1 lacks its MLO views, on which the
official code crashes) produces everything compared here: cropped PNGs, crop metadata, optimal
centres, predictions, saliency maps, ROI patches and attention.
"""

from __future__ import annotations

import csv
import pickle
import shutil

import numpy as np
import pytest
import torch

from testutils import split_original_shape
from mammoscreen.cli import main
from mammoscreen.data import load_exam_list, read_png
from mammoscreen.models.gmic_predictor import load_gmic
from mammoscreen.preprocess.windows import model_input

IMAGES = ["0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO", "1_L_CC", "1_R_CC"]
TOL = 1e-5


def load_pickle(path):
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def run_dir(reference_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gmic_run")
    code = main(["run", "--model", "gmic", "--weights", str(reference_dir / "gmic" / "gmic_reference.p"),
                 "--images", str(reference_dir / "images"),
                 "--exam-list", str(reference_dir / "exam_list_before_cropping.pkl"),
                 "--output-dir", str(out), "--save-maps", "--visualize",
                 "--segmentations", str(reference_dir / "segmentation"), "--device", "cpu", "--workers", "2",
                 "--quiet"])
    assert code == 0
    return out


def test_cropped_images_are_pixel_identical(run_dir, reference_dir):
    for name in IMAGES:
        ours = read_png(run_dir / "cropped_images" / f"{name}.png")
        official = read_png(reference_dir / "gmic" / "cropped" / f"{name}.png")
        assert ours.dtype == official.dtype == np.uint16
        assert np.array_equal(ours, official), name


def test_crop_metadata_and_centres_are_identical(run_dir, reference_dir):
    # Every official key is identical; mammoscreen's extra original_shape is the reference image's shape.
    cropped, shapes = split_original_shape(load_pickle(run_dir / "cropped_images" / "cropped_exam_list.pkl"))
    assert cropped == load_pickle(reference_dir / "gmic" / "cropped" / "cropped_exam_list.pkl")
    assert shapes == {name: read_png(reference_dir / "images" / f"{name}.png").shape for name in IMAGES}
    (ours, centre_shapes), official = (split_original_shape(load_pickle(run_dir / "data.pkl")),
                                       load_pickle(reference_dir / "gmic" / "data.pkl"))
    assert ours == official and centre_shapes == shapes
    assert [e["best_center"] for e in ours] == [e["best_center"] for e in official]


@pytest.mark.parametrize("name", IMAGES)
def test_model_outputs_match_the_official_ones(run_dir, reference_dir, name):
    ours = np.load(run_dir / "gmic" / "maps" / f"{name}.npz")
    official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / f"{name}.npz")
    for key in ("y_fusion", "y_global", "y_local", "saliency_map"):
        assert ours[key].shape == official[key].shape[1:]
        np.testing.assert_allclose(ours[key], official[key][0], rtol=0, atol=TOL, err_msg=f"{name} {key}")
    np.testing.assert_allclose(ours["patch_attention"], official["patch_attns"][0], rtol=0, atol=TOL)
    assert np.array_equal(ours["patch_locations"], official["patch_locations"][0].astype(np.int64))
    assert (run_dir / "gmic" / "visualization" / f"{name}.png").stat().st_size > 10_000


def test_predictions_csv_matches_the_official_file(run_dir, reference_dir):
    with open(run_dir / "gmic" / "predictions.csv") as f:
        ours = list(csv.DictReader(f))
    with open(reference_dir / "gmic" / "official_predictions" / "exam0_model_index_1.csv") as f:
        official = list(csv.DictReader(f))
    assert [r["image_index"] for r in ours] == IMAGES
    for mine, theirs in zip(ours, official):
        assert mine["image_index"] == theirs["image_index"]
        for column in ("benign_pred", "malignant_pred"):
            assert f"{float(mine[column]):.4f}" == theirs[column]
        for column in ("benign_label", "malignant_label"):
            assert mine[column] == theirs[column]


def test_input_window_and_patches_are_bit_identical(reference_dir):
    official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / "0_L-CC.npz")
    exams = load_exam_list(reference_dir / "gmic" / "data.pkl")
    cropped = read_png(reference_dir / "gmic" / "cropped" / "0_L-CC.png").astype(np.float32)
    window = model_input(cropped, "L-CC", exams[0].horizontal_flip, exams[0].image_metadata["best_center"]["L-CC"][0],
                         (2944, 1920))
    assert np.array_equal(window, official["input"])
    with pytest.warns(UserWarning, match="shared_rep_filter"):
        model = load_gmic(reference_dir / "gmic" / "gmic_reference.p", percent_t=0.02)
    with torch.inference_mode():
        out = model(torch.from_numpy(window)[None, None])
    assert np.array_equal(out.patches.numpy(), official["patches"])


def test_ensemble_averages_the_five_checkpoints(reference_dir, tmp_path):
    # Five copies of one checkpoint: y_fusion does not depend on top-t%, so the ensemble must equal it.
    weights = tmp_path / "weights"
    weights.mkdir()
    for i in range(1, 6):
        shutil.copy(reference_dir / "gmic" / "gmic_reference.p", weights / f"sample_model_{i}.p")
    data = load_pickle(reference_dir / "gmic" / "data.pkl")[1:]  # exam 1: two CC images
    (tmp_path / "exam1.pkl").write_bytes(pickle.dumps(data, protocol=4))
    code = main(["predict", "--weights", str(weights), "--model-index", "ensemble", "--images",
                 str(reference_dir / "gmic" / "cropped"), "--exam-list", str(tmp_path / "exam1.pkl"),
                 "--output-dir", str(tmp_path / "out"), "--device", "cpu", "--quiet", "--save-maps"])
    assert code == 0
    with open(tmp_path / "out" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["image_index"] for r in rows] == ["1_L_CC", "1_R_CC"]
    for row in rows:
        official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / f"{row['image_index']}.npz")
        assert float(row["malignant_pred"]) == pytest.approx(float(official["y_fusion"][0, 1]), abs=TOL)
        maps = np.load(tmp_path / "out" / "maps" / f"{row['image_index']}.npz")
        np.testing.assert_allclose(maps["ensemble_prediction"], official["y_fusion"][0], atol=TOL)


def test_rerun_skips_finished_stages_and_images(run_dir, reference_dir, capsys):
    def stamps():  # every output of the crop stage (the lock file records who last held the folder)
        return {p: p.stat().st_mtime_ns for p in (run_dir / "cropped_images").iterdir()
                if p.name != ".mammoscreen.lock"}

    before = stamps()
    csv_before = (run_dir / "gmic" / "predictions.csv").read_text()
    code = main(["run", "--model", "gmic", "--weights", str(reference_dir / "gmic" / "gmic_reference.p"),
                 "--images", str(reference_dir / "images"),
                 "--exam-list", str(reference_dir / "exam_list_before_cropping.pkl"),
                 "--output-dir", str(run_dir), "--save-maps", "--visualize",
                 "--segmentations", str(reference_dir / "segmentation"), "--device", "cpu", "--quiet"])
    assert code == 0
    log = capsys.readouterr().err
    assert "crop: up to date" in log and "centres (data.pkl): up to date" in log
    assert stamps() == before
    assert (run_dir / "gmic" / "predictions.csv").read_text() == csv_before
