"""Network building blocks shared by the NYU family of models.

* :class:`ResNetV2` with :class:`PreActBasicBlock` — the "ResNet-22" global network of GMIC, GLAM and
  the DMV-CNN (pre-activation residual blocks, a 1x1 projection on the first block of every stage).
* :class:`ResNetV1` with :class:`BasicBlock` — a torchvision-layout ResNet trunk without the classifier
  (ResNet-18 is GMIC's local network, ResNet-34 GLAM's).

Parameter names follow the official checkpoints exactly, so their state dicts load unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBasicBlock(nn.Module):
    """Pre-activation basic residual block (ResNet v2): BN-ReLU-conv, BN-ReLU-conv, plus shortcut.

    When present, the projection shortcut takes the *pre-activated* input, as in the official code.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(x))
        shortcut = self.downsample(out) if self.downsample is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class ResNetV2(nn.Module):
    """Pre-activation ResNet trunk: conv, max-pool, stages of :class:`PreActBasicBlock`, final BN-ReLU.

    Parameters
    ----------
    in_channels : input channels (1 for an image, 3 for image + two heatmaps).
    channels : filters of the first stage; each further stage multiplies them by ``growth_factor``.
    blocks_per_stage, stage_strides : blocks and first-block stride of each stage.
    first_kernel, first_stride, first_padding : the first convolution.
    pool_kernel, pool_stride, pool_padding : the max-pool after it.
    """

    def __init__(self, in_channels: int = 1, channels: int = 16,
                 blocks_per_stage: Sequence[int] = (2, 2, 2, 2, 2), stage_strides: Sequence[int] = (1, 2, 2, 2, 2),
                 first_kernel: int = 7, first_stride: int = 2, first_padding: int = 3,
                 pool_kernel: int = 3, pool_stride: int = 2, pool_padding: int = 0, growth_factor: int = 2):
        super().__init__()
        self.first_conv = nn.Conv2d(in_channels, channels, kernel_size=first_kernel, stride=first_stride,
                                    padding=first_padding, bias=False)
        self.first_pool = nn.MaxPool2d(kernel_size=pool_kernel, stride=pool_stride, padding=pool_padding)
        self.layer_list = nn.ModuleList()
        in_ch, ch = channels, channels
        for num_blocks, stride in zip(blocks_per_stage, stage_strides):
            # The official network projects the shortcut of every stage's first block, even at stride 1.
            downsample = nn.Sequential(nn.Conv2d(in_ch, ch, kernel_size=1, stride=stride, bias=False))
            blocks = [PreActBasicBlock(in_ch, ch, stride, downsample)]
            blocks += [PreActBasicBlock(ch, ch) for _ in range(1, num_blocks)]
            self.layer_list.append(nn.Sequential(*blocks))
            in_ch, ch = ch, ch * growth_factor
        self.out_channels = in_ch
        self.final_bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after each stage (the last one before the final BN-ReLU)."""
        h = self.first_pool(self.first_conv(x))
        features = []
        for stage in self.layer_list:
            h = stage(h)
            features.append(h)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first_pool(self.first_conv(x))
        for stage in self.layer_list:
            h = stage(h)
        return self.relu(self.final_bn(h))


def resnet_v2_output_size(size: int, num_stages: int = 5, strides: Sequence[int] = (1, 2, 2, 2, 2)) -> int:
    """Spatial size of :class:`ResNetV2`'s output along one axis for the default first conv and pool."""
    size = (size + 2 * 3 - 7) // 2 + 1  # 7x7 conv, stride 2, padding 3
    size = (size - 3) // 2 + 1  # 3x3 max-pool, stride 2, no padding
    for stride in strides[:num_stages]:
        size = (size + 2 - 3) // stride + 1
    return size


def resnet_v1_output_size(size: int, num_layers: int = 4, layer_strides: Sequence[int] | None = None) -> int:
    """Spatial size of :class:`ResNetV1`'s output along one axis (1 for a 32-pixel side with the default
    strides: 32 -> 16 -> 8 -> 8 -> 4 -> 2 -> 1)."""
    if layer_strides is None:
        layer_strides = [1] + [2] * (num_layers - 1)
    size = (size + 2 * 3 - 7) // 2 + 1  # 7x7 conv, stride 2, padding 3
    size = (size + 2 * 1 - 3) // 2 + 1  # 3x3 max-pool, stride 2, padding 1
    for stride in layer_strides[:num_layers]:
        size = (size + 2 - 3) // stride + 1  # the first block's 3x3 conv (and 1x1 shortcut) of each layer
    return size


class BasicBlock(nn.Module):
    """Post-activation basic residual block (ResNet v1), torchvision layout."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class ResNetV1(nn.Module):
    """torchvision-layout ResNet trunk (conv1, bn1, maxpool, layer1..layerN) without pooling or classifier.

    Parameters
    ----------
    channels : filters of ``layer1``; each further layer doubles them.
    blocks_per_layer : e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-34.
    in_channels : input channels.
    layer_strides : first-block stride of each layer (torchvision: 1, 2, 2, 2).
    """

    def __init__(self, channels: int = 64, blocks_per_layer: Sequence[int] = (2, 2, 2, 2), in_channels: int = 3,
                 layer_strides: Sequence[int] | None = None):
        super().__init__()
        if layer_strides is None:
            layer_strides = [1] + [2] * (len(blocks_per_layer) - 1)
        self.conv1 = nn.Conv2d(in_channels, channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.num_layers = len(blocks_per_layer)
        in_ch = channels
        for i, (num_blocks, stride) in enumerate(zip(blocks_per_layer, layer_strides)):
            ch = channels * 2 ** i
            downsample = None
            if stride != 1 or in_ch != ch:
                downsample = nn.Sequential(nn.Conv2d(in_ch, ch, kernel_size=1, stride=stride, bias=False),
                                           nn.BatchNorm2d(ch))
            blocks = [BasicBlock(in_ch, ch, stride, downsample)] + [BasicBlock(ch, ch) for _ in range(1, num_blocks)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = ch
        self.out_channels = in_ch
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He initialisation of convolutions, unit BatchNorm (the official initialisation)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x
