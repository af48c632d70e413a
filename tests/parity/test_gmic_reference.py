"""Parity with the official GMIC implementation on the reference images (../shared/reference).

One `mammoscreen run` over the six reference mammograms (exam 1 lacks its MLO views, on which the
official code crashes) produces everything compared here: cropped PNGs, crop metadata, optimal
centres, predictions, saliency maps, ROI patches and attention.
"""

from __future__ import annotations

import csv
import pickle

import numpy as np
import pytest
import torch
from figures import check_gmic_figure
from testutils import split_original_shape

from mammoscreen.cli import main
from mammoscreen.data import load_exam_list, read_png
from mammoscreen.data.exams import iter_images
from mammoscreen.models.gmic.modeling import crop_patches
from mammoscreen.models.gmic.predictor import build_gmic_predictor, load_gmic
from mammoscreen.preprocess.windows import model_input

pytestmark = [pytest.mark.reference, pytest.mark.slow]

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


@pytest.mark.parametrize("name", IMAGES)
def test_figures_show_the_window_maps_and_patches(run_dir, reference_dir, name):
    record = next(r for r in iter_images(load_exam_list(run_dir / "data.pkl")) if r.name == name)
    with pytest.warns(UserWarning, match="shared_rep_filter"):
        predictor = build_gmic_predictor(reference_dir / "gmic" / "gmic_reference.p", "1", device="cpu")
    window = predictor.prepare(record, run_dir / "cropped_images").window
    official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / f"{name}.npz")
    masks = any((reference_dir / "segmentation" / f"{name}_{kind}.png").is_file() for kind in ("benign", "malignant"))
    check_gmic_figure(run_dir / "gmic" / "visualization" / f"{name}.png", window, official["saliency_map"][0],
                      official["patch_locations"][0], official["patches"][0], masks=masks)


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


def test_input_window_is_bit_identical(reference_dir):
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


@pytest.mark.parametrize("name", IMAGES)
def test_roi_patches_of_the_run_are_bit_identical(run_dir, reference_dir, name):
    """The six ROI patches of every image: the run's own window (its preprocessing) cut at the run's patch
    locations by the model's retrieval step, ``crop_patches`` (what ``GMIC.forward`` does after choosing
    the locations; the locations themselves are compared in test_model_outputs_match_the_official_ones)."""
    record = next(r for r in iter_images(load_exam_list(run_dir / "data.pkl")) if r.name == name)
    with pytest.warns(UserWarning, match="shared_rep_filter"):
        predictor = build_gmic_predictor(reference_dir / "gmic" / "gmic_reference.p", "1", device="cpu")
    window = torch.from_numpy(predictor.prepare(record, run_dir / "cropped_images").window)[None, None]
    locations = torch.from_numpy(np.load(run_dir / "gmic" / "maps" / f"{name}.npz")["patch_locations"])[None]
    official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / f"{name}.npz")["patches"]
    assert np.array_equal(crop_patches(window, locations, (256, 256)).numpy(), official)


ENSEMBLE_IMAGES = ["1_L_CC", "1_R_CC"]


@pytest.fixture(scope="module")
def ensemble_runs(reference_dir, tmp_path_factory):
    """Five different checkpoints, five single-model runs and one ensemble run on exam 1 (two CC images).

    ``sample_model_<i>.p`` is the reference checkpoint with every weight and bias tensor perturbed by
    seeded noise of 5 % of its standard deviation (seed i); BatchNorm statistics are left alone.
    """
    root = tmp_path_factory.mktemp("gmic_ensemble")
    weights = root / "weights"
    weights.mkdir()
    reference = torch.load(reference_dir / "gmic" / "gmic_reference.p", weights_only=True)
    for i in range(1, 6):
        generator = torch.Generator().manual_seed(i)
        state = {key: (value + 0.05 * value.std() * torch.randn(value.shape, generator=generator)
                       if key.endswith(("weight", "bias")) and value.numel() > 1 else value.clone())
                 for key, value in reference.items()}
        torch.save(state, weights / f"sample_model_{i}.p")
    data = load_pickle(reference_dir / "gmic" / "data.pkl")[1:]  # exam 1: two CC images
    (root / "exam1.pkl").write_bytes(pickle.dumps(data, protocol=4))
    outputs = {}
    for index in ["1", "2", "3", "4", "5", "ensemble"]:
        code = main(["predict", "--weights", str(weights), "--model-index", index, "--images",
                     str(reference_dir / "gmic" / "cropped"), "--exam-list", str(root / "exam1.pkl"),
                     "--output-dir", str(root / index), "--device", "cpu", "--quiet", "--save-maps"])
        assert code == 0
        outputs[index] = root / index
    return outputs


@pytest.mark.filterwarnings("ignore:.*shared_rep_filter:UserWarning")
def test_ensemble_is_the_mean_of_five_different_checkpoints(ensemble_runs):
    def csv_rows(directory):
        with open(directory / "predictions.csv") as f:
            return list(csv.DictReader(f))

    singles = {i: {name: np.load(ensemble_runs[str(i)] / "maps" / f"{name}.npz") for name in ENSEMBLE_IMAGES}
               for i in range(1, 6)}
    rows = csv_rows(ensemble_runs["ensemble"])
    assert [r["image_index"] for r in rows] == ENSEMBLE_IMAGES
    for row in rows:
        name = row["image_index"]
        fused = np.stack([singles[i][name]["y_fusion"] for i in range(1, 6)]).astype(np.float64)  # (5, 2)
        expected = fused.mean(axis=0)
        # The five checkpoints really differ, so the mean is neither model 1, the largest, nor the median.
        assert np.abs(fused[:, None] - fused[None]).max(axis=2)[np.triu_indices(5, 1)].min() > 5e-3
        for other in (fused[0], fused.max(axis=0), fused.min(axis=0), np.median(fused, axis=0)):
            assert np.abs(other - expected).max() > 2e-3
        ours = np.array([float(row["benign_pred"]), float(row["malignant_pred"])])
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6, err_msg=name)
        maps = np.load(ensemble_runs["ensemble"] / "maps" / f"{name}.npz")
        np.testing.assert_allclose(maps["ensemble_prediction"], expected, rtol=0, atol=1e-6)
        # Maps, patches and y_fusion of an ensemble are model 1's (as in the official code).
        for key in ("y_fusion", "y_global", "y_local", "saliency_map", "patch_attention", "patch_locations"):
            assert np.array_equal(maps[key], singles[1][name][key]), (name, key)
    for i in range(1, 6):  # a single model's CSV is its y_fusion
        for r in csv_rows(ensemble_runs[str(i)]):
            assert float(r["malignant_pred"]) == pytest.approx(float(singles[i][r["image_index"]]["y_fusion"][1]),
                                                               abs=1e-6)


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
