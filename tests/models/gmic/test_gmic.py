"""GMIC building blocks on small synthetic inputs."""

from __future__ import annotations

import io
import warnings

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
