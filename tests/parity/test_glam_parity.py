"""GLAM (nyu_glam) against the official implementation's outputs in ../shared/reference/glam/.

The reference checkpoint is rebuilt once per session from its manifest with the reference tool. The
whole multi-model pipeline (``mammoscreen run --models gmic,nyu_glam``: crop and centres once, then
both models) runs once per session; the tests compare its files with the official ones. Tolerances
are the reference README's: integer positions exact, everything else 1e-5 absolute.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import pickle

import numpy as np
import pytest
import torch
from figures import check_glam_figure

from mammoscreen.cli import main
from mammoscreen.data.exams import iter_images, load_exam_list
from mammoscreen.models.gmic.modeling import crop_patches
from mammoscreen.models.nyu_glam.predictor import build_glam_predictor

pytestmark = [pytest.mark.reference, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:.*shared_rep_filter:UserWarning")]

TOLERANCE = 1e-5
IMAGES = ("0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO", "1_L_CC", "1_R_CC")


def reference_tool(reference_dir, name):
    spec = importlib.util.spec_from_file_location(f"reference_{name}", reference_dir / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def glam_weights_dir(reference_dir, tmp_path_factory):
    """A directory holding the reference checkpoint under its official name, model_joint.ckpt."""
    directory = tmp_path_factory.mktemp("glam_weights")
    tool = reference_tool(reference_dir, "make_checkpoint")
    tool.build_checkpoint(reference_dir / "manifests" / "glam_model_joint.json", directory / "model_joint.ckpt")
    return directory


@pytest.fixture(scope="session")
def glam_run(reference_dir, glam_weights_dir, tmp_path_factory):
    """``mammoscreen run --models gmic,nyu_glam`` over the reference images: (exit status, output dir)."""
    output = tmp_path_factory.mktemp("multi_model_run")
    status = main(["run", "--models", "gmic,nyu_glam",
                   "--weights", f"gmic={reference_dir / 'gmic' / 'gmic_reference.p'}",
                   "--weights", f"nyu_glam={glam_weights_dir}",
                   "--images", str(reference_dir / "images"),
                   "--exam-list", str(reference_dir / "exam_list_before_cropping.pkl"),
                   "--output-dir", str(output), "--device", "cpu", "--workers", "2",
                   "--save-maps", "--visualize", "--segmentations", str(reference_dir / "segmentation"), "--quiet"])
    return status, output


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def max_abs_diff(ours, theirs):
    return float(np.max(np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64))))


def test_both_models_ran_on_shared_preprocessing(glam_run):
    status, output = glam_run
    assert status == 0
    summary = json.loads((output / "run_summary.json").read_text())
    assert [(m["model"], m["status"], m["n_predictions"]) for m in summary["models"]] == \
        [("gmic", "done", 6), ("nyu_glam", "done", 6)]
    assert sorted(p.name for p in output.glob("data*.pkl")) == ["data.pkl"]  # one centre search for both


def test_the_run_localised_the_saliency_maps_of_both_models(glam_run):
    # --segmentations with --save-maps: the run scores GMIC's and GLAM's maps. The reference masks are the
    # official window-aligned ones (2944x1920, the GMIC convention): localize maps them back to the original
    # image, so both masked images are scored; the images without a mask are reported and skipped.
    _, output = glam_run
    for name, layout in (("gmic", "gmic"), ("nyu_glam", "glam")):
        summary = json.loads((output / name / "localization" / "localization.json").read_text())
        assert summary["n_maps"] == 6 and summary["n_skipped"] == 4 and summary["map_layouts"] == {layout: 2}
        assert summary["mask_frames"] == {"original": 0, "cropped": 0, "window": 2}
        assert summary["classes"]["benign"]["n_images"] == 2 and summary["classes"]["malignant"]["n_images"] == 0
        reasons = {s["image"]: s["reason"] for s in summary["skipped"]}
        assert set(reasons) == set(IMAGES) - {"0_R-CC", "0_R-MLO"}
        assert all(reason.startswith("no mask") for reason in reasons.values())
        rows = read_csv(output / name / "localization" / "localization_per_image.csv")
        assert {(r["image"], r["class"], r["mask_frame"]) for r in rows} == \
            {("0_R-CC", "benign", "window"), ("0_R-MLO", "benign", "window")}


def test_glam_predictions_csv_matches_the_official_file(glam_run, reference_dir):
    _, output = glam_run
    ours = read_csv(output / "nyu_glam" / "predictions.csv")
    official = read_csv(reference_dir / "glam" / "predictions.csv")
    assert list(ours[0]) == list(official[0]) == ["image_index", "benign_pred", "malignant_pred", "benign_label",
                                                  "malignant_label"]
    assert [r["image_index"] for r in ours] == [r["image_index"] for r in official]
    for mine, theirs in zip(ours, official):
        for column in ("benign_pred", "malignant_pred"):
            assert f"{float(mine[column]):.4f}" == theirs[column], (mine["image_index"], column)
        for column in ("benign_label", "malignant_label"):
            assert mine[column] == theirs[column]


def test_gmic_in_the_same_run_matches_its_official_predictions(glam_run, reference_dir):
    _, output = glam_run
    ours = {r["image_index"]: r for r in read_csv(output / "gmic" / "predictions.csv")}
    for row in read_csv(reference_dir / "gmic" / "official_predictions" / "exam0_model_index_1.csv"):
        for column in ("benign_pred", "malignant_pred"):
            assert f"{float(ours[row['image_index']][column]):.4f}" == row[column]


def test_preprocessing_metadata_equals_the_official_centre_data(glam_run, reference_dir):
    _, output = glam_run
    with open(reference_dir / "glam" / "center_data.pkl", "rb") as f:
        official = pickle.load(f)
    ours = {r.name: r for r in iter_images(load_exam_list(output / "data.pkl"))}
    for exam in official:
        for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
            for j, name in enumerate(exam[view]):
                for key in ("window_location", "rightmost_points", "bottommost_points", "distance_from_starting_side",
                            "best_center"):
                    expected = json.loads(json.dumps(exam[key][view][j], default=int))
                    assert json.loads(json.dumps(ours[name].metadata[key])) == expected, (name, key)


@pytest.mark.parametrize("image", IMAGES)
def test_glam_maps_match_the_official_outputs(glam_run, reference_dir, image):
    _, output = glam_run
    ours = np.load(output / "nyu_glam" / "maps" / f"{image}.npz")
    ref = np.load(reference_dir / "glam" / "outputs" / f"{image}.npz")
    # Integer positions: exact.
    assert ours["small_x_locations"].tolist() == ref["small_x_locations"][0].tolist()
    assert ours["patch_locations"].tolist() == ref["patch_locations"][0].astype(np.int64).tolist()
    assert ours["window_borders"].tolist() == ref["borders"].tolist()
    pad_top, pad_bottom, pad_right = ours["window_padding"]
    padded = ours["cropped_shape"] + np.array([pad_top + pad_bottom, pad_right])
    assert padded.tolist() == ref["padded_image_shape"].tolist()
    # Values: 1e-5.
    pairs = {"y_global": ref["y_global"][0], "y_local": ref["y_local"][0], "y_cam_logits": ref["y_cam_logits"][:, 0],
             "x_layer1": ref["x_layer1"][0], "x_layer2": ref["x_layer2"][0], "x_layer3": ref["x_layer3"][0],
             "downsampled_map": ref["downsampled_map"][0], "saliency_map_global": ref["saliency_map_global"][0],
             "raw_local_CAM": ref["raw_local_CAM"], "saliency_map": ref["saliency_map_final_s4"][0]}
    for key, expected in pairs.items():
        assert ours[key].shape == expected.shape, key
        assert max_abs_diff(ours[key], expected) <= TOLERANCE, key


@pytest.mark.parametrize("image", IMAGES)
def test_glam_figures_show_the_window_maps_and_region(glam_run, glam_predictor, image):
    _, output = glam_run
    record = next(r for r in iter_images(load_exam_list(output / "data.pkl")) if r.name == image)
    window = glam_predictor.prepare(record, output / "cropped_images").window
    maps = np.load(output / "nyu_glam" / "maps" / f"{image}.npz")
    region = crop_patches(torch.from_numpy(window)[None, None], torch.from_numpy(maps["patch_locations"])[None],
                          (512, 512))[0].numpy()
    check_glam_figure(output / "nyu_glam" / "visualization" / f"{image}.png", window, maps["saliency_map"],
                      maps["patch_locations"], region)


@pytest.fixture(scope="session")
def glam_predictor(glam_weights_dir):
    return build_glam_predictor(glam_weights_dir, "model_joint", device="cpu")


@pytest.mark.parametrize("image", ["0_L-CC", "1_L_CC"])
def test_network_input_is_the_official_one(glam_run, glam_predictor, reference_dir, image):
    _, output = glam_run
    record = next(r for r in iter_images(load_exam_list(output / "data.pkl")) if r.name == image)
    window = glam_predictor.prepare(record, output / "cropped_images").window
    if image == "0_L-CC":  # the official GLAM input equals GMIC's, which the GMIC reference stores
        official = np.load(reference_dir / "gmic" / "outputs_percent_t_0.02" / "0_L-CC.npz")["input"]
    else:
        official = np.load(reference_dir / "glam" / "outputs" / "input_1_L_CC.npz")["input"][0, 0]
    assert np.array_equal(window, official)
    stats = np.load(reference_dir / "glam" / "outputs" / f"{image}.npz")
    assert abs(window.astype(np.float64).mean() - float(stats["input_mean"])) <= 1e-9
    assert window.min() == stats["input_min"] and window.max() == stats["input_max"]


def test_model_on_the_official_input_reproduces_the_official_outputs(glam_predictor, reference_dir):
    """The global network alone, fed the exact tensor the official model was given (no preprocessing
    involved), and the region it selects (the local branch is checked through the run's maps)."""
    official_input = torch.from_numpy(np.load(reference_dir / "glam" / "outputs" / "input_1_L_CC.npz")["input"])
    ref = np.load(reference_dir / "glam" / "outputs" / "1_L_CC.npz")
    with torch.inference_mode():
        out = glam_predictor.model(official_input, with_local=False)
    assert max_abs_diff(out.y_global, ref["y_global"]) <= TOLERANCE
    assert max_abs_diff(out.saliency_map_global, ref["saliency_map_global"]) <= TOLERANCE
    assert out.patch_locations[0].tolist() == ref["patch_locations"][0].astype(np.int64).tolist()
    patch_sum = crop_patches(official_input, out.patch_locations, (512, 512)).double().sum().item()
    assert abs(patch_sum - float(ref["patch_sum"])) <= 1e-9 * abs(float(ref["patch_sum"]))
