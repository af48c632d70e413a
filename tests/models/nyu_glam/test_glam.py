"""GLAM on generated data: the architecture's formulas against independent numpy oracles, checkpoint
loading, the registry entry and the predictor in the engine."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch

from mammoscreen.data.exams import Exam
from mammoscreen.data.images import write_png
from mammoscreen.engine import PredictOptions, predict_images
from mammoscreen.models.factory import PredictorRequest, build_predictor
from mammoscreen.models.nyu_glam.modeling import (
    GLAM,
    GLAMConfig,
    high_resolution_saliency,
    paste_local_maps,
    top_k_pooling_over_crops,
)
from mammoscreen.models.nyu_glam.predictor import build_glam_predictor, load_glam
from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.weights import UnexpectedKeysWarning, WeightsError

# A GLAM small enough for a CPU test: 256x128 input -> 16x8 finest saliency grid (stride 16, as the
# published model), 64x64 crops -> a 4x4 window on that grid and a 16x16 local map.
SMALL = GLAMConfig(input_size=(256, 128), crop_size=(64, 64), global_channels=4, local_channels=8,
                   local_blocks=(1, 1, 1, 1))


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    model = GLAM(SMALL)
    randomize_batchnorm(model)
    return model.eval()


@pytest.fixture(scope="module")
def small_run(small_model):
    x = torch.randn(2, 1, *SMALL.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return x, small_model(x)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def top_mean(values, fraction):
    flat = np.sort(values.reshape(values.shape[0], -1), axis=1)[:, ::-1]
    k = int(round(flat.shape[1] * fraction))
    return flat[:, :k].mean(axis=1)


def test_saliency_levels_come_from_three_levels_of_the_global_network(small_model, small_run):
    x, out = small_run
    net = small_model.global_network.downsampling_branch
    head = small_model.global_network.postprocess_module
    with torch.no_grad():
        stages = [s.numpy() for s in net.forward_stages(x)]
        last = torch.relu(net.final_bn(torch.from_numpy(stages[-1]))).numpy()

    def conv1x1(weight, features):
        return np.einsum("oc,nchw->nohw", weight.detach().numpy()[:, :, 0, 0], features)

    def upsample(a, factor):
        return a.repeat(factor, axis=2).repeat(factor, axis=3)

    expected = [sigmoid(conv1x1(head.gn_conv_1.weight, stages[2])),
                sigmoid(upsample(conv1x1(head.gn_conv_2.weight, stages[3]), 2)),  # upsampled, then sigmoid
                sigmoid(upsample(conv1x1(head.gn_conv_last.weight, last), 4))]
    assert out.level_maps[0].shape == (2, 2, 16, 8)
    for got, want in zip(out.level_maps, expected):
        np.testing.assert_allclose(got.numpy(), want, atol=2e-6)


def test_global_prediction_is_the_mean_of_three_top_k_pooled_levels(small_run):
    _, out = small_run
    x1, x2, x3 = (m.numpy() for m in out.level_maps)
    pooled = [np.stack([top_mean(m[:, c], 0.03) for c in range(2)], axis=1) for m in (x1, x2, x3, (x1 + x2 + x3) / 3)]
    np.testing.assert_allclose(out.y_cam_logits.numpy(), np.stack(pooled), atol=1e-6)
    np.testing.assert_allclose(out.y_global.numpy(), (pooled[0] + pooled[1] + pooled[2]) / 3, atol=1e-6)
    np.testing.assert_allclose(out.saliency_map_global.numpy(), 0.2 * x3 + 0.6 * x2 + 0.2 * x1, atol=1e-6)
    np.testing.assert_allclose(out.downsampled_map.numpy(), (x1 + x2 + x3) / 3, atol=1e-6)


def test_region_is_the_best_window_of_the_normalised_global_map_and_is_segmented_at_full_resolution(
        small_model, small_run):
    x, out = small_run
    sal = out.saliency_map_global.numpy().astype(np.float64)
    for i in range(2):
        norm = sum((sal[i, c] - sal[i, c].min()) / (sal[i, c].max() - sal[i, c].min()) for c in range(2))
        sums = np.array([[norm[r:r + 4, c:c + 4].sum() for c in range(8 - 4 + 1)] for r in range(16 - 4 + 1)])
        best = np.unravel_index(np.argmax(sums), sums.shape)  # first maximum in raster order
        assert out.small_x_locations[i, 0].tolist() == list(best)
        r, c = (int(v) * 16 for v in best)
        assert out.patch_locations[i, 0].tolist() == [r, c]
        np.testing.assert_array_equal(out.patches[i, 0].numpy(), x[i, 0, r:r + 64, c:c + 64].numpy())
    with torch.no_grad():
        direct = small_model.detection_network(out.patches.reshape(2, 1, 64, 64))
    assert out.raw_local_cam.shape == (2, 1, 2, 16, 16)
    np.testing.assert_allclose(out.raw_local_cam[:, 0].numpy(), direct.numpy(), atol=1e-6)
    local = out.raw_local_cam[:, 0].numpy()
    expected = np.stack([top_mean(local[:, c], 0.3) for c in range(2)], axis=1)
    np.testing.assert_allclose(out.y_local.numpy(), expected, atol=1e-6)


def test_batch_gives_the_same_outputs_as_single_images(small_model, small_run):
    x, out = small_run
    with torch.no_grad():
        single = small_model(x[1:2])
    np.testing.assert_allclose(single.y_global.numpy(), out.y_global[1:2].numpy(), atol=1e-6)
    assert single.patch_locations.tolist() == out.patch_locations[1:2].tolist()


def test_high_resolution_map_is_the_mean_of_upsampled_global_and_pasted_local_maps():
    rng = np.random.default_rng(0)
    global_map = rng.random((1, 2, 16, 8)).astype(np.float32)
    local = rng.random((1, 1, 2, 16, 16)).astype(np.float32)
    location = np.array([[[48, 32]]])
    final = high_resolution_saliency(torch.from_numpy(global_map), torch.from_numpy(local),
                                     torch.from_numpy(location), (256, 128), (64, 64)).numpy()
    expected_local = np.zeros((1, 2, 256, 128), np.float32)
    expected_local[0, :, 48:112, 32:96] = local[0, 0].repeat(4, axis=1).repeat(4, axis=2)
    expected = (expected_local + global_map.repeat(16, axis=2).repeat(16, axis=3)) / 2
    np.testing.assert_array_equal(final, expected)
    strided = high_resolution_saliency(torch.from_numpy(global_map), torch.from_numpy(local),
                                       torch.from_numpy(location), (256, 128), (64, 64), stride=4).numpy()
    np.testing.assert_array_equal(strided, expected[:, :, ::4, ::4])


def test_pasting_clips_at_the_border_and_later_crops_win():
    cams = torch.stack([torch.full((2, 2, 2), 1.0), torch.full((2, 2, 2), 2.0)])[None]  # (1, K=2, 2, 2, 2)
    out = paste_local_maps(cams, torch.tensor([[[0, 0], [2, 4]]]), (6, 6), (4, 4))
    assert out.shape == (1, 2, 6, 6)
    assert (out[0, :, :2, :4] == 1).all() and (out[0, :, 2:6, 4:6] == 2).all()  # second crop clipped to 2 columns
    assert (out[0, :, 2:4, :4] == 1).all() and out[0, :, 4:, :4].sum() == 0


def test_local_pooling_takes_the_top_fraction_over_all_crops():
    cams = torch.from_numpy(np.random.default_rng(1).random((2, 3, 2, 4, 4)).astype(np.float32))
    got = top_k_pooling_over_crops(cams, 0.25).numpy()
    values = cams.numpy().transpose(0, 2, 1, 3, 4).reshape(2, 2, -1)
    expected = np.sort(values, axis=2)[:, :, ::-1][:, :, :12].mean(axis=2)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_checkpoint_round_trip_and_unused_official_key(tmp_path, small_model, small_run):
    x, out = small_run
    state = dict(small_model.state_dict())
    state["global_network.postprocess_module.combine.weight"] = torch.zeros(2, 6, 1, 1)  # in the official files
    path = tmp_path / "model_joint.ckpt"
    torch.save(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known-unused key must not warn
        loaded = load_glam(path, SMALL)
    with torch.no_grad():
        again = loaded(x)
    np.testing.assert_array_equal(again.y_global.numpy(), out.y_global.numpy())

    state["something.else"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.warns(UnexpectedKeysWarning, match="something.else"):
        load_glam(path, SMALL)

    del state["detection_network.gn_conv_last.weight"]
    torch.save(state, path)
    with pytest.raises(WeightsError, match="detection_network.gn_conv_last.weight.*model_joint.ckpt"):
        load_glam(path, SMALL)


def test_a_gmic_checkpoint_is_refused_with_a_clear_message(tmp_path):
    from mammoscreen.models.gmic.modeling import GMIC, GMICConfig

    path = tmp_path / "gmic.p"
    torch.save(GMIC(GMICConfig(global_channels=4, local_channels=8)).state_dict(), path)
    with pytest.raises(WeightsError, match="missing"):
        load_glam(path, SMALL)


def test_registry_entry():
    spec = get_model_spec("nyu_glam")
    assert spec.output_level == "image"
    assert spec.prediction_columns == ("benign_pred", "malignant_pred")
    assert spec.variants == ("model_joint", "model_sep") and spec.default_variant == "model_joint"
    assert spec.weights["model_joint"].filename == "model_joint.ckpt"
    assert spec.weights["model_sep"].filename == "model_sep.ckpt"
    assert all("nyukat/GLAM" in wf.url for wf in spec.weights.values())
    assert "non-commercial" in spec.license and "MIDL" in spec.paper
    assert dict(spec.center_windows) == {"CC": (2944, 1920), "MLO": (2944, 1920)}
    with pytest.raises(ValueError, match="model_joint, model_sep"):
        build_predictor(PredictorRequest(spec.name, "unused", "model_3"))


def test_predictor_in_the_engine_writes_csv_maps_figure_and_skips_a_bad_image(tmp_path, small_model):
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    torch.save(small_model.state_dict(), weights_dir / "model_sep.ckpt")
    predictor = build_glam_predictor(weights_dir, "model_sep", device="cpu", config=SMALL)
    assert predictor.provenance()["variant"] == "model_sep"

    images = tmp_path / "images"
    rng = np.random.default_rng(0)
    for name in ("a_cc", "a_mlo"):
        write_png(images / f"{name}.png", rng.integers(0, 4000, (200, 100)).astype(np.uint16))
    exam = Exam(images={"L-CC": ["a_cc"], "R-CC": ["missing"], "L-MLO": ["a_mlo"], "R-MLO": []},
                cancer_label={"left_benign": 1, "left_malignant": 0, "right_benign": 0, "right_malignant": 1},
                image_metadata={"best_center": {"L-CC": [(100, 40)], "R-CC": [(100, 40)], "L-MLO": [(120, 60)],
                                                "R-MLO": []},
                                # a_cc comes from a crop of a 300x250 original; a_mlo's exam list predates both
                                "window_location": {"L-CC": [(30, 230, 20, 120)], "R-CC": [None],
                                                    "L-MLO": [None], "R-MLO": []},
                                "original_shape": {"L-CC": [(300, 250)], "R-CC": [None], "L-MLO": [None],
                                                   "R-MLO": []}})
    out_dir = tmp_path / "out"
    run = predict_images(predictor, [exam], images, out_dir,
                         PredictOptions(device="cpu", save_maps=True, visualize=True, progress=False))
    assert [f.name for f in run.failures] == ["missing"]
    with open(run.csv_path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label"]
    assert [r[0] for r in rows[1:]] == ["a_cc", "a_mlo"] and rows[1][3:] == ["1", "0"]
    maps = np.load(out_dir / "maps" / "a_cc.npz")
    np.testing.assert_allclose([float(rows[1][1]), float(rows[1][2])], maps["y_global"], rtol=1e-7)
    assert maps["saliency_map"].shape == (2, 64, 32) and int(maps["saliency_map_stride"]) == 4
    assert maps["x_layer1"].shape == maps["saliency_map_global"].shape == (2, 16, 8)
    assert maps["raw_local_CAM"].shape == (1, 2, 16, 16) and maps["patch_locations"].dtype == np.int64
    assert maps["y_cam_logits"].shape == (4, 2)
    # The placement on the original image, as GMIC's maps record it (explain/localize/ reads it).
    assert str(maps["view"]) == "L-CC" and str(maps["horizontal_flip"]) == "NO"
    assert maps["window_location"].tolist() == [30, 230, 20, 120]
    assert maps["original_shape"].tolist() == [300, 250] and maps["cropped_shape"].tolist() == [200, 100]
    assert maps["window_borders"].tolist() == [0, 256, 0, 128] and maps["window_padding"].tolist() == [28, 28, 28]
    older = np.load(out_dir / "maps" / "a_mlo.npz")
    assert str(older["view"]) == "L-MLO"
    assert "window_location" not in older.files and "original_shape" not in older.files
    assert (out_dir / "visualization" / "a_mlo.png").stat().st_size > 0


def test_skipping_the_local_branch_leaves_the_prediction_unchanged(small_model, small_run):
    x, out = small_run
    with torch.no_grad():
        fast = small_model(x, with_local=False)
    assert torch.equal(fast.y_global, out.y_global)
    assert torch.equal(fast.patch_locations, out.patch_locations)
    assert fast.y_local is None and fast.raw_local_cam is None and fast.patches is None


def test_predictions_only_run_skips_the_local_branch_with_identical_numbers(tmp_path, small_model):
    torch.save(small_model.state_dict(), tmp_path / "model_joint.ckpt")
    predictor = build_glam_predictor(tmp_path / "model_joint.ckpt", device="cpu", config=SMALL)
    image = np.random.default_rng(3).integers(0, 4000, (200, 100)).astype(np.uint16)
    write_png(tmp_path / "images" / "x.png", image)
    exam = Exam(images={"L-CC": ["x"], "R-CC": [], "L-MLO": [], "R-MLO": []},
                image_metadata={"best_center": {"L-CC": [(100, 40)], "R-CC": [], "L-MLO": [], "R-MLO": []}})
    quick = predict_images(predictor, [exam], tmp_path / "images", tmp_path / "quick", PredictOptions(progress=False))
    assert predictor.with_local is False
    full = predict_images(predictor, [exam], tmp_path / "images", tmp_path / "full",
                          PredictOptions(progress=False, save_maps=True))
    assert predictor.with_local is True
    assert quick.rows == full.rows
