"""TensorFlow's "SAME" padding, for networks whose weights were trained in TensorFlow or Keras.

The total padding of an axis of length ``n`` is what makes the output ``ceil(n / stride)`` long:
``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)`` (``max(k - s, 0)`` when ``n % s == 0``, else
``max(k - n % s, 0)``, for dilation 1), with the smaller half before and the odd extra after (PyTorch's
symmetric ``padding=`` cannot express that).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis in TensorFlow's "SAME" mode: the odd extra goes after."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def pad_same(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int] = (1, 1), value: float = 0.0) -> torch.Tensor:
    """``x`` (N, C, H, W) zero-padded (or ``value``-padded) for a "SAME" convolution or pooling window."""
    top, bottom = same_padding(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[3], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)
