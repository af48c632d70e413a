"""Weights that are not numbers (NaN, infinity, float64 values beyond float32) are refused when loaded."""

from __future__ import annotations

import pytest
import torch
from stageutils import demo_checkpoint

from mammoscreen.models.gmic_demo import build_gmic_demo_predictor
from mammoscreen.models.weights import WeightsError


def _first_conv(state):
    return next(k for k, v in state.items() if v.ndim == 4)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_checkpoint_with_non_finite_weights_is_refused_naming_the_parameter(tmp_path, value):
    def poison(state):
        state[_first_conv(state)].view(-1)[:3] = value

    path = demo_checkpoint(tmp_path, "poisoned", poison)
    key = _first_conv(torch.load(path, weights_only=True))
    with pytest.raises(WeightsError) as error:
        build_gmic_demo_predictor(path, device="cpu")
    message = str(error.value)
    assert str(path) in message and f"{key} (3 of" in message and "non-finite" in message


def test_float64_weights_that_overflow_float32_are_refused(tmp_path):
    def overflow(state):
        key = _first_conv(state)
        state[key] = state[key].double()
        state[key].view(-1)[0] = 1e300  # finite in the file, infinite in the model

    with pytest.raises(WeightsError, match="non-finite values"):
        build_gmic_demo_predictor(demo_checkpoint(tmp_path, "overflow", overflow), device="cpu")
