"""DenseNet with TensorFlow "SAME" padding, and its fused inference form, on generated weights and data."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mammoscreen.models.layers.densenet import DenseNet, SamePadConv2d, SamePadMaxPool2d, densenet121, fuse_densenet


def test_same_pad_layers_pad_with_zeros_before_the_operation():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 20, 20)
    conv = SamePadConv2d(3, 4, kernel_size=7, stride=2)
    expected = F.conv2d(F.pad(x, (2, 3, 2, 3)), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    assert conv(x).shape[-2:] == (10, 10)  # "SAME": ceil(20 / 2)
    pool = SamePadMaxPool2d(3, 2)
    negative = -x.abs() - 1  # zero padding (not -inf) wins the max at the padded border, as in the official code
    out = pool(negative)
    assert out.shape[-2:] == (10, 10)
    assert torch.all(out[..., -1, :] == 0) and torch.all(out[..., :, -1] == 0)
    assert torch.all(out[..., :-1, :-1] < 0)


def test_densenet121_has_the_torchvision_parameter_layout():
    model = densenet121(num_classes=4)
    keys = list(model.state_dict())
    assert len(keys) == 727
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["features.conv0.weight"] == (64, 3, 7, 7)
    assert shapes["features.denseblock1.denselayer1.conv1.weight"] == (128, 64, 1, 1)
    assert shapes["features.denseblock4.denselayer16.conv2.weight"] == (32, 128, 3, 3)
    assert shapes["features.transition3.conv.weight"] == (512, 1024, 1, 1)
    assert shapes["features.norm5.weight"] == (1024,)
    assert shapes["classifier.weight"] == (4, 1024)


def randomize_batchnorms(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial eval-mode statistics, including negative and zero scales (the fused form must handle them)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.randn(n, generator=generator)
            m.weight.data[0] = 0.0
            m.bias.data = torch.randn(n, generator=generator) * 0.3
            m.running_mean.data = torch.randn(n, generator=generator) * 0.2
            m.running_var.data = torch.rand(n, generator=generator) + 0.5


@pytest.fixture(scope="module")
def small_densenet():
    generator = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    model = DenseNet(blocks=(2, 3, 2), growth_rate=8, init_channels=16, bottleneck_width=2, num_classes=4)
    randomize_batchnorms(model, generator)
    return model.eval()


@pytest.mark.parametrize("fused_relu", [True, False])
def test_fused_network_computes_the_reference_function(small_densenet, fused_relu):
    torch.manual_seed(2)
    patches = torch.randn(5, 1, 256, 256)
    with torch.inference_mode():
        reference = small_densenet(patches.expand(5, 3, 256, 256))
        fused = fuse_densenet(small_densenet)
        fused.fused_relu = fused_relu
        before, after = fused.stem_padding()
        assert (before, after) == (2, 3)
        padded = F.pad(patches, (before, after, before, after))
        ours = fused(padded)
    assert ours.shape == reference.shape == (5, 4)
    assert torch.allclose(torch.softmax(ours, 1), torch.softmax(reference, 1), atol=2e-6, rtol=0)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4)


def test_fused_network_needs_a_stem_pool_it_can_express(small_densenet):
    with pytest.raises(ValueError, match="ceil_mode"):
        fuse_densenet(small_densenet, input_size=258)  # stem output 129: "SAME" pads the pool (1, 1)
