"""GLAM: global-local activation maps (Liu et al., MIDL 2021).

"Weakly-supervised high-resolution segmentation of mammography images for breast cancer diagnosis".
Given a 2944x1920 mammogram window the model

1. runs the GMIC global network (ResNet-22 v2) over the whole image and reads saliency maps out of
   three of its levels with 1x1 convolutions: the 64-channel features (184x120), the 128-channel
   features (92x60) and the final 256-channel features (46x30, after the last BN-ReLU). The coarser
   two are upsampled (nearest) to 184x120 before their sigmoid;
2. aggregates each of the three maps by the mean of its top 3% values; the mean of the three is the
   image-level prediction ``y_global`` - the prediction GLAM reports;
3. combines the maps into one global saliency map (0.2, 0.6, 0.2 weights) and greedily picks the
   512x512 region where it is largest (the same greedy search as GMIC);
4. segments that region at full resolution with a ResNet-34 whose residual stages all have stride 1
   (a 128x128 local map) - the local branch's prediction ``y_local`` is computed but not reported;
5. pastes the local map into an image-sized map and averages it with the upsampled global map: the
   high-resolution saliency map.

Parameter names follow the official checkpoints (``global_network.downsampling_branch``,
``global_network.postprocess_module.gn_conv_*``, ``detection_network.dn_resnet``,
``detection_network.gn_conv_last``), so ``model_joint.ckpt`` and ``model_sep.ckpt`` load unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config_checks import (
    ConfigError,
    check_fraction,
    check_global_local_networks,
    check_input_size,
    check_region_crops,
    config_from_dict,
)
from ..layers.resnet import ResNetV1, ResNetV2
from ..layers.roi_patches import (
    crop_patches,
    retrieve_roi_locations,
    saliency_to_input_coordinates,
    top_t_percent_pooling,
)

UNUSED_CHECKPOINT_KEYS = ("global_network.postprocess_module.combine.weight",)
"""Parameters the official checkpoints carry but the official forward pass never uses."""


@dataclass(frozen=True)
class GLAMConfig:
    """Architecture and inference settings of a GLAM model; the defaults are the published ones."""

    input_size: tuple[int, int] = (2944, 1920)
    percent_k: float = 0.03  # top-k% pooling of the global saliency maps
    local_percent_k: float = 0.3  # top-k% pooling of the local map (y_local)
    num_crops: int = 1
    crop_size: tuple[int, int] = (512, 512)
    num_classes: int = 2
    global_channels: int = 16
    global_blocks: tuple[int, ...] = (2, 2, 2, 2, 2)
    global_strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    local_channels: int = 64
    local_blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-34
    # Weights of the (finest, middle, coarsest) saliency levels in the combined global map.
    level_weights: tuple[float, float, float] = (0.2, 0.6, 0.2)

    def __post_init__(self) -> None:
        check_input_size(self.input_size)
        check_fraction(self.percent_k, "percent_k")
        check_fraction(self.local_percent_k, "local_percent_k")
        check_region_crops(self.num_crops, self.crop_size, self.input_size, "num_crops", "crop_size")
        check_global_local_networks(self)
        weights = self.level_weights
        if not isinstance(weights, (tuple, list)) or len(weights) != 3 or not all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and 0 <= w < float("inf") for w in weights):
            raise ConfigError(f"level_weights must be 3 non-negative finite numbers, got {weights!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GLAMConfig":
        """A config from plain data (a sidecar): unknown fields and out-of-range values raise ConfigError."""
        return config_from_dict(cls, data, "GLAM")


class GLAMOutput(NamedTuple):
    """Everything a GLAM forward pass produces, batch first. Maps are (N, classes, h, w).

    Without the local branch (``forward(x, with_local=False)``) ``y_local``, ``patches`` and
    ``raw_local_cam`` are None; the prediction ``y_global`` is the same.
    """

    y_global: torch.Tensor  # (N, 2) the prediction [benign, malignant]
    y_local: torch.Tensor | None  # (N, 2) local-branch prediction (not reported by the official code)
    level_maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # x_layer1..3, sigmoid maps at the finest scale
    downsampled_map: torch.Tensor  # mean of the three level maps
    saliency_map_global: torch.Tensor  # weighted combination used to pick the region
    y_cam_logits: torch.Tensor  # (4, N, 2) top-k% means of x_layer1, x_layer2, x_layer3, downsampled_map
    small_x_locations: torch.Tensor  # (N, K, 2) int64 upper-left (row, col) of each crop on the map grid
    patch_locations: torch.Tensor  # (N, K, 2) int64 upper-left (row, col) of each crop in input pixels
    patches: torch.Tensor | None  # (N, K, crop_h, crop_w) the crops (standardised input values)
    raw_local_cam: torch.Tensor | None  # (N, K, 2, local_h, local_w) sigmoid local maps


class MultiLevelSaliencyHead(nn.Module):
    """1x1 convolutions from three levels of the global network to per-class saliency maps.

    ``gn_conv_1`` reads the finest of the three levels, ``gn_conv_2`` the middle one and ``gn_conv_last``
    the final features; the coarser logits are upsampled (nearest) to the finest grid before the sigmoid.
    """

    def __init__(self, level_channels: tuple[int, int, int], num_classes: int):
        super().__init__()
        fine, middle, last = level_channels
        self.gn_conv_1 = nn.Conv2d(fine, num_classes, kernel_size=1, bias=False)
        self.gn_conv_2 = nn.Conv2d(middle, num_classes, kernel_size=1, bias=False)
        self.gn_conv_last = nn.Conv2d(last, num_classes, kernel_size=1, bias=False)

    def forward(self, fine: torch.Tensor, middle: torch.Tensor,
                last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = fine.shape[2:]
        x_layer1 = torch.sigmoid(self.gn_conv_1(fine))
        x_layer2 = torch.sigmoid(F.interpolate(self.gn_conv_2(middle), size=size))
        x_layer3 = torch.sigmoid(F.interpolate(self.gn_conv_last(last), size=size))
        return x_layer1, x_layer2, x_layer3


class GlobalNetwork(nn.Module):
    """ResNet-22 v2 over the whole image plus the multi-level saliency head."""

    def __init__(self, config: GLAMConfig):
        super().__init__()
        self.downsampling_branch = ResNetV2(in_channels=1, channels=config.global_channels,
                                            blocks_per_stage=config.global_blocks, stage_strides=config.global_strides)
        n = len(config.global_blocks)
        channels = tuple(config.global_channels * 2 ** i for i in (n - 3, n - 2, n - 1))
        self.postprocess_module = MultiLevelSaliencyHead(channels, config.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        net = self.downsampling_branch
        stages = net.forward_stages(x)
        last = net.relu(net.final_bn(stages[-1]))
        return self.postprocess_module(stages[-3], stages[-2], last)


class DetectionNetwork(nn.Module):
    """The local network: a ResNet-34 trunk with stride-1 residual stages and a 1x1 saliency convolution."""

    def __init__(self, config: GLAMConfig):
        super().__init__()
        # All residual stages keep the resolution, so a 512x512 crop gives a 128x128 map.
        self.dn_resnet = ResNetV1(config.local_channels, config.local_blocks, in_channels=3,
                                  layer_strides=[1] * len(config.local_blocks))
        self.gn_conv_last = nn.Conv2d(self.dn_resnet.out_channels, config.num_classes, kernel_size=1, bias=False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """Sigmoid local maps (M, classes, h, w) of single-channel crops (M, 1, H, W)."""
        return torch.sigmoid(self.gn_conv_last(self.dn_resnet(crops.expand(-1, 3, -1, -1))))


def top_k_pooling_over_crops(local_cams: torch.Tensor, percent_k: float) -> torch.Tensor:
    """Mean of the largest k% values over all crops of an image: (N, K, C, h, w) -> (N, C)."""
    n, k, c, h, w = local_cams.shape
    flat = local_cams.permute(0, 2, 1, 3, 4).reshape(n, c, -1)
    top = max(1, int(round(h * w * k * percent_k)))
    return flat.topk(top, dim=2)[0].mean(dim=2)


def paste_local_maps(local_cams: torch.Tensor, patch_locations: torch.Tensor, input_size: tuple[int, int],
                     crop_size: tuple[int, int]) -> torch.Tensor:
    """An input-sized map that is zero except for each crop's local map (nearest-upsampled to the crop size).

    Crops are pasted in order, so a later crop overwrites an earlier one where they overlap.
    """
    n, k, c = local_cams.shape[:3]
    height, width = input_size
    out = local_cams.new_zeros((n, c, height, width))
    locations = patch_locations.tolist()
    for i in range(n):
        for j in range(k):
            row, col = int(locations[i][j][0]), int(locations[i][j][1])
            resized = F.interpolate(local_cams[i, j:j + 1], size=tuple(crop_size))[0]
            rows, cols = min(crop_size[0], height - row), min(crop_size[1], width - col)
            out[i, :, row:row + rows, col:col + cols] = resized[:, :rows, :cols]
    return out


def high_resolution_saliency(saliency_map_global: torch.Tensor, raw_local_cam: torch.Tensor,
                             patch_locations: torch.Tensor, input_size: tuple[int, int], crop_size: tuple[int, int],
                             stride: int = 1) -> torch.Tensor:
    """GLAM's final saliency map: (local map pasted at the crop + global map upsampled) / 2.

    The full map has the input's size; ``stride`` > 1 returns every stride-th pixel of it. With the
    published configuration stride 4 loses nothing: the global map is constant on 16x16 blocks and the
    local map on 4x4 blocks starting at multiples of 16.
    """
    local = paste_local_maps(raw_local_cam, patch_locations, input_size, crop_size)
    final = (local + F.interpolate(saliency_map_global, size=tuple(input_size))) / 2
    return final[:, :, ::stride, ::stride].contiguous() if stride > 1 else final


class GLAM(nn.Module):
    """The GLAM model. ``forward`` takes standardised windows (N, 1, H, W) and returns :class:`GLAMOutput`."""

    def __init__(self, config: GLAMConfig = GLAMConfig()):
        super().__init__()
        self.config = config
        self.global_network = GlobalNetwork(config)
        self.detection_network = DetectionNetwork(config)

    def forward(self, x: torch.Tensor, with_local: bool = True) -> GLAMOutput:
        """Run the model; ``with_local=False`` skips the local branch (about 95% of the FLOPs), which
        only the local and high-resolution maps need: the reported prediction does not depend on it."""
        cfg = self.config
        input_size = (x.shape[2], x.shape[3])
        x_layer1, x_layer2, x_layer3 = self.global_network(x)
        downsampled_map = (x_layer1 + x_layer2 + x_layer3) / 3
        w1, w2, w3 = cfg.level_weights
        saliency_map_global = w3 * x_layer3 + w2 * x_layer2 + w1 * x_layer1

        y_cam_logits = torch.stack([top_t_percent_pooling(m, cfg.percent_k)
                                    for m in (x_layer1, x_layer2, x_layer3, downsampled_map)])
        y_global = (y_cam_logits[0] + y_cam_logits[1] + y_cam_logits[2]) / 3

        with torch.no_grad():
            small_x_locations = retrieve_roi_locations(saliency_map_global.detach(), input_size, cfg.crop_size,
                                                       cfg.num_crops)
        patch_locations = saliency_to_input_coordinates(small_x_locations, saliency_map_global.shape[2:], input_size)
        if not with_local:
            return GLAMOutput(y_global, None, (x_layer1, x_layer2, x_layer3), downsampled_map, saliency_map_global,
                              y_cam_logits, small_x_locations.to(x.device), patch_locations.to(x.device), None, None)
        patches = crop_patches(x, patch_locations, cfg.crop_size)

        n, k = patch_locations.shape[:2]
        local = self.detection_network(patches.view(n * k, 1, *cfg.crop_size))
        raw_local_cam = local.view(n, k, *local.shape[1:])
        y_local = top_k_pooling_over_crops(raw_local_cam, cfg.local_percent_k)
        return GLAMOutput(y_global, y_local, (x_layer1, x_layer2, x_layer3), downsampled_map, saliency_map_global,
                          y_cam_logits, small_x_locations.to(x.device), patch_locations.to(x.device), patches,
                          raw_local_cam)


__all__ = ["GLAM", "GLAMConfig", "GLAMOutput", "UNUSED_CHECKPOINT_KEYS", "high_resolution_saliency",
           "paste_local_maps", "top_k_pooling_over_crops"]
