"""DenseNet-121 — the patch classifier behind the DMV-CNN heatmaps — and a fast inference form of it.

:class:`DenseNet` has the torchvision parameter layout (``features.conv0``, ``features.denseblock1.
denselayer1.norm1``, …, ``features.norm5``, ``classifier``), so the official ``sample_patch_model.p`` (a
plain state dict) loads unchanged. Like the official patch classifier it pads every convolution and
max-pool the way TensorFlow's ``"SAME"`` mode does (the weights were trained in TensorFlow): the total
padding of an axis of length ``n`` is ``max(k - s, 0)`` if ``n % s == 0`` else ``max(k - n % s, 0)``,
with the smaller half before. For a 256x256 patch that is (2, 3) around the 7x7 stem convolution and
(0, 1) around the stem max-pool, instead of torchvision's symmetric padding.

:class:`FusedDenseNet` computes the same function faster on a CPU (see its docstring); it is built from a
loaded :class:`DenseNet` with :func:`fuse_densenet`.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .padding import pad_same, same_padding


class SamePadConv2d(nn.Conv2d):
    """A convolution that zero-pads its input like TensorFlow's "SAME" mode (``padding`` is ignored)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(pad_same(x, self.kernel_size, self.stride))


class SamePadMaxPool2d(nn.MaxPool2d):
    """A max-pool that zero-pads its input like TensorFlow's "SAME" mode (zeros, as the official code)."""

    def __init__(self, kernel_size: int, stride: int):
        super().__init__(kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        return super().forward(pad_same(x, (k, k), (s, s)))


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (bottleneck) then BN-ReLU-3x3 conv, producing ``growth_rate`` new channels."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int):
        super().__init__()
        hidden = bottleneck_width * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = SamePadConv2d(in_channels, hidden, kernel_size=1)
        self.norm2 = nn.BatchNorm2d(hidden)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = SamePadConv2d(hidden, growth_rate, kernel_size=3)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(list(features), 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; each sees the concatenation of the block input and all earlier outputs."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bottleneck_width: int):
        super().__init__()
        for i in range(num_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv halving the channels, then 2x2 average pooling (unpadded, as in the official model)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict([
            ("norm", nn.BatchNorm2d(in_channels)),
            ("relu", nn.ReLU(inplace=True)),
            ("conv", SamePadConv2d(in_channels, out_channels, kernel_size=1)),
            ("pool", nn.AvgPool2d(kernel_size=2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """DenseNet-BC (Huang et al. 2017) with TensorFlow "SAME" padding, torchvision parameter names.

    Parameters
    ----------
    blocks : dense layers per block; (6, 12, 24, 16) is DenseNet-121.
    growth_rate, init_channels, bottleneck_width : k, the stem's output channels and the bottleneck factor.
    num_classes, in_channels : classifier outputs and input channels.
    """

    def __init__(self, blocks: Sequence[int] = (6, 12, 24, 16), growth_rate: int = 32, init_channels: int = 64,
                 bottleneck_width: int = 4, num_classes: int = 4, in_channels: int = 3):
        super().__init__()
        self.blocks = tuple(blocks)
        self.growth_rate = growth_rate
        layers: OrderedDict[str, nn.Module] = OrderedDict([
            ("conv0", SamePadConv2d(in_channels, init_channels, kernel_size=7, stride=2)),
            ("norm0", nn.BatchNorm2d(init_channels)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", SamePadMaxPool2d(kernel_size=3, stride=2)),
        ])
        channels = init_channels
        for i, num_layers in enumerate(self.blocks):
            layers[f"denseblock{i + 1}"] = DenseBlock(num_layers, channels, growth_rate, bottleneck_width)
            channels += num_layers * growth_rate
            if i < len(self.blocks) - 1:
                layers[f"transition{i + 1}"] = Transition(channels, channels // 2)
                channels //= 2
        layers["norm5"] = nn.BatchNorm2d(channels)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for a batch of patches (N, C, H, W)."""
        h = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def densenet121(num_classes: int = 4, in_channels: int = 3) -> DenseNet:
    """DenseNet-121: blocks (6, 12, 24, 16), growth rate 32, 64 stem channels."""
    return DenseNet((6, 12, 24, 16), 32, 64, 4, num_classes, in_channels)


# ----------------------------------------------------------------------------------------------
# Fast inference
# ----------------------------------------------------------------------------------------------

def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as y = x * scale + shift."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean.detach() * scale


class _BNReLUAsClamp(nn.Module):
    """relu(a * x + b) (eval BatchNorm then ReLU) rewritten as a * clamp(x, low, high) + b'.

    Per channel: a > 0 -> clamp below at -b/a; a < 0 -> clamp above at -b/a; a = 0 -> the constant
    relu(b). The clamp is one pass over the features; the affine part a, b' is folded into the linear
    operation that follows (a 1x1 convolution, an average pool, the classifier).
    """

    def __init__(self, bn: nn.BatchNorm2d):
        super().__init__()
        a, b = _bn_scale_shift(bn)
        threshold = torch.where(a != 0, -b / torch.where(a != 0, a, torch.ones_like(a)), torch.zeros_like(a))
        inf = torch.full_like(a, float("inf"))
        low = torch.where(a > 0, threshold, torch.where(a < 0, -inf, torch.zeros_like(a)))
        high = torch.where(a < 0, threshold, torch.where(a > 0, inf, torch.zeros_like(a)))
        self.register_buffer("low", low.view(1, -1, 1, 1).clone())
        self.register_buffer("high", high.view(1, -1, 1, 1).clone())
        self.scale = a.clone()  # folded into the next operation
        self.offset = torch.where(a == 0, torch.relu(b), b).clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high)


def _fold_into_linear(weight: torch.Tensor, bias: torch.Tensor | None, pre: _BNReLUAsClamp
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear map (weight (out, in, ...)) applied to ``pre.scale * h + pre.offset``, as one map of h."""
    flat = weight.reshape(weight.shape[0], weight.shape[1], -1).sum(-1)  # response to a constant input
    new_bias = flat @ pre.offset + (bias if bias is not None else 0)
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    return weight * pre.scale.view(shape), new_bias


@functools.lru_cache(maxsize=None)
def mkldnn_conv_relu_available() -> bool:
    """Whether oneDNN's convolution with a fused ReLU (an internal op torch.compile uses on CPUs) works here."""
    op = getattr(torch.ops.mkldnn, "_convolution_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    try:
        x = torch.randn(1, 2, 4, 4).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(3, 2, 1, 1), torch.randn(3)
        y = op(x, w, b, [0, 0], [1, 1], [1, 1], 1, "relu", [], "")
        return bool(torch.allclose(y, F.relu(F.conv2d(x, w, b)), atol=1e-5))
    except (RuntimeError, TypeError):
        return False


def conv_relu(x: torch.Tensor, conv: nn.Conv2d, fused: bool = True) -> torch.Tensor:
    """relu(conv(x)); on CPUs (if ``fused``) one oneDNN call with the ReLU applied to the output in place."""
    if fused and x.device.type == "cpu" and mkldnn_conv_relu_available():
        return torch.ops.mkldnn._convolution_pointwise(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride),
                                                       list(conv.dilation), conv.groups, "relu", [], "")
    return conv(x).relu_()


class _FusedLayer(nn.Module):
    def __init__(self, layer: DenseLayer):
        super().__init__()
        self.pre = _BNReLUAsClamp(layer.norm1)
        w1, b1 = _fold_into_linear(layer.conv1.weight.detach(), None, self.pre)
        scale2, shift2 = _bn_scale_shift(layer.norm2)  # norm2 follows conv1: fold it in
        self.conv1 = nn.Conv2d(w1.shape[1], w1.shape[0], 1, bias=True)
        self.conv1.weight.data.copy_(w1 * scale2.view(-1, 1, 1, 1))
        self.conv1.bias.data.copy_(b1 * scale2 + shift2)
        # 3x3, stride 1: "SAME" padding is symmetric (1, 1), so the convolution can pad by itself.
        self.conv2 = nn.Conv2d(layer.conv2.in_channels, layer.conv2.out_channels, 3, padding=1, bias=False)
        self.conv2.weight.data.copy_(layer.conv2.weight.detach())

    def forward(self, x: torch.Tensor, fused_relu: bool = True) -> torch.Tensor:
        return self.conv2(conv_relu(self.pre(x), self.conv1, fused_relu))


class _FusedTransition(nn.Module):
    def __init__(self, transition: Transition):
        super().__init__()
        self.pre = _BNReLUAsClamp(transition.norm)
        weight, bias = _fold_into_linear(transition.conv.weight.detach(), None, self.pre)
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=True)
        self.conv.weight.data.copy_(weight)
        self.conv.bias.data.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A 1x1 convolution and a 2x2 average pool are both linear and commute: pooling first makes the
        # convolution four times cheaper.
        return self.conv(F.avg_pool2d(self.pre(x), 2))


class FusedDenseNet(nn.Module):
    """Inference-only DenseNet computing what :class:`DenseNet` computes, with less work and memory traffic.

    * the input is one grey channel replicated to three (as the heatmap stage feeds it), so the stem
      convolution sums its weights over the input channels and reads one channel; the batch arrives
      already zero-padded for the stem ("SAME" padding (2, 3) of a 256 patch), see :meth:`stem_padding`;
    * BatchNorms that follow a convolution are folded into it; a BatchNorm + ReLU before a linear
      operation becomes a per-channel clamp, its scale and shift folded into that operation;
    * the stem max-pool's "SAME" zero padding (0, 1) equals ``ceil_mode`` pooling, because its input is
      non-negative (after a ReLU);
    * each dense block writes its layers' outputs into one preallocated buffer instead of concatenating
      all earlier features again for every layer (quadratic copying in the reference form);
    * transitions pool before their 1x1 convolution (the two commute);
    * channels-last memory layout, which oneDNN runs fastest on CPUs.

    Results equal the reference form up to float32 rounding (about 1e-6 on probabilities).
    """

    def __init__(self, model: DenseNet, input_size: int = 256):
        super().__init__()
        self.input_size = input_size
        stem = model.features.conv0
        self.stem_stride = stem.stride[0]
        self.stem_kernel = stem.kernel_size[0]
        scale0, shift0 = _bn_scale_shift(model.features.norm0)
        w0 = stem.weight.detach().sum(dim=1, keepdim=True) * scale0.view(-1, 1, 1, 1)
        b0 = shift0
        self.conv0 = nn.Conv2d(1, w0.shape[0], self.stem_kernel, stride=self.stem_stride, bias=True)
        self.conv0.weight.data.copy_(w0)
        self.conv0.bias.data.copy_(b0)
        pool = model.features.pool0
        stem_out = (input_size + sum(self.stem_padding()) - self.stem_kernel) // self.stem_stride + 1
        top, bottom = same_padding(stem_out, pool.kernel_size, pool.stride)
        if top != 0 or bottom > pool.kernel_size // 2:
            raise ValueError(f"input size {input_size}: the stem pooling cannot be expressed with ceil_mode")
        self.pool0 = nn.MaxPool2d(pool.kernel_size, pool.stride, ceil_mode=bottom > 0)
        self.blocks = nn.ModuleList()
        self.transitions = nn.ModuleList()
        self.block_channels: list[tuple[int, int]] = []
        for i in range(len(model.blocks)):
            block = getattr(model.features, f"denseblock{i + 1}")
            layers = [_FusedLayer(layer) for layer in block.values()]
            first = next(iter(block.values()))
            self.block_channels.append((first.norm1.num_features, first.norm1.num_features
                                        + len(layers) * model.growth_rate))
            self.blocks.append(nn.ModuleList(layers))
            if i < len(model.blocks) - 1:
                self.transitions.append(_FusedTransition(getattr(model.features, f"transition{i + 1}")))
        self.pre5 = _BNReLUAsClamp(model.features.norm5)
        weight, bias = _fold_into_linear(model.classifier.weight.detach(), model.classifier.bias.detach(), self.pre5)
        self.classifier = nn.Linear(model.classifier.in_features, model.classifier.out_features)
        self.classifier.weight.data.copy_(weight)
        self.classifier.bias.data.copy_(bias)
        self.growth_rate = model.growth_rate
        self.fused_relu = True  # oneDNN convolution+ReLU on CPUs when available (False: separate ReLU)
        self.eval()

    def stem_padding(self) -> tuple[int, int]:
        """(before, after) zero padding the input batch must carry on each spatial axis."""
        return same_padding(self.input_size, self.stem_kernel, self.stem_stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for (N, 1, H + pad, W + pad) patches already zero-padded by :meth:`stem_padding`."""
        h = self.pool0(conv_relu(x, self.conv0, self.fused_relu))
        for i, layers in enumerate(self.blocks):
            c_in, c_out = self.block_channels[i]
            n, _, height, width = h.shape
            buffer = torch.empty((n, c_out, height, width), dtype=h.dtype, device=h.device,
                                 memory_format=torch.channels_last)
            buffer[:, :c_in] = h
            filled = c_in
            for layer in layers:
                buffer[:, filled:filled + self.growth_rate] = layer(buffer[:, :filled], self.fused_relu)
                filled += self.growth_rate
            h = self.transitions[i](buffer) if i < len(self.transitions) else buffer
        return self.classifier(self.pre5(h).mean(dim=(2, 3)))


def fuse_densenet(model: DenseNet, input_size: int = 256) -> FusedDenseNet:
    """The fast inference form of a loaded :class:`DenseNet` (channels-last, on the model's device)."""
    fused = FusedDenseNet(model.eval(), input_size)
    device = next(model.parameters()).device
    return fused.to(device=device, memory_format=torch.channels_last)
