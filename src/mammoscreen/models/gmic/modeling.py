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

from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ResNetV1, ResNetV2, resnet_v2_output_size
from .config_checks import ConfigError, check_fraction, check_input_size, check_int, check_ints, check_size_within

PERCENT_T = {1: 0.02, 2: 0.03, 3: 0.03, 4: 0.05, 5: 0.10}
"""Top-t% of each official checkpoint ``sample_model_<i>.p``."""


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
        check_int(self.num_patches, "num_patches", 1, 64)
        check_ints(self.patch_size, "patch_size", 1, 4096, length=2)
        check_size_within(self.patch_size, self.input_size, "patch_size", "input_size")
        check_int(self.num_classes, "num_classes", 1, 1000)
        check_int(self.global_channels, "global_channels", 1, 1024)
        check_ints(self.global_blocks, "global_blocks", 1, 64, max_length=8)
        check_ints(self.global_strides, "global_strides", 1, 4, length=len(self.global_blocks))
        check_int(self.local_channels, "local_channels", 1, 1024)
        check_ints(self.local_blocks, "local_blocks", 1, 64, length=4)
        check_int(self.attention_dim, "attention_dim", 1, 8192)
        rows, cols = self.saliency_size
        if rows < 1 or cols < 1:
            raise ConfigError(f"input_size {tuple(self.input_size)} is too small for the global network "
                              f"(saliency map {rows}x{cols})")

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
        if not isinstance(data, dict):
            raise ConfigError(f"a GMIC config must be a mapping of field -> value, got {type(data).__name__}")
        unknown = sorted(set(map(str, data)) - set(cls.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"unknown GMIC config field(s) {', '.join(unknown)}; fields: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        tuples = {k: tuple(v) for k, v in data.items() if isinstance(v, list)}
        return cls(**{**data, **tuples})

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


def top_t_percent_pooling(saliency: torch.Tensor, percent_t: float) -> torch.Tensor:
    """Mean of the largest t% values of each map: (N, C, h, w) -> (N, C)."""
    n, c, h, w = saliency.shape
    k = max(1, int(round(h * w * percent_t)))
    return saliency.reshape(n, c, -1).topk(k, dim=2)[0].mean(dim=2)


def retrieve_roi_locations(saliency: torch.Tensor, input_size: tuple[int, int], patch_size: tuple[int, int],
                           num_patches: int) -> torch.Tensor:
    """Greedy ROI proposal: upper-left (row, col) of each patch on the saliency-map grid, (N, K, 2).

    The maps are min-max normalised per class and summed; at each step the patch-sized window with the
    largest mean is chosen (first in raster order on ties) and zeroed before the next choice.
    """
    n, c, h, w = saliency.shape
    win = (int(np.round(patch_size[0] * h / input_size[0])), int(np.round(patch_size[1] * w / input_size[1])))
    flat = saliency.reshape(n, c, -1)
    low = flat.min(dim=2, keepdim=True)[0].unsqueeze(-1)
    span = flat.max(dim=2, keepdim=True)[0].unsqueeze(-1) - low
    # A constant map has no preferred region; the official code divides by zero here and proposes
    # NaN-driven locations. Treat it as all zeros instead (patches then start at the top-left).
    span = torch.where(span > 0, span, torch.ones_like(span))
    current = ((saliency - low) / span).sum(dim=1, keepdim=True)

    rows = torch.arange(h, device=saliency.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=saliency.device).view(1, 1, 1, w)
    locations = []
    for _ in range(num_patches):
        pooled = F.avg_pool2d(current, win, stride=1)
        pooled_w = pooled.shape[-1]
        index = pooled.reshape(n, -1).argmax(dim=1)
        row, col = index // pooled_w, index % pooled_w
        locations.append(torch.stack([row, col], dim=1))
        inside = ((rows >= row.view(n, 1, 1, 1)) & (rows < (row + win[0]).view(n, 1, 1, 1))
                  & (cols >= col.view(n, 1, 1, 1)) & (cols < (col + win[1]).view(n, 1, 1, 1)))
        current = current * (~inside).to(current.dtype)
    return torch.stack(locations, dim=1)


def saliency_to_input_coordinates(locations: torch.Tensor, saliency_size: tuple[int, int],
                                  input_size: tuple[int, int]) -> torch.Tensor:
    """Scale saliency-grid positions to input pixels: round(index / h * H), computed in float64 like the official code."""
    loc = locations.detach().cpu().numpy().astype(np.float64)
    rows = np.around(loc[..., 0] / saliency_size[0] * input_size[0])
    cols = np.around(loc[..., 1] / saliency_size[1] * input_size[1])
    return torch.from_numpy(np.stack([rows, cols], axis=-1).astype(np.int64))


def crop_patches(images: torch.Tensor, locations: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """Cut (N, K) patches with the given upper-left corners from (N, 1, H, W) images.

    Parts of a patch outside the image are filled with the image's minimum, and the part inside is
    placed at the patch's bottom-right, as the official ``crop_pytorch`` does.
    """
    n, _, height, width = images.shape
    k = locations.shape[1]
    ph, pw = patch_size
    patches = images.new_empty((n, k, ph, pw))
    locs = locations.tolist()
    for i in range(n):
        image = images[i, 0]
        fill = None
        for j in range(k):
            r0, c0 = int(locs[i][j][0]), int(locs[i][j][1])
            r1, c1 = min(max(r0 + ph, 0), height), min(max(c0 + pw, 0), width)
            r0, c0 = min(max(r0, 0), height), min(max(c0, 0), width)
            if r1 - r0 == ph and c1 - c0 == pw:
                patches[i, j] = image[r0:r1, c0:c1]
                continue
            if fill is None:
                fill = image.min()
            patches[i, j] = fill
            patches[i, j, ph - (r1 - r0):, pw - (c1 - c0):] = image[r0:r1, c0:c1]
    return patches


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


__all__ = ["GMIC", "GMICConfig", "GMICOutput", "PERCENT_T"]
