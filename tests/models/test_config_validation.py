"""Issue 16.3: architecture settings from files (GMIC sidecars) are checked when the weights load, with one
message naming the field and its allowed range; state dicts with keys that are not names are named as such."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from clirun import assert_clean_error, run_cli

from mammoscreen.models.config_checks import ConfigError
from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
from mammoscreen.models.gmic.predictor import load_gmic
from mammoscreen.models.nyu_glam.modeling import GLAMConfig
from mammoscreen.models.weights import WeightsError
from mammoscreen.train.checkpoint import save_gmic_weights

MICRO = GMICConfig(input_size=(256, 160), percent_t=0.1, num_patches=2, patch_size=(32, 32), global_channels=4,
                   global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 2, 2, 1), local_channels=4,
                   local_blocks=(1, 1, 1, 1), attention_dim=8)

BAD_FIELDS = [
    ("input_size", [100000, 100000], "input_size must hold whole numbers from 16 to 16384"),
    ("input_size", [256], "input_size must be a list of 2 whole numbers"),
    ("num_patches", -3, "num_patches must be a whole number from 1 to 64, got -3"),
    ("num_patches", 2.5, "num_patches must be a whole number"),
    ("percent_t", 5, r"percent_t must be a fraction in \(0, 1\], got 5"),
    ("percent_t", 0, r"percent_t must be a fraction in \(0, 1\], got 0"),
    ("patch_size", [512, 512], r"patch_size \(512, 512\) must fit inside input_size \(256, 160\)"),
    ("patch_size", [16, 16], r"patch_size \(16, 16\) covers 0x0 cells of the 8x5 saliency map"),
    ("global_strides", [1, 2], "global_strides must be a list of 5 whole numbers"),
    ("attention_dim", True, "attention_dim must be a whole number"),
    ("colour", "blue", "unknown GMIC config field"),
]


@pytest.fixture()
def trained(tmp_path):
    torch.manual_seed(0)
    return save_gmic_weights(GMIC(MICRO), tmp_path / "best_model.p")


@pytest.mark.parametrize("field, value, message", BAD_FIELDS)
def test_a_sidecar_out_of_range_is_refused_when_the_weights_load(trained, field, value, message):
    sidecar = trained.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["gmic_config"][field] = value
    sidecar.write_text(json.dumps(data))
    with pytest.raises(WeightsError, match=f"{sidecar}: gmic_config: {message}"):
        load_gmic(trained)


def test_a_valid_sidecar_loads_and_malformed_ones_are_named(trained):
    assert load_gmic(trained).config == MICRO
    sidecar = trained.with_suffix(".json")
    sidecar.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(WeightsError, match="nested 5000 levels deep"):
        load_gmic(trained)
    sidecar.write_text(json.dumps({"gmic_config": [1, 2]}))
    with pytest.raises(WeightsError, match="not a GMIC config sidecar"):
        load_gmic(trained)


def test_configs_are_checked_wherever_they_are_made():
    with pytest.raises(ConfigError, match="percent_t"):
        MICRO.with_percent_t(1.5)
    with pytest.raises(ConfigError, match="num_crops"):
        GLAMConfig(num_crops=0)
    with pytest.raises(ConfigError, match="level_weights"):
        GLAMConfig(level_weights=(0.2, float("nan"), 0.2))
    with pytest.raises(ConfigError, match="unknown GLAM config field"):
        GLAMConfig.from_dict({"bogus": 1})


def test_a_state_dict_keyed_by_numbers_is_named_as_such(tmp_path):
    path = tmp_path / "numbers.p"
    torch.save({i: v for i, v in enumerate(GMIC(MICRO).state_dict().values())}, path)
    with pytest.raises(WeightsError, match="keys are not strings .e.g. 0, a int"):
        load_gmic(path, config=MICRO)


def test_non_finite_weights_are_refused_with_the_parameter_named(tmp_path):
    state = GMIC(MICRO).state_dict()
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    torch.save(state, tmp_path / "nan.p")
    with pytest.raises(WeightsError, match=rf"non-finite values \(NaN or infinity\) in 1 parameter\(s\): {key} "):
        load_gmic(tmp_path / "nan.p", config=MICRO)


@pytest.mark.slow
def test_the_cli_names_the_field(trained, tmp_path):
    sidecar = trained.with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["gmic_config"]["input_size"] = [100000, 100000]
    sidecar.write_text(json.dumps(data))
    exams = [{"horizontal_flip": "NO", "L-CC": ["a"], "R-CC": [], "L-MLO": [], "R-MLO": [],
              "best_center": {"L-CC": [(10, 10)]}}]
    (tmp_path / "exams.pkl").write_bytes(pickle.dumps(exams))
    (tmp_path / "images").mkdir()
    result = run_cli(["predict", "--model", "gmic", "--weights", trained, "--images", tmp_path / "images",
                      "--exam-list", tmp_path / "exams.pkl", "--output-dir", tmp_path / "out", "--quiet"])
    assert_clean_error(result, "predict", mentions=[str(sidecar), "input_size", "16 to 16384"])


def test_patches_must_cover_a_saliency_cell_and_the_smallest_that_does_runs():
    """Patches propose on the saliency grid (MICRO's: 8x5 for 256x160): one under half a cell rounds to an empty
    window, which every forward would fail on; one cell is enough."""
    with pytest.raises(ConfigError, match=r"patch_size \(16, 32\) covers 0x1 cells"):
        GMICConfig(**{**MICRO.to_dict(), "patch_size": (16, 32)})
    smallest = GMICConfig(**{**MICRO.to_dict(), "patch_size": (24, 32)})  # 0.75 and 1 cell: rounded to 1x1
    output = GMIC(smallest).eval()(torch.zeros(1, 1, 256, 160))
    assert output.patches.shape[-2:] == (24, 32) and torch.isfinite(output.y_fusion).all()
