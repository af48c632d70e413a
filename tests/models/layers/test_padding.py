"""TensorFlow "SAME" padding: one definition for the DenseNet patch classifier and the Keras interpreter."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mammoscreen.interop import keras_graph
from mammoscreen.models.layers import densenet
from mammoscreen.models.layers.padding import pad_same, same_padding


@pytest.mark.parametrize("size, kernel, stride, expected", [
    (256, 7, 2, (2, 3)),  # stem convolution of a patch: torchvision would pad (3, 3)
    (128, 3, 2, (0, 1)),  # stem max-pool: torchvision would pad (1, 1)
    (64, 3, 1, (1, 1)),
    (64, 1, 1, (0, 0)),
    (255, 7, 2, (3, 3)),  # odd size: k - size % s = 6
    (9, 3, 4, (1, 1)),    # 9 % 4 = 1 -> 2
])
def test_same_padding_follows_tensorflow(size, kernel, stride, expected):
    assert same_padding(size, kernel, stride) == expected


def test_same_padding_is_tensorflows_rule():
    assert same_padding(36, 1, 2) == (0, 0)  # 1x1 stride 2 on an even size: no padding
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(8, 3, 2) == (0, 1)  # odd total: the extra goes after (bottom/right)
    assert same_padding(10, 3, 1) == (1, 1)
    assert same_padding(9, 4, 1) == (1, 2)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_same_padding_keeps_ceil_size_over_stride_and_puts_the_odd_extra_after(dilation):
    for size in range(1, 40):
        for kernel in range(1, 8):
            for stride in range(1, 5):
                before, after = same_padding(size, kernel, stride, dilation)
                assert 0 <= before <= after <= before + 1
                span = (kernel - 1) * dilation + 1
                out = (size + before + after - span) // stride + 1 if size + before + after >= span else 0
                assert out == math.ceil(size / stride), (size, kernel, stride, dilation)


def test_pad_same_matches_a_convolution_with_the_padding_written_out():
    torch.manual_seed(0)
    x, weight = torch.randn(1, 2, 9, 8), torch.randn(3, 2, 3, 3)
    padded = pad_same(x, (3, 3), (2, 2))
    # rows: 9 -> 5 outputs needs 2 (1 before, 1 after); cols: 8 -> 4 outputs needs 1, which goes after
    expected = F.conv2d(F.pad(x, (0, 1, 1, 1)), weight, stride=2)  # (left, right, top, bottom) by hand
    assert torch.equal(F.conv2d(padded, weight, stride=2), expected)
    assert pad_same(x, (1, 1), (1, 1)) is x
    assert pad_same(x, (3, 3), (1, 1), value=-math.inf)[0, 0, 0, 0] == -math.inf


def test_the_densenet_and_the_keras_interpreter_use_this_one_definition():
    assert densenet.same_padding is same_padding and keras_graph.same_padding is same_padding
