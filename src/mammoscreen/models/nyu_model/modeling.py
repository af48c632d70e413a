"""The DMV-CNN: deep multi-view CNNs of Wu et al., "Deep Neural Networks Improve Radiologists' Performance
in Breast Cancer Screening" (IEEE TMI 2020).

Both published forms run one ResNet-22 (pre-activation, the global network GMIC and GLAM share) per view
angle — the two CC views share one, the two MLO views the other — and average its last feature map over
space, giving 256 features per view:

* :class:`ViewWiseDMV` (``nyu_model``, "view-wise"): per view angle, the left and right features are
  concatenated, go through a 512->512 layer + ReLU and a head of 4 x 2 log-probabilities, rows
  (left_benign, right_benign, left_malignant, right_malignant), columns (no, yes). The published breast
  prediction is the mean of the CC and MLO heads' "yes" probabilities.
* :class:`ImageWiseDMV` (the four-head "image-wise" checkpoint): one 256->256 layer + head per view.
  ``nyu_model_single`` uses one view's head on one image: its ResNet, its fc1 and the first four outputs
  of its head, read as 2 x 2 log-probabilities (rows benign, malignant).

Parameter names follow the official checkpoints (``{"model": state_dict}``): ``four_view_resnet.cc`` and
``.mlo`` appear again under the aliases ``l_cc``/``r_cc`` and ``l_mlo``/``r_mlo`` (the same modules), so
the released files load with every key accounted for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...data.exams import VIEWS, view_angle
from ..layers.resnet import ResNetV2

LABELS = ("left_benign", "right_benign", "left_malignant", "right_malignant")
"""Rows of the view-wise heads, in the official order (also the breast-level CSV columns)."""

DMV_WINDOWS = {"CC": (2677, 1942), "MLO": (2974, 1748)}
"""Input window (rows, cols) per view angle."""


def dmv_resnet22(in_channels: int = 1) -> ResNetV2:
    """The DMV-CNN's ResNet-22: like GMIC's global network but with an unpadded 7x7 stem convolution."""
    return ResNetV2(in_channels=in_channels, channels=16, blocks_per_stage=(2, 2, 2, 2, 2),
                    stage_strides=(1, 2, 2, 2, 2), first_kernel=7, first_stride=2, first_padding=0,
                    pool_kernel=3, pool_stride=2, pool_padding=0)


def spatial_mean(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C): the average over all positions, computed as the official code does."""
    n, c = features.shape[:2]
    return features.reshape(n, c, -1).mean(-1)


class OutputLayer(nn.Module):
    """A linear layer whose outputs are reshaped to ``shape`` and log-softmaxed over the last axis."""

    def __init__(self, in_features: int, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)
        size = 1
        for s in self.shape:
            size *= s
        self.fc_layer = nn.Linear(in_features, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.fc_layer(x).view(x.shape[0], *self.shape), dim=-1)


class FourViewResNet(nn.Module):
    """One ResNet-22 per view angle; ``l_cc``/``r_cc`` and ``l_mlo``/``r_mlo`` are aliases of ``cc``/``mlo``."""

    ALIASES = {"l_cc": "cc", "r_cc": "cc", "l_mlo": "mlo", "r_mlo": "mlo"}

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.cc = dmv_resnet22(in_channels)
        self.mlo = dmv_resnet22(in_channels)
        # Registered aliases: the official state dicts list the shared weights under these names too.
        self.l_cc = self.r_cc = self.cc
        self.l_mlo = self.r_mlo = self.mlo

    def for_view(self, view: str) -> ResNetV2:
        """The network of a view ('L-CC', ..., or an angle 'CC'/'MLO')."""
        angle = view_angle(view) if "-" in view else view
        if angle == "CC":
            return self.cc
        if angle == "MLO":
            return self.mlo
        raise ValueError(f"unknown view {view!r}")


