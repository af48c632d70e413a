"""The GMIC training objective (Shen et al. 2021, section 3.5).

For each class c (benign, malignant), binary cross-entropy of the image label against the global
(top-t% pooled saliency), local (attention MIL) and fusion predictions, plus beta times the L1 norm of
the class's saliency map, which keeps the maps sparse::

    L = sum_c [ BCE(y_c, y_global_c) + BCE(y_c, y_local_c) + BCE(y_c, y_fusion_c) + beta * |A_c|_1 ]

averaged over the images of a batch. The paper writes |A_c|_1 as the sum of |A_c(i, j)| over the map's
pixels (``saliency_reduction='sum'``, the default here); ``'mean'`` divides it by the number of pixels,
which makes beta independent of the map size (beta_mean = beta_sum * h * w). The saliency maps are
sigmoid outputs, so their L1 norm is simply their sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.gmic.modeling import GMICOutput

# The model outputs probabilities; clamping keeps log() finite when a sigmoid saturates in float32.
_EPS = 1e-7


def _bce(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image BCE summed over the classes: (N, C) -> (N,)."""
    p = probabilities.float().clamp(_EPS, 1 - _EPS)
    return F.binary_cross_entropy(p, targets, reduction="none").sum(dim=1)


@dataclass(frozen=True)
class GMICLoss:
    """The loss and its parts for one batch (each a scalar tensor, batch mean)."""

    total: torch.Tensor
    global_bce: torch.Tensor
    local_bce: torch.Tensor
    fusion_bce: torch.Tensor
    saliency_l1: torch.Tensor  # before multiplying by beta

    def as_floats(self) -> dict[str, float]:
        return {"loss": self.total.item(), "global_bce": self.global_bce.item(), "local_bce": self.local_bce.item(),
                "fusion_bce": self.fusion_bce.item(), "saliency_l1": self.saliency_l1.item()}


def gmic_loss(output: GMICOutput, targets: torch.Tensor, beta: float, saliency_reduction: str = "sum",
              label_smoothing: float = 0.0) -> GMICLoss:
    """The GMIC objective for a batch; ``targets`` is (N, 2) [benign, malignant] in {0, 1}.

    ``label_smoothing`` eps (not in the paper; 0 by default) trains towards eps/2 and 1 - eps/2 instead of
    0 and 1, which stops the sigmoid saliency maps from saturating at exactly 1.0 over whole regions (a
    plateau of ties has no meaningful maximum for the pointing game).
    """
    if saliency_reduction not in ("sum", "mean"):
        raise ValueError(f"saliency_reduction must be 'sum' or 'mean', got {saliency_reduction!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    targets = targets.float() * (1.0 - label_smoothing) + label_smoothing / 2
    global_bce = _bce(output.y_global, targets).mean()
    local_bce = _bce(output.y_local, targets).mean()
    fusion_bce = _bce(output.y_fusion, targets).mean()
    maps = output.saliency_map.float().abs().flatten(2)  # (N, C, h*w)
    per_class = maps.sum(dim=2) if saliency_reduction == "sum" else maps.mean(dim=2)
    saliency_l1 = per_class.sum(dim=1).mean()
    total = global_bce + local_bce + fusion_bce + beta * saliency_l1
    return GMICLoss(total, global_bce, local_bce, fusion_bce, saliency_l1)
