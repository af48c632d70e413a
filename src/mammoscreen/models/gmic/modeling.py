"""GMIC: the globally-aware multiple instance classifier (Shen et al., Medical Image Analysis 2021).

Given a 2944x1920 mammogram window the model

1. runs a low-capacity global network (ResNet-22 v2) over the whole image and turns its last feature
   map into two saliency maps (benign, malignant) with a 1x1 convolution and a sigmoid;
2. aggregates each map into an image-level prediction ``y_global`` by averaging its top t% values;
3. greedily retrieves K regions of interest where the (min-max normalised, channel-summed) saliency
   is largest, suppressing each chosen region before picking the next;
4. encodes each full-resolution 256x256 patch with a local network (ResNet-18) and combines them
   with gated attention into ``y_local``;
5. fuses the max-pooled global features with the attention-weighted patch features into ``y_fusion``,
   the reported prediction.

Parameter names follow the official checkpoints (``ds_net``, ``left_postprocess_net``, ``dn_resnet``,
``mil_attn_*``, ``classifier_linear``, ``fusion_dnn``), so the released ``sample_model_*.p`` files load
unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config_checks import (
    ConfigError,
    check_fraction,
    check_global_local_networks,
    check_input_size,
    check_int,
    check_region_crops,
    config_from_dict,
)
from ..layers.resnet import ResNetV1, ResNetV2, resnet_v2_output_size
from ..layers.roi_patches import (
    crop_patches,
    retrieve_roi_locations,
    saliency_to_input_coordinates,
    saliency_window,
    top_t_percent_pooling,
)


@dataclass(frozen=True)
class GMICConfig:
    """Architecture and inference settings of a GMIC model.

    The defaults are the published GMIC-ResNet-18. Smaller configurations (fewer channels, a smaller
    input) make a model that trains on a CPU.
    """

    input_size: tuple[int, int] = (2944, 1920)
    percent_t: float = 0.02
    num_patches: int = 6  # K
    patch_size: tuple[int, int] = (256, 256)
    num_classes: int = 2
    global_channels: int = 16
    global_blocks: tuple[int, ...] = (2, 2, 2, 2, 2)
    global_strides: tuple[int, ...] = (1, 2, 2, 2, 2)
    local_channels: int = 64
    local_blocks: tuple[int, ...] = (2, 2, 2, 2)
    attention_dim: int = 128

    def __post_init__(self) -> None:
        # Configs also come from files (a trained model's sidecar): refuse what the network cannot run.
        check_input_size(self.input_size)
        check_fraction(self.percent_t, "percent_t")
        check_region_crops(self.num_patches, self.patch_size, self.input_size, "num_patches", "patch_size")
        check_global_local_networks(self)
        check_int(self.attention_dim, "attention_dim", 1, 8192)
        rows, cols = self.saliency_size
        if rows < 1 or cols < 1:
            raise ConfigError(f"input_size {tuple(self.input_size)} is too small for the global network "
                              f"(saliency map {rows}x{cols})")
        window = saliency_window(self.patch_size, self.input_size, (rows, cols))
        if min(window) < 1:  # every forward would fail proposing its patches
            raise ConfigError(f"patch_size {tuple(self.patch_size)} covers {window[0]}x{window[1]} cells of the "
                              f"{rows}x{cols} saliency map of input_size {tuple(self.input_size)}; it must cover at "
                              "least one: use larger patches")

    @property
    def saliency_size(self) -> tuple[int, int]:
        """(rows, cols) of the saliency maps: (46, 30) for the default input."""
        n = len(self.global_blocks)
        return (resnet_v2_output_size(self.input_size[0], n, self.global_strides),
                resnet_v2_output_size(self.input_size[1], n, self.global_strides))

    @property
    def global_dim(self) -> int:
        return self.global_channels * 2 ** (len(self.global_blocks) - 1)

    @property
    def local_dim(self) -> int:
        return self.local_channels * 2 ** (len(self.local_blocks) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GMICConfig":
        """A config from plain data (a sidecar): unknown fields and out-of-range values raise ConfigError."""
        return config_from_dict(cls, data, "GMIC")

    def with_percent_t(self, percent_t: float) -> "GMICConfig":
        return replace(self, percent_t=percent_t)


class GMICOutput(NamedTuple):
    """Everything a GMIC forward pass produces, batch first."""

    y_fusion: torch.Tensor  # (N, 2) the prediction [benign, malignant]
    y_global: torch.Tensor  # (N, 2)
    y_local: torch.Tensor  # (N, 2)
    saliency_map: torch.Tensor  # (N, 2, h, w)
    patch_locations: torch.Tensor  # (N, K, 2) int64 upper-left (row, col) in the input window
    patch_attention: torch.Tensor  # (N, K)
    patches: torch.Tensor  # (N, K, patch_h, patch_w)


class SaliencyHead(nn.Module):
    """1x1 convolution from the global features to one sigmoid saliency map per class."""

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.gn_conv_last = nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.gn_conv_last(features))


class GMIC(nn.Module):
    """The GMIC model. ``forward`` takes standardised windows (N, 1, H, W) and returns :class:`GMICOutput`."""

    def __init__(self, config: GMICConfig = GMICConfig()):
        super().__init__()
        self.config = config
        # Global network and saliency head.
        self.ds_net = ResNetV2(in_channels=1, channels=config.global_channels, blocks_per_stage=config.global_blocks,
                               stage_strides=config.global_strides)
        self.left_postprocess_net = SaliencyHead(config.global_dim, config.num_classes)
        # Local network.
        self.dn_resnet = ResNetV1(config.local_channels, config.local_blocks, in_channels=3)
        # Gated attention MIL (Ilse et al. 2018) and the local classifier.
        self.mil_attn_V = nn.Linear(config.local_dim, config.attention_dim, bias=False)
        self.mil_attn_U = nn.Linear(config.local_dim, config.attention_dim, bias=False)
        self.mil_attn_w = nn.Linear(config.attention_dim, 1, bias=False)
        self.classifier_linear = nn.Linear(config.local_dim, config.num_classes, bias=False)
        # Fusion of global and local features.
        self.fusion_dnn = nn.Linear(config.global_dim + config.local_dim, config.num_classes)

    def global_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global features (N, C, h, w) and saliency maps (N, classes, h, w)."""
        features = self.ds_net(x)
        return features, self.left_postprocess_net(features)

    def local_forward(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch features (N*K, local_dim) from patches (N*K, 1, h, w)."""
        features = self.dn_resnet(patches.expand(-1, 3, -1, -1))
        return features.mean(dim=2).mean(dim=2)

    def attention(self, h_patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gated attention over the patches: (features z, attention weights, y_local)."""
        n, k, d = h_patches.shape
        flat = h_patches.reshape(n * k, d)
        gated = torch.sigmoid(self.mil_attn_U(flat)) * torch.tanh(self.mil_attn_V(flat))
        attention = F.softmax(self.mil_attn_w(gated).view(n, k), dim=1)
        z = torch.sum(attention.unsqueeze(-1) * h_patches, 1)
        return z, attention, torch.sigmoid(self.classifier_linear(z))

    def forward(self, x: torch.Tensor) -> GMICOutput:
        cfg = self.config
        input_size = (x.shape[2], x.shape[3])
        h_global, saliency = self.global_forward(x)
        y_global = top_t_percent_pooling(saliency, cfg.percent_t)

        with torch.no_grad():
            grid_locations = retrieve_roi_locations(saliency.detach(), input_size, cfg.patch_size, cfg.num_patches)
        locations = saliency_to_input_coordinates(grid_locations, saliency.shape[2:], input_size)
        patches = crop_patches(x, locations, cfg.patch_size)

        n, k = locations.shape[:2]
        h_patches = self.local_forward(patches.view(n * k, 1, *cfg.patch_size)).view(n, k, -1)
        z, attention, y_local = self.attention(h_patches)

        global_vector = h_global.max(dim=2)[0].max(dim=2)[0]
        y_fusion = torch.sigmoid(self.fusion_dnn(torch.cat([global_vector, z], dim=1)))
        return GMICOutput(y_fusion, y_global, y_local, saliency, locations.to(x.device), attention, patches)


__all__ = ["GMIC", "GMICConfig", "GMICOutput"]
