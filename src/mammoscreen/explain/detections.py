"""Figures for whole-image models: the model's input with its score, and detected boxes with their scores.

Used by end2end (input + probability) and frcnn_cad (the mammogram with the malignant and benign
detections of the Faster R-CNN, strongest first). Drawn on a downsampled image, like the GMIC figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..core.files import atomic_write
from .visualize import _GREY, BENIGN_COLOR, MALIGNANT_COLOR, _display_range, _downsample


def _display_factor(shape: tuple[int, ...], target_rows: int = 900) -> int:
    return max(1, int(round(shape[0] / target_rows)))


def input_figure(image: np.ndarray, path: str | Path, *, title: str | None = None, dpi: int = 110) -> None:
    """Save the (preprocessed) model input as a PNG with a title (e.g. the image's score)."""
    image = np.asarray(image, dtype=np.float32)
    small = _downsample(image, _display_factor(image.shape))
    vmin, vmax = _display_range(small)
    height = 6.0
    fig = Figure(figsize=(height * small.shape[1] / small.shape[0] + 0.2, height + 0.5), dpi=dpi)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.9 if title else 0.98))
    ax.imshow(small, cmap=_GREY, vmin=vmin, vmax=vmax, interpolation="bilinear")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10, y=0.985)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)


def detection_figure(image: np.ndarray, detections: dict[str, np.ndarray], path: str | Path, *,
                     max_boxes: int = 5, min_score: float = 0.0, title: str | None = None,
                     masks: dict[str, np.ndarray | None] | None = None, dpi: int = 110) -> None:
    """Save an image with detected boxes: one panel per class ('malignant', 'benign').

    ``detections[class]`` is (K, 5) ``[x1, y1, x2, y2, score]`` in image pixels, sorted by score; the
    ``max_boxes`` strongest with ``score >= min_score`` are drawn and labelled. Optional ``masks``
    (ground truth, image-sized) are outlined in the class colour.
    """
    image = np.asarray(image, dtype=np.float32)
    factor = _display_factor(image.shape)
    small = _downsample(image, factor)
    scale = small.shape[0] / image.shape[0]
    vmin, vmax = _display_range(small)
    classes: Sequence[str] = [c for c in ("malignant", "benign") if c in detections]
    colors = {"malignant": MALIGNANT_COLOR, "benign": BENIGN_COLOR}
    height = 6.0
    width = height * small.shape[1] / small.shape[0]
    fig = Figure(figsize=(width * len(classes) + 0.4, height + 0.6), dpi=dpi)
    axes = np.atleast_1d(fig.subplots(1, len(classes), gridspec_kw={"wspace": 0.03}))
    for ax, name in zip(axes, classes):
        ax.imshow(small, cmap=_GREY, vmin=vmin, vmax=vmax, interpolation="bilinear")
        ax.set_axis_off()
        color = colors[name]
        mask = (masks or {}).get(name)
        if mask is not None and np.any(mask):
            small_mask = _downsample((np.asarray(mask) > 0).astype(np.float32), factor) > 0.5
            ax.contour(small_mask, levels=[0.5], colors=[color], linewidths=0.8, linestyles="dashed")
        boxes = np.asarray(detections[name], dtype=np.float64).reshape(-1, 5)
        boxes = boxes[boxes[:, 4] >= min_score][:max_boxes]
        for rank, (x1, y1, x2, y2, score) in enumerate(boxes):
            ax.add_patch(Rectangle((x1 * scale, y1 * scale), (x2 - x1 + 1) * scale, (y2 - y1 + 1) * scale,
                                   fill=False, edgecolor=color, linewidth=2.0 if rank == 0 else 1.0,
                                   alpha=1.0 if rank == 0 else 0.8))
            ax.text(x1 * scale + 2, y1 * scale + 2, f"{score:.2f}", color="white", fontsize=7, va="top",
                    bbox={"facecolor": color, "edgecolor": "none", "pad": 0.8, "alpha": 0.85})
        top = f"{boxes[0, 4]:.3f}" if len(boxes) else "-"
        ax.set_title(f"{name} detections (top {len(boxes)}, max {top})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10, y=0.99)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9 if title else 0.95, bottom=0.01)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)


__all__ = ["input_figure", "detection_figure"]
