"""Parity with the official DMV-CNN implementation (nyu_model, nyu_model_single, the patch classifier).

Reference: ../shared/reference/{nyu_model,nyu_model_single}/README.md. The checkpoints are rebuilt once
per module from the reference manifests. One ``mammoscreen run`` per model (image-only) produces the
crops, centres, windows and predictions compared here; the image+heatmaps variants reuse those crops and
centres. Every exam and image the reference provides is compared: both exams of nyu_model (exam 1's
windows and patch grids depend on the run-wide random streams that exam 0 advanced), all six images of
nyu_model_single, both variants, every row of every CSV. Tolerances are the READMEs': integers and
stride lists exact, heatmaps / patch probabilities 1e-5, log-probabilities and probabilities 2e-4
(nyu_model) and 5e-4 (nyu_model_single), pooled features rtol 1e-5.
"""

from __future__ import annotations

import csv
import importlib.util
import pickle
import shutil
import warnings

import numpy as np
import pytest
from testutils import split_original_shape

from mammoscreen.cli import main
from mammoscreen.data import load_exam_list, read_png
from mammoscreen.engine import PredictOptions, predict_images
from mammoscreen.models.nyu_model.predictor import (
    build_nyu_model,
    build_nyu_model_single,
    load_image_wise,
    load_patch_classifier,
    load_view_wise,
)

pytestmark = [pytest.mark.reference, pytest.mark.slow]

VIEW_KEYS = ("L_CC", "R_CC", "L_MLO", "R_MLO")
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
SINGLE_IMAGES = ["0_L-CC", "0_L-MLO", "0_R-CC", "0_R-MLO", "1_L_CC", "1_R_CC"]  # the official row order
HEATMAP_TOL = 1e-5
NYU_TOL = 2e-4
SINGLE_TOL = 5e-4
CSV_ROUNDING = 5e-5