@dataclass
class ViewWiseOutput:
    """Outputs of :class:`ViewWiseDMV` for a batch of exams."""

    logp_cc: torch.Tensor  # (N, 4, 2) log-probabilities, rows LABELS, columns (no, yes)
    logp_mlo: torch.Tensor
    pooled: dict[str, torch.Tensor]  # view -> (N, 256)
    fc1_cc: torch.Tensor  # (N, 512) before the ReLU
    fc1_mlo: torch.Tensor

    @property
    def prediction(self) -> torch.Tensor:
        """(N, 4) breast probabilities in LABELS order: mean of the CC and MLO heads' 'yes' probabilities."""
        return (self.logp_cc[..., 1].exp() + self.logp_mlo[..., 1].exp()) / 2


class ViewWiseDMV(nn.Module):
    """The view-wise DMV-CNN (official ``SplitBreastModel``) of the ``nyu_model`` checkpoints.

    ``in_channels`` is 1 (image only) or 3 (image, benign heatmap, malignant heatmap).
    """

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.four_view_resnet = FourViewResNet(in_channels)
        self.fc1_cc = nn.Linear(512, 512)
        self.fc1_mlo = nn.Linear(512, 512)
        self.output_layer_cc = OutputLayer(512, (4, 2))
        self.output_layer_mlo = OutputLayer(512, (4, 2))

    def pooled_features(self, x: torch.Tensor, view: str) -> torch.Tensor:
        """(N, 256) spatially averaged ResNet features of one view's windows."""
        return spatial_mean(self.four_view_resnet.for_view(view)(x))

    def heads(self, pooled: dict[str, torch.Tensor]) -> ViewWiseOutput:
        """The two heads from the pooled features of the four views."""
        fc1_cc = self.fc1_cc(torch.cat([pooled["L-CC"], pooled["R-CC"]], dim=1))
        fc1_mlo = self.fc1_mlo(torch.cat([pooled["L-MLO"], pooled["R-MLO"]], dim=1))
        return ViewWiseOutput(self.output_layer_cc(F.relu(fc1_cc)), self.output_layer_mlo(F.relu(fc1_mlo)),
                              dict(pooled), fc1_cc, fc1_mlo)

    def forward(self, views: dict[str, torch.Tensor]) -> ViewWiseOutput:
        """``views`` maps 'L-CC', 'R-CC', 'L-MLO', 'R-MLO' to (N, C, H, W) standardised windows."""
        return self.heads({view: self.pooled_features(views[view], view) for view in VIEWS})


@dataclass
class ImageWiseOutput:
    """Outputs of the single-image model for a batch of images of one view."""

    logp: torch.Tensor  # (N, 2, 2) log-probabilities, rows (benign, malignant), columns (no, yes)
    pooled: torch.Tensor  # (N, 256)
    fc1: torch.Tensor  # (N, 256) before the ReLU

    @property
    def probabilities(self) -> torch.Tensor:
        """(N, 2): [benign, malignant] probabilities."""
        return self.logp[..., 1].exp()


def _head_key(view: str) -> str:
    return view.lower().replace("-", "")  # 'L-CC' -> 'lcc'


class ImageWiseDMV(nn.Module):
    """The four-head image-wise DMV-CNN (official ``ImageBreastModel``), run one image at a time.

    :meth:`forward` is the official single-image model (``SingleImageBreastModel``) of one view: that
    view's ResNet and fc1, and the first four outputs of its 8-output head as (benign, malignant) x
    (no, yes) log-probabilities.
    """

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.four_view_resnet = FourViewResNet(in_channels)
        for view in VIEWS:
            setattr(self, f"fc1_{_head_key(view)}", nn.Linear(256, 256))
        for view in VIEWS:
            setattr(self, f"output_layer_{_head_key(view)}", OutputLayer(256, (4, 2)))

    def forward(self, x: torch.Tensor, view: str) -> ImageWiseOutput:
        """Log-probabilities for (N, C, H, W) standardised windows of one view ('L-CC', ...)."""
        key = _head_key(view)
        pooled = spatial_mean(self.four_view_resnet.for_view(view)(x))
        fc1 = getattr(self, f"fc1_{key}")(pooled)
        head = getattr(self, f"output_layer_{key}").fc_layer
        # The single-image model keeps the first four of the eight outputs: rows (benign, malignant).
        logits = F.linear(F.relu(fc1), head.weight[:4], head.bias[:4])
        return ImageWiseOutput(F.log_softmax(logits.view(x.shape[0], 2, 2), dim=-1), pooled, fc1)
