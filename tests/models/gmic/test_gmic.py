"""GMIC building blocks on small synthetic inputs."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from mammoscreen.models.gmic.modeling import (
    GMIC,
    GMICConfig,
    crop_patches,
    retrieve_roi_locations,
    saliency_to_input_coordinates,
    top_t_percent_pooling,
)
from mammoscreen.models.gmic.predictor import load_gmic
from mammoscreen.models.weights import UnexpectedKeysWarning, WeightsError, load_state_dict_into

TINY = GMICConfig(input_size=(256, 192), num_patches=3, patch_size=(64, 64), global_channels=4,
                  local_channels=8, attention_dim=16)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = GMIC(TINY).eval()
    # Random BatchNorm statistics so that every branch produces varied values.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def test_official_sizes():
    config = GMICConfig()
    assert config.saliency_size == (46, 30)
    assert (config.global_dim, config.local_dim) == (256, 512)
    model = GMIC(config)
    assert model.fusion_dnn.in_features == 768
    assert sum(p.numel() for p in model.parameters()) > 1e7


def test_forward_outputs_are_consistent(tiny_model):
    x = torch.randn(2, 1, *TINY.input_size)
    with torch.no_grad():
        out = tiny_model(x)
    h, w = TINY.saliency_size
    assert out.saliency_map.shape == (2, 2, h, w)
    assert out.patch_locations.shape == (2, 3, 2) and out.patch_locations.dtype == torch.int64
    assert torch.allclose(out.patch_attention.sum(1), torch.ones(2))
    for y in (out.y_fusion, out.y_global, out.y_local):
        assert y.shape == (2, 2) and ((y >= 0) & (y <= 1)).all()
    # The global prediction is the top-t% mean of the saliency maps.
    assert torch.allclose(out.y_global, top_t_percent_pooling(out.saliency_map, TINY.percent_t))
    # Patches are the input pixels at the reported locations.
    for i in range(2):
        for k in range(3):
            r, c = out.patch_locations[i, k].tolist()
            assert torch.equal(out.patches[i, k], x[i, 0, r:r + 64, c:c + 64])
    # A batch gives the same results as one image at a time.
    with torch.no_grad():
        single = tiny_model(x[1:])
    assert torch.allclose(single.y_fusion[0], out.y_fusion[1], atol=1e-6)
    assert torch.equal(single.patch_locations[0], out.patch_locations[1])


def test_top_t_percent_pooling_is_the_mean_of_the_largest_values():
    sal = torch.rand(1, 2, 10, 10)
    pooled = top_t_percent_pooling(sal, 0.05)
    for c in range(2):
        expected = sal[0, c].flatten().sort(descending=True).values[:5].mean()
        assert torch.isclose(pooled[0, c], expected)


def test_roi_retrieval_picks_peaks_greedily_and_suppresses_them():
    sal = torch.zeros(1, 2, 12, 10)
    sal[0, 1, 2:4, 6:8] = 1.0  # strongest: malignant peak
    sal[0, 0, 8:10, 1:3] = 0.6  # second: benign peak
    sal[0, 0, 0, 0] = 0.0
    locations = retrieve_roi_locations(sal, input_size=(120, 100), patch_size=(20, 20), num_patches=3)
    # patch 20x20 on a 120x100 input = 2x2 cells of the 12x10 map
    assert locations[0, 0].tolist() == [2, 6]
    assert locations[0, 1].tolist() == [8, 1]
    # once both peaks are suppressed the map is flat: first position in raster order
    assert locations[0, 2].tolist() == [0, 0]


def test_constant_saliency_does_not_produce_nan_locations():
    locations = retrieve_roi_locations(torch.full((1, 2, 6, 5), 0.3), (60, 50), (20, 20), 2)
    assert locations[0, 0].tolist() == [0, 0]


def test_grid_positions_scale_to_input_pixels_like_the_official_float64_rounding():
    loc = torch.tensor([[[19, 7], [0, 29]]])
    out = saliency_to_input_coordinates(loc, (46, 30), (2944, 1920))
    assert out.tolist() == [[[1216, 448], [0, 1856]]]


def test_patches_leaving_the_image_are_filled_with_its_minimum_at_the_top_left():
    image = torch.arange(100, dtype=torch.float32).view(1, 1, 10, 10) + 5
    patches = crop_patches(image, torch.tensor([[[7, 8], [0, 0]]]), (4, 4))
    # rows 7..9 and cols 8..9 exist: they go to the bottom-right of the patch
    assert torch.equal(patches[0, 0, 1:, 2:], image[0, 0, 7:10, 8:10])
    assert (patches[0, 0, :1] == 5).all() and (patches[0, 0, :, :2] == 5).all()
    assert torch.equal(patches[0, 1], image[0, 0, :4, :4])


def test_checkpoint_loading_is_strict_about_missing_keys_and_shapes(tmp_path, tiny_model):
    state = dict(tiny_model.state_dict())
    state["shared_rep_filter.weight"] = torch.zeros(2, 4, 1, 1)  # as in the released files
    path = tmp_path / "extra.p"
    torch.save(state, path)
    with pytest.warns(UnexpectedKeysWarning, match="shared_rep_filter.weight"):
        model = load_gmic(path, config=TINY)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()))

    missing = {k: v for k, v in state.items() if not k.startswith("fusion_dnn")}
    with pytest.raises(WeightsError, match=r"2 parameters of GMIC are missing \(fusion_dnn.weight, fusion_dnn.bias\)"):
        load_state_dict_into(GMIC(TINY), missing)
    wrong = dict(state, **{"fusion_dnn.bias": torch.zeros(3)})
    with pytest.raises(WeightsError, match=r"fusion_dnn.bias has shape \(3,\), the model expects \(2,\)"):
        load_state_dict_into(GMIC(TINY), wrong)


def test_legacy_serialisation_loads_without_executing_code(tmp_path, tiny_model):
    # The official files were written by torch 1.1 (pre-zip format).
    path = tmp_path / "legacy.p"
    torch.save(tiny_model.state_dict(), path, _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_gmic(path, config=TINY)
    assert torch.equal(model.fusion_dnn.weight, tiny_model.fusion_dnn.weight)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    buffer = io.BytesIO()
    torch.save({"x": Evil()}, buffer)
    (tmp_path / "evil.p").write_bytes(buffer.getvalue())
    with pytest.raises(WeightsError, match="not a loadable PyTorch checkpoint"):
        load_gmic(tmp_path / "evil.p", config=TINY)


def test_config_round_trips_through_a_dict():
    assert GMICConfig.from_dict(TINY.to_dict()) == TINY
    assert TINY.with_percent_t(0.1).percent_t == 0.1


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_the_forward_pass_equals_the_papers_formulas_computed_in_numpy(tiny_model):
    """Everything after the two ResNets, recomputed in float64 NumPy from the weights (Shen et al. 2021, eqs. 1-7):
    the 1x1 saliency head, top-t% pooling, gated attention (Ilse et al. 2018) over the patch features, the local
    classifier, and the fusion of the max-pooled global features with the attention-weighted patch features."""
    torch.manual_seed(5)
    x = torch.randn(2, 1, *TINY.input_size)
    with torch.no_grad():
        out = tiny_model(x)
        features = tiny_model.ds_net(x).double().numpy()  # (N, C, h, w)
        k = TINY.num_patches
        patches = out.patches.reshape(2 * k, 1, *TINY.patch_size)
        local = tiny_model.dn_resnet(torch.cat([patches] * 3, dim=1)).double().numpy()
    weight = {name: p.detach().double().numpy() for name, p in tiny_model.named_parameters()}
    n, c, h, w = features.shape
    # saliency: sigmoid of a 1x1 convolution without bias
    saliency = _sigmoid(np.einsum("kc,nchw->nkhw", weight["left_postprocess_net.gn_conv_last.weight"][:, :, 0, 0],
                                  features))
    np.testing.assert_allclose(out.saliency_map.numpy(), saliency, atol=1e-6)
    # y_global: mean of the round(t * h * w) largest values of each map
    top = max(1, round(TINY.percent_t * h * w))
    y_global = np.sort(saliency.reshape(n, 2, -1), axis=2)[:, :, -top:].mean(axis=2)
    np.testing.assert_allclose(out.y_global.numpy(), y_global, atol=1e-6)
    # patch features: the local network's spatial mean, the patch given as three identical channels
    h_k = local.mean(axis=(2, 3)).reshape(n, k, -1)
    gate = _sigmoid(h_k @ weight["mil_attn_U.weight"].T) * np.tanh(h_k @ weight["mil_attn_V.weight"].T)
    scores = (gate @ weight["mil_attn_w.weight"].T)[..., 0]  # (N, K)
    alpha = np.exp(scores - scores.max(axis=1, keepdims=True))
    alpha /= alpha.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out.patch_attention.numpy(), alpha, atol=1e-6)
    z = (alpha[..., None] * h_k).sum(axis=1)
    np.testing.assert_allclose(out.y_local.numpy(), _sigmoid(z @ weight["classifier_linear.weight"].T), atol=1e-6)
    g = features.max(axis=(2, 3))
    fused = np.concatenate([g, z], axis=1) @ weight["fusion_dnn.weight"].T + weight["fusion_dnn.bias"]
    np.testing.assert_allclose(out.y_fusion.numpy(), _sigmoid(fused), atol=1e-6)
    # the patches are cut where the retrieval on this saliency map points
    grid = retrieve_roi_locations(torch.from_numpy(saliency).float(), TINY.input_size, TINY.patch_size, k)
    expected = saliency_to_input_coordinates(grid, (h, w), TINY.input_size)
    assert torch.equal(out.patch_locations, expected)


@pytest.mark.parametrize("percent_t, expected_k", [(0.02, 1), (0.03, 2), (0.001, 1), (1.0, 63)])
def test_top_t_percent_takes_the_rounded_count_of_values(percent_t, expected_k):
    # a 7 x 9 map has 63 values: 2 % is 1.26 -> 1, 3 % is 1.89 -> 2, 0.1 % is 0.06 -> at least 1
    values = torch.randperm(126).float().view(1, 2, 7, 9) / 10
    pooled = top_t_percent_pooling(values, percent_t)
    for c in range(2):
        largest = np.sort(values[0, c].flatten().numpy())[::-1][:expected_k]
        assert pooled[0, c].item() == pytest.approx(float(largest.mean()), rel=1e-6)


def _greedy_rois(saliency, win, count):
    """The documented retrieval by brute force: normalise each class map to [0, 1], add them, then `count` times
    take the window of the largest mean (first in raster order) and zero it."""
    maps = saliency.astype(np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    current = ((maps - low) / np.where(span > 0, span, 1)).sum(axis=0)
    found = []
    for _ in range(count):
        rows, cols = current.shape[0] - win[0] + 1, current.shape[1] - win[1] + 1
        means = np.array([[current[r:r + win[0], c:c + win[1]].mean() for c in range(cols)] for r in range(rows)])
        r, c = np.unravel_index(int(np.argmax(means)), means.shape)
        found.append([r, c])
        current[r:r + win[0], c:c + win[1]] = 0
    return found


@pytest.mark.parametrize("seed", range(4))
def test_roi_retrieval_equals_a_brute_force_greedy_search(seed):
    rng = np.random.default_rng(seed)
    # two images of a batch; the classes on different scales and far from zero, so the per-class normalisation
    # matters, and eight patches on an 11 x 9 map, so later choices meet the zeroed windows of earlier ones;
    # the second image's benign map is constant (no preferred region: it adds nothing)
    saliency = np.stack([np.stack([rng.random((11, 9)) * 0.5 + 2, rng.random((11, 9)) * 4 + 5]),
                         np.stack([np.full((11, 9), 0.3), rng.random((11, 9)) + 1])]).astype(np.float32)
    # patch 30 x 20 on a 110 x 80 input over an 11 x 9 map: round(30 * 11 / 110) x round(20 * 9 / 80) = 3 x 2 cells
    got = retrieve_roi_locations(torch.from_numpy(saliency), (110, 80), (30, 20), 8)
    for i in range(2):
        assert got[i].tolist() == _greedy_rois(saliency[i], (3, 2), 8), i


@pytest.mark.parametrize("shape", [(9, 7), (3, 5), (6, 2)])  # larger than the patch, fewer rows, fewer columns
def test_patches_are_cut_like_a_padded_copy_of_the_image(shape):
    rng = np.random.default_rng(2)
    height, width = shape
    images = torch.from_numpy(rng.random((3, 1, height, width)).astype(np.float32))
    # off the top, off the left, off the bottom-right; inside, off the bottom-right, wholly above-left, wholly above
    locations = torch.tensor([[[-2, 5], [3, -4], [6, 4]], [[0, 0], [8, 6], [-5, -5]], [[-5, 2], [-4, 0], [1, 1]]])
    patches = crop_patches(images, locations, (4, 3))
    for i in range(3):
        image = images[i, 0].numpy()
        for j, (r, c) in enumerate(locations[i].tolist()):
            # the part inside the image, placed at the patch's bottom-right; the rest is the image's minimum
            rows = [y for y in range(r, r + 4) if 0 <= y < height]
            cols = [x for x in range(c, c + 3) if 0 <= x < width]
            expected = np.full((4, 3), image.min(), np.float32)
            if rows and cols:
                expected[4 - len(rows):, 3 - len(cols):] = image[np.ix_(rows, cols)]
            assert np.array_equal(patches[i, j].numpy(), expected), (i, j)
