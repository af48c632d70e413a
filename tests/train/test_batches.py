"""What BatchNorm needs of a training batch: the count of values per channel predicted from a config against the
counts the real network's BatchNorm layers receive, PyTorch's refusal of one value, and the epoch's batches."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
from mammoscreen.models.layers.resnet import ResNetV1, resnet_v1_output_size
from mammoscreen.train.batches import (
    batchnorm_values_per_image,
    epoch_batches,
    smallest_batch,
    why_one_image_is_too_few,
)

BASE = GMICConfig(input_size=(128, 96), percent_t=0.1, num_patches=1, patch_size=(32, 32), global_channels=2,
                  global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 2, 2, 1), local_channels=2,
                  local_blocks=(1, 1, 1, 1), attention_dim=2)
CONFIGS = {
    "one 32-pixel patch": BASE,
    "one 24-pixel patch": replace(BASE, patch_size=(24, 24)),
    "one 33-pixel patch": replace(BASE, patch_size=(33, 33)),
    "one 32x64 patch": replace(BASE, patch_size=(32, 64)),
    "two 32-pixel patches": replace(BASE, num_patches=2),
    "one 64-pixel patch": replace(BASE, patch_size=(64, 64)),
    "a 1x1 saliency map": replace(BASE, input_size=(32, 32), num_patches=2),
}


def _batchnorm_counts(model: GMIC, x: torch.Tensor) -> list[int]:
    """Values per channel that each BatchNorm layer receives in a forward of ``x`` (evaluation mode: no
    statistics are updated, and no count is refused)."""
    counts: list[int] = []
    hooks = [m.register_forward_hook(lambda m, inputs, out: counts.append(inputs[0].numel() // inputs[0].shape[1]))
             for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    model.eval()
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return counts


@pytest.mark.parametrize("name", CONFIGS)
def test_the_predicted_count_is_the_fewest_a_batchnorm_layer_receives(name):
    config = CONFIGS[name]
    torch.manual_seed(0)
    model = GMIC(config)
    x = torch.randn(1, 1, *config.input_size)
    counts = _batchnorm_counts(model, x)
    assert len(counts) > 20  # every BatchNorm layer of both networks
    assert batchnorm_values_per_image(config) == min(counts)
    assert _batchnorm_counts(model, torch.cat([x, x])) == [2 * c for c in counts]


@pytest.mark.parametrize("name", CONFIGS)
def test_training_refuses_one_image_exactly_where_predicted(name):
    config = CONFIGS[name]
    model = GMIC(config).train()
    x = torch.randn(2, 1, *config.input_size)
    model(x)  # two images always train
    if smallest_batch(config) == 2:
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            model(x[:1])
    else:
        assert smallest_batch(config) == 1
        model(x[:1])


def test_the_reason_names_the_network_that_ends_in_one_value():
    assert why_one_image_is_too_few(BASE) == ("1 patch of 32x32 pixels, which the local network turns into a 1x1 "
                                              "feature map")
    assert why_one_image_is_too_few(CONFIGS["a 1x1 saliency map"]) == ("the global network ends in a 1x1 saliency "
                                                                       "map")


def test_the_published_configs_train_on_single_images():
    from mammoscreen.train.configs import CONFIGS as NAMED

    assert {name: smallest_batch(config) for name, config in NAMED.items()} == {name: 1 for name in NAMED}
    assert batchnorm_values_per_image(NAMED["official"]) == 6 * 8 * 8  # six 256-pixel patches, 8x8 maps


def test_resnet_v1_output_size_is_the_networks():
    net = ResNetV1(channels=1, blocks_per_layer=(1, 1, 1, 1), in_channels=1).eval()
    for size in (1, 2, 7, 16, 31, 32, 33, 63, 64, 65, 100, 256):
        with torch.no_grad():
            rows = net(torch.zeros(1, 1, size, 40)).shape[2]
        assert resnet_v1_output_size(size) == rows, size


def test_epoch_batches():
    assert epoch_batches([4, 0, 3, 1, 2], 2) == [[4, 0], [3, 1], [2]]
    assert epoch_batches([4, 0, 3, 1, 2], 2, smallest=2) == [[4, 0], [3, 1, 2]]  # the one left joins the last
    assert epoch_batches([4, 0, 3, 1], 2, smallest=2) == [[4, 0], [3, 1]]
    assert epoch_batches([4, 0, 3], 5, smallest=2) == [[4, 0, 3]]
    assert epoch_batches([7], 3, smallest=2) == [[7]]  # nothing to join: the loop refuses such a run up front
    assert epoch_batches([], 3) == []


@given(order=st.permutations(list(range(23))), batch_size=st.integers(1, 30), smallest=st.integers(1, 2))
def test_every_image_once_in_order_and_no_batch_too_small(order, batch_size, smallest):
    batches = epoch_batches(order, batch_size, smallest)
    assert [i for batch in batches for i in batch] == order
    assert all(len(b) == batch_size for b in batches[:-1])
    assert batch_size <= len(batches[-1]) < batch_size + smallest or len(batches[-1]) < batch_size
    if len(batches) > 1:
        assert len(batches[-1]) >= smallest