def load_pickle(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def assert_pooled_close(ours, official, what):
    official = np.asarray(official).reshape(-1)
    np.testing.assert_allclose(np.asarray(ours).reshape(-1), official, rtol=1e-5, atol=1e-5 * np.abs(official).max(),
                               err_msg=what)


@pytest.fixture(scope="module")
def checkpoints(reference_dir, tmp_path_factory):
    spec = importlib.util.spec_from_file_location("make_checkpoint", reference_dir / "tools" / "make_checkpoint.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out = tmp_path_factory.mktemp("dmv_checkpoints")
    names = ["nyu_model_image_only", "nyu_model_image_heatmaps", "nyu_model_single_image_only",
             "nyu_model_single_image_heatmaps", "patch_classifier_densenet121"]
    return {name: tool.build_checkpoint(reference_dir / "manifests" / f"{name}.json", out / f"{name}.p")
            for name in names}


@pytest.fixture(scope="module")
def nyu_images(reference_dir, tmp_path_factory):
    """The reference images plus exam 1's MLO views: byte copies of exam 0's (see the nyu_model README)."""
    images = tmp_path_factory.mktemp("nyu_images")
    for png in (reference_dir / "images").glob("*.png"):
        shutil.copy(png, images / png.name)
    shutil.copy(reference_dir / "images" / "0_L-MLO.png", images / "1_L_MLO.png")
    shutil.copy(reference_dir / "images" / "0_R-MLO.png", images / "1_R_MLO.png")
    return images


@pytest.fixture(scope="module")
def nyu_run(reference_dir, checkpoints, nyu_images, tmp_path_factory):
    out = tmp_path_factory.mktemp("nyu_run")
    code = main(["run", "--model", "nyu_model", "--weights", str(checkpoints["nyu_model_image_only"]),
                 "--images", str(nyu_images), "--exam-list", str(reference_dir / "nyu_model" / "exam_list_4view.pkl"),
                 "--output-dir", str(out), "--save-maps", "--device", "cpu", "--workers", "2", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def nyu_centers(nyu_run):
    return nyu_run / "data_CC2677x1942_MLO2974x1748.pkl"


@pytest.fixture(scope="module")
def single_run(reference_dir, checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("single_run")
    code = main(["run", "--model", "nyu_model_single", "--weights", str(checkpoints["nyu_model_single_image_only"]),
                 "--images", str(reference_dir / "images"),
                 "--exam-list", str(reference_dir / "exam_list_before_cropping.pkl"),
                 "--output-dir", str(out), "--save-maps", "--device", "cpu", "--workers", "2", "--quiet"])
    assert code == 0
    return out


# -- checkpoints -----------------------------------------------------------------------------------------

def test_official_checkpoint_formats_load_strictly(checkpoints):
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unused or aliased key may be left over
        view_wise = load_view_wise(checkpoints["nyu_model_image_heatmaps"])
        image_wise = load_image_wise(checkpoints["nyu_model_single_image_only"])
        patch = load_patch_classifier(checkpoints["patch_classifier_densenet121"])
    for model, name, n_keys in ((view_wise, "nyu_model_image_heatmaps", 794),
                                (image_wise, "nyu_model_single_image_only", 802)):
        state = torch.load(checkpoints[name], weights_only=True)["model"]
        assert len(state) == len(model.state_dict()) == n_keys
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert view_wise.in_channels == 3 and image_wise.in_channels == 1
    state = torch.load(checkpoints["patch_classifier_densenet121"], weights_only=True)
    assert len(state) == len(patch.state_dict()) == 727
    assert all(torch.equal(v, state[k]) for k, v in patch.state_dict().items())


# -- nyu_model, image only ---------------------------------------------------------------------------------

def test_nyu_model_crops_and_centres_are_the_official_ones(nyu_run, nyu_centers, nyu_images, reference_dir):
    official = reference_dir / "nyu_model"
    # Every official key is identical; mammoscreen's extra original_shape is the input image's shape.
    cropped, shapes = split_original_shape(load_pickle(nyu_run / "cropped_images" / "cropped_exam_list.pkl"))
    assert cropped == load_pickle(official / "cropped_exam_list.pkl")
    assert shapes and shapes == {name: read_png(nyu_images / f"{name}.png").shape for name in shapes}
    centred, centre_shapes = split_original_shape(load_pickle(nyu_centers))
    assert centred == load_pickle(official / "center_data.pkl") and centre_shapes == shapes


@pytest.mark.parametrize("exam", [0, 1])
def test_nyu_model_image_only_matches_the_official_outputs(nyu_run, reference_dir, exam):
    ours = np.load(nyu_run / "nyu_model" / "maps" / f"exam_{exam}.npz")
    official = np.load(reference_dir / "nyu_model" / "image_only" / f"exam{exam}.npz")
    for v in VIEW_KEYS:
        assert str(ours[f"image_{v}"]) == str(official[f"image_id_{v}"])
        assert np.array_equal(ours[f"borders_{v}"], official[f"borders_{v}"]), v
        assert_pooled_close(ours[f"pooled_{v}"], official[f"pooled_{v}"], v)
    np.testing.assert_allclose(ours["logp_CC"], official["logp_CC"], rtol=0, atol=NYU_TOL)
    np.testing.assert_allclose(ours["logp_MLO"], official["logp_MLO"], rtol=0, atol=NYU_TOL)
    np.testing.assert_allclose(ours["prediction"], official["predictions"], rtol=0, atol=NYU_TOL)


def test_nyu_model_csv_matches_the_official_file(nyu_run, reference_dir):
    with open(nyu_run / "nyu_model" / "predictions.csv") as f:
        ours = list(csv.DictReader(f))
    with open(reference_dir / "nyu_model" / "predictions_image_only.csv") as f:
        official = list(csv.DictReader(f))
    assert [r["exam_index"] for r in ours] == ["0", "1"]
    columns = ["left_benign", "right_benign", "left_malignant", "right_malignant"]
    for mine, theirs in zip(ours, official):
        for column in columns:
            assert float(mine[column]) == pytest.approx(float(theirs[column]), abs=NYU_TOL + CSV_ROUNDING)
    assert [ours[0][c + "_label"] for c in columns] == ["0", "1", "0", "0"]  # exam 0's cancer_label


@pytest.mark.parametrize("exam", [0, 1])
def test_nyu_model_input_windows_are_the_official_ones(nyu_run, nyu_centers, checkpoints, reference_dir, exam):
    exams = load_exam_list(nyu_centers)
    predictor = build_nyu_model(checkpoints["nyu_model_image_only"], device="cpu")
    predictor.plan(exams, nyu_run / "cropped_images")
    prepared = predictor.prepare(exam, exams[exam], nyu_run / "cropped_images")
    if exam == 0:
        official = np.load(reference_dir / "nyu_model" / "image_only" / "input_exam0_L_CC.npz")["input"]
        window = next(s.window for s in prepared.samples if s.view == "L-CC")
        assert np.array_equal(window[:, :, 0], official[0, 0])
    assert_windows_match(prepared, np.load(reference_dir / "nyu_model" / "image_only" / f"exam{exam}.npz"))


def assert_windows_match(prepared, official, channel=0):
    """Every view's window geometry and the statistics of its image channel (``input_stats_<V>``)."""
    for sample in prepared.samples:
        key = sample.view.replace("-", "_")
        g = sample.geometry
        shape = np.array(prepared.images[sample.name].shape)
        assert np.array_equal(shape, official[f"loaded_image_shape_{key}"]), key
        assert np.array_equal(shape + [g.pad_top + g.pad_bottom, g.pad_right], official[f"padded_image_shape_{key}"])
        assert np.array_equal(g.borders, official[f"borders_{key}"]), key
        if sample.window is None:
            continue
        rows, cols, total, mean, high, low = official[f"input_stats_{key}"]
        w = sample.window[:, :, channel]
        assert w.shape == (rows, cols)
        assert (w.max(), w.min()) == (np.float32(high), np.float32(low)), key
        assert abs(w.sum(dtype=np.float64) - total) <= 1e-6 * w.size and abs(w.mean(dtype=np.float64) - mean) < 1e-6


# -- nyu_model, image + heatmaps ---------------------------------------------------------------------------

NYU_HEATMAP_IMAGES = ["0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO", "1_L_CC", "1_R_CC", "1_L_MLO", "1_R_MLO"]


@pytest.fixture(scope="module")
def nyu_heatmaps(nyu_run, nyu_centers, checkpoints):
    """Both exams through the image+heatmaps model, with the run's random streams laid out for the whole
    list: {exam: (prepared, prediction)} and the predictor."""
    exams = load_exam_list(nyu_centers)
    predictor = build_nyu_model(checkpoints["nyu_model_image_heatmaps"], device="cpu",
                                patch_weights=checkpoints["patch_classifier_densenet121"])
    predictor.plan(exams, nyu_run / "cropped_images")
    results = {}
    for exam in range(len(exams)):
        prepared = predictor.prepare(exam, exams[exam], nyu_run / "cropped_images")
        results[exam] = (prepared, predictor.predict_exam(prepared))
    assert sorted(results) == [0, 1]
    return predictor, results


# The opt-in bfloat16 heatmaps: bounds stated in docs/models/nyu_model.md#speed (measured there: patch
# probabilities within 3.5e-3 of the official ones, breast predictions within 1e-3). It needs a CPU with
# native bfloat16 arithmetic: marked, and docs/testing.md says where it ran.
BF16_PATCH_TOL = 1e-2
BF16_PREDICTION_TOL = 5e-3


@pytest.fixture(scope="module")
def nyu_heatmaps_exam0_bfloat16(nyu_run, nyu_centers, checkpoints):
    import torch

    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX): --heatmap-precision "
                    "bfloat16 is refused here")
    exams = load_exam_list(nyu_centers)
    predictor = build_nyu_model(checkpoints["nyu_model_image_heatmaps"], device="cpu",
                                patch_weights=checkpoints["patch_classifier_densenet121"],
                                heatmap_precision="bfloat16")
    predictor.plan(exams, nyu_run / "cropped_images")
    prepared = predictor.prepare(0, exams[0], nyu_run / "cropped_images")
    return predictor, predictor.predict_exam(prepared)


@pytest.mark.bfloat16
def test_bfloat16_heatmaps_stay_within_their_documented_bounds(nyu_heatmaps_exam0_bfloat16, reference_dir):
    predictor, prediction = nyu_heatmaps_exam0_bfloat16
    assert predictor.provenance()["heatmap_precision"] == "bfloat16"
    worst = 0.0
    for name in ("0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO"):
        official = np.load(reference_dir / "nyu_model" / "heatmaps" / f"{name}.npz")
        ours = prediction.maps[f"patch_probabilities_{name}"]
        assert ours.shape == official["patch_probs"].shape
        worst = max(worst, float(np.abs(ours - official["patch_probs"]).max()))
    assert 1e-5 < worst < BF16_PATCH_TOL  # approximate (beyond the float32 tolerance), but close
    with open(reference_dir / "nyu_model" / "predictions_image_heatmaps.csv") as f:
        row = next(csv.DictReader(f))
    for column, value in row.items():
        assert prediction.values[column] == pytest.approx(float(value), abs=BF16_PREDICTION_TOL + CSV_ROUNDING)


def test_heatmap_patch_grids_of_the_whole_run_are_the_official_ones(nyu_heatmaps, reference_dir):
    predictor = nyu_heatmaps[0]
    for name in NYU_HEATMAP_IMAGES:
        official = np.load(reference_dir / "nyu_model" / "heatmaps" / f"{name}.npz")
        grid = predictor._grids[name]
        assert grid.image_shape == tuple(official["image_shape"])
        assert list(grid.row_strides) == official["width_stride_list"].tolist(), name
        assert list(grid.col_strides) == official["length_stride_list"].tolist(), name


def _summary(heatmap, positions):
    return np.array([*heatmap.shape, heatmap.sum(dtype=np.float64), heatmap.mean(dtype=np.float64), heatmap.max(),
                     *[heatmap[r, c] for r, c in positions]])


def assert_summary_close(ours, theirs, what):
    """A heatmap summary (rows, cols, sum, mean, max, five pixel values) against the official one."""
    assert tuple(ours[:2]) == tuple(theirs[:2]), what
    assert ours[2] == pytest.approx(theirs[2], rel=1e-5), what
    np.testing.assert_allclose(ours[3:], theirs[3:], rtol=0, atol=HEATMAP_TOL, err_msg=what)


@pytest.mark.parametrize("name", NYU_HEATMAP_IMAGES)
def test_nyu_model_heatmaps_match_the_official_ones(nyu_heatmaps, reference_dir, name):
    maps = nyu_heatmaps[1][0 if name.startswith("0") else 1][1].maps
    official = np.load(reference_dir / "nyu_model" / "heatmaps" / f"{name}.npz")
    assert maps[f"patch_row_strides_{name}"].tolist() == official["width_stride_list"].tolist()
    assert maps[f"patch_col_strides_{name}"].tolist() == official["length_stride_list"].tolist()
    np.testing.assert_allclose(maps[f"patch_probabilities_{name}"], official["patch_probs"], rtol=0,
                               atol=HEATMAP_TOL, err_msg=name)
    for kind in ("benign", "malignant"):
        assert_summary_close(_summary(maps[f"heatmap_{kind}_{name}"], official["summary_positions"]),
                             official[f"heatmap_{kind}_summary"], f"{name} {kind}")
    if name == "0_L-CC":
        full = np.load(reference_dir / "nyu_model" / "heatmaps" / "full_0_L-CC.npz")
        for kind in ("benign", "malignant"):
            np.testing.assert_allclose(maps[f"heatmap_{kind}_0_L-CC"], full[f"heatmap_{kind}"], rtol=0,
                                       atol=HEATMAP_TOL)


@pytest.mark.parametrize("exam", [0, 1])
def test_nyu_model_image_heatmaps_matches_the_official_outputs(nyu_heatmaps, reference_dir, exam):
    prepared, prediction = nyu_heatmaps[1][exam]
    maps = prediction.maps
    official = np.load(reference_dir / "nyu_model" / "image_heatmaps" / f"exam{exam}.npz")
    for v in VIEW_KEYS:
        assert str(maps[f"image_{v}"]) == str(official[f"image_id_{v}"])
        assert np.array_equal(maps[f"borders_{v}"], official[f"borders_{v}"]), v
        assert_pooled_close(maps[f"pooled_{v}"], official[f"pooled_{v}"], v)
    assert_windows_match(prepared, official)
    np.testing.assert_allclose(maps["logp_CC"], official["logp_CC"], rtol=0, atol=NYU_TOL)
    np.testing.assert_allclose(maps["logp_MLO"], official["logp_MLO"], rtol=0, atol=NYU_TOL)
    np.testing.assert_allclose(maps["prediction"], official["predictions"], rtol=0, atol=NYU_TOL)


def test_nyu_model_image_heatmaps_csv_rows_are_the_official_ones(nyu_heatmaps, reference_dir):
    with open(reference_dir / "nyu_model" / "predictions_image_heatmaps.csv") as f:
        official = list(csv.DictReader(f))
    assert len(official) == len(nyu_heatmaps[1]) == 2
    for exam, row in enumerate(official):
        values = nyu_heatmaps[1][exam][1].values
        for column, value in row.items():
            assert values[column] == pytest.approx(float(value), abs=NYU_TOL + CSV_ROUNDING), (exam, column)


@pytest.mark.parametrize("exam", [0, 1])
def test_nyu_model_heatmap_channels_of_the_input(nyu_heatmaps, reference_dir, exam):
    from mammoscreen.models.nyu_model.predictor import window_input
    from mammoscreen.preprocess.windows import flip_to_face_right

    prepared, prediction = nyu_heatmaps[1][exam]
    official = np.load(reference_dir / "nyu_model" / "image_heatmaps" / f"exam{exam}.npz")
    for sample in prepared.samples:
        key = sample.view.replace("-", "_")
        mirror = lambda a: flip_to_face_right(a, sample.view, "NO")  # noqa: E731 - maps are in original orientation
        image = mirror(prepared.images[sample.name]).astype(np.float32)
        heatmaps = tuple(mirror(prediction.maps[f"heatmap_{kind}_{sample.name}"]) for kind in ("benign", "malignant"))
        window = window_input(image, heatmaps, sample.geometry, sample.view)
        if exam == 0 and sample.view == "L-CC":
            reference = np.load(reference_dir / "nyu_model" / "image_heatmaps" / "input_exam0_L_CC.npz")["input"][0]
            np.testing.assert_allclose(window.transpose(2, 0, 1), reference, rtol=0, atol=HEATMAP_TOL)
        rows, cols, total, mean, high, low = official[f"input_stats_{key}"]
        assert window.shape[:2] == (rows, cols)
        # The README: the image channel differs from the image-only input by <= 1.9e-6 (OpenCV's cubic
        # resize of a 3-channel array); our three channels are resized together, as the official ones.
        assert abs(float(window[:, :, 0].max()) - high) <= 1e-5 and abs(float(window[:, :, 0].min()) - low) <= 1e-5
        assert abs(window[:, :, 0].mean(dtype=np.float64) - mean) < 1e-6
        for channel, kind in ((1, "benign"), (2, "malignant")):
            ours = _summary(window[:, :, channel], official["summary_positions_window"])
            assert_summary_close(ours, official[f"hm_window_summary_{kind}_{key}"], f"exam {exam} {key} {kind}")
            saved = _summary(prediction.maps[f"heatmap_{kind}_{sample.name}"], official["summary_positions_saved"])
            assert_summary_close(saved, official[f"hm_saved_summary_{kind}_{key}"], f"exam {exam} {key} {kind} saved")


# -- nyu_model_single --------------------------------------------------------------------------------------

def _single_csv_matches(ours_path, official_path):
    ours = ours_path.read_text().splitlines()
    official = official_path.read_text().splitlines()
    assert ours[0] == official[0] == ",image_index,malignant_pred,malignant_label"
    assert len(ours) == len(official) == 7
    for mine, theirs in zip(ours[1:], official[1:]):
        index, name, pred, label = mine.split(",")
        t_index, t_name, t_pred, t_label = theirs.split(",")
        assert (index, name, label) == (t_index, t_name, t_label)
        assert float(pred) == pytest.approx(float(t_pred), abs=SINGLE_TOL), name


def test_nyu_model_single_csv_has_the_official_layout_and_values(single_run, reference_dir):
    _single_csv_matches(single_run / "nyu_model_single" / "predictions.csv",
                        reference_dir / "nyu_model_single" / "predictions_image_only.csv")


def assert_single_outputs_match(ours, official, name):
    assert np.array_equal(ours["borders"][0], official["borders"]), name
    assert np.array_equal(ours["cropped_shape"], official["cropped_shape"]), name
    assert np.array_equal(ours["cropped_shape"] + [ours["padding"][0][0] + ours["padding"][0][1],
                                                   ours["padding"][0][2]], official["padded_image_shape"]), name
    assert_pooled_close(ours["pooled"][0], official["pooled"], name)
    np.testing.assert_allclose(ours["logp"][0], official["logp"][0], rtol=0, atol=SINGLE_TOL, err_msg=name)
    np.testing.assert_allclose(ours["probabilities"], official["prob"][0], rtol=0, atol=SINGLE_TOL, err_msg=name)
    assert float(ours["probabilities"][1]) == pytest.approx(float(official["malignant_pred"]), abs=SINGLE_TOL)
    assert float(ours["probabilities"][0]) == pytest.approx(float(official["benign_pred"]), abs=SINGLE_TOL)


@pytest.mark.parametrize("name", SINGLE_IMAGES)
def test_nyu_model_single_image_only_matches_the_official_outputs(single_run, reference_dir, name):
    ours = np.load(single_run / "nyu_model_single" / "maps" / f"{name}.npz")
    official = np.load(reference_dir / "nyu_model_single" / "image_only" / f"{name}.npz")
    assert_single_outputs_match(ours, official, name)
    centers = load_pickle(single_run / "data_CC2677x1942_MLO2974x1748.pkl")
    exam = 0 if name.startswith("0") else 1
    view = next(v for v in VIEWS if name in centers[exam][v])
    assert tuple(centers[exam]["best_center"][view][0]) == tuple(official["best_center"])
    assert list(centers[exam]["window_location"][view][0]) == official["window_location"].tolist()


@pytest.mark.parametrize("name", SINGLE_IMAGES)
def test_nyu_model_single_inputs_are_the_official_ones(single_run, checkpoints, reference_dir, name):
    exams = load_exam_list(single_run / "data_CC2677x1942_MLO2974x1748.pkl")
    predictor = build_nyu_model_single(checkpoints["nyu_model_single_image_only"], device="cpu")
    record = next(r for r in predictor.select_images(exams) if r.name == name)
    prepared = predictor.prepare(record, single_run / "cropped_images")
    window = prepared.windows[0][:, :, 0]
    if name == "0_L-MLO":
        official = np.load(reference_dir / "nyu_model_single" / "image_only" / "full_0_L-MLO.npz")["input"]
        assert np.array_equal(window, official[0, 0])
    elif name == "0_L-CC":  # the README: identical to nyu_model's exam 0 L-CC input
        official = np.load(reference_dir / "nyu_model" / "image_only" / "input_exam0_L_CC.npz")["input"]
        assert np.array_equal(window, official[0, 0])
    rows, cols, total, mean, high, low = np.load(reference_dir / "nyu_model_single" / "image_only" /
                                                 f"{name}.npz")["input_stats"]
    assert window.shape == (rows, cols)
    assert (window.max(), window.min()) == (np.float32(high), np.float32(low))
    assert abs(window.mean(dtype=np.float64) - mean) < 1e-6


@pytest.fixture(scope="module")
def single_heatmaps_run(single_run, checkpoints, tmp_path_factory):
    """The image+heatmaps nyu_model_single over all six reference images (each with its own seeds)."""
    exams = load_exam_list(single_run / "data_CC2677x1942_MLO2974x1748.pkl")
    predictor = build_nyu_model_single(checkpoints["nyu_model_single_image_heatmaps"], device="cpu",
                                       patch_weights=checkpoints["patch_classifier_densenet121"])
    out = tmp_path_factory.mktemp("single_heatmaps")
    run = predict_images(predictor, exams, single_run / "cropped_images", out,
                         PredictOptions(device="cpu", progress=False, save_maps=True))
    assert [r["image_index"] for r in run.rows] == SINGLE_IMAGES
    return out


def test_nyu_model_single_heatmaps_csv_has_the_official_values(single_heatmaps_run, reference_dir):
    _single_csv_matches(single_heatmaps_run / "predictions.csv",
                        reference_dir / "nyu_model_single" / "predictions_image_heatmaps.csv")


@pytest.mark.parametrize("name", SINGLE_IMAGES)
def test_nyu_model_single_heatmaps_match_the_official_ones(single_heatmaps_run, reference_dir, name):
    ours = np.load(single_heatmaps_run / "maps" / f"{name}.npz")
    official = np.load(reference_dir / "nyu_model_single" / "image_heatmaps" / f"{name}.npz")
    assert ours["heatmap_benign"].shape == tuple(official["hm_image_shape"])
    assert ours["patch_row_strides"].tolist() == official["hm_width_stride_list"].tolist()
    assert ours["patch_col_strides"].tolist() == official["hm_length_stride_list"].tolist()
    assert len(ours["patch_probabilities"]) == int(official["hm_n_patches"])
    np.testing.assert_allclose(ours["patch_probabilities"], official["hm_patch_probs"], rtol=0, atol=HEATMAP_TOL)
    for kind in ("benign", "malignant"):  # not mirrored for the patches, unlike nyu_model's
        assert_summary_close(_summary(ours[f"heatmap_{kind}"], official["summary_positions_saved"]),
                             official[f"hm_saved_summary_{kind}"], f"{name} {kind}")
    full = {"0_R-CC": ("nyu_model_single/image_heatmaps/full_0_R-CC.npz", "heatmap_{}_saved"),
            "0_L-CC": ("nyu_model/heatmaps/full_0_L-CC.npz", "heatmap_{}")}.get(name)  # README: 0_L-CC's are nyu_model's
    if full is not None:
        maps = np.load(reference_dir / full[0])
        for kind in ("benign", "malignant"):
            np.testing.assert_allclose(ours[f"heatmap_{kind}"], maps[full[1].format(kind)], rtol=0, atol=HEATMAP_TOL)
    assert_single_outputs_match(ours, official, name)
