"""The GLAM explanation figure: input with ground truth, the selected region, the high-resolution
saliency maps over the image, and the region itself with its local (fine-grained) malignant map.

The official figure draws the same panels from full-resolution arrays at 500 dpi; here the window is
downsampled to display size first (as for GMIC), which matches the 736x480 stored saliency map.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..core.files import atomic_write
from .visualize import (BENIGN_COLOR, MALIGNANT_COLOR, PATCH_COLOR, _GREY, _SALIENCY_MAPS, _display_range,
                        _downsample, _mask_map)


def glam_figure(window: np.ndarray, saliency: np.ndarray, patch_locations: np.ndarray, patches: np.ndarray,
                path: str | Path, *, benign_mask: np.ndarray | None = None, malignant_mask: np.ndarray | None = None,
                crop_size: tuple[int, int] = (512, 512), title: str | None = None, display_factor: int = 4,
                dpi: int = 110) -> None:
    """Save the GLAM explanation figure for one image as a PNG.

    Parameters
    ----------
    window : (H, W) the model input (standardised window).
    saliency : (2, h, w) the high-resolution benign and malignant saliency maps (any downsampling of the
        window's grid; they are resized to the display size).
    patch_locations : (K, 2) upper-left (row, col) of each selected region in the window.
    patches : (K, crop_h, crop_w) the regions' pixels.
    benign_mask, malignant_mask : optional ground-truth masks in window coordinates.
    """
    h_win, _ = window.shape
    small = _downsample(window.astype(np.float32), display_factor)
    sh, sw = small.shape
    scale = sh / h_win
    vmin, vmax = _display_range(small)
    masks = {name: None if m is None else _downsample((np.asarray(m) > 0).astype(np.float32), display_factor) > 0.5
             for name, m in (("benign", benign_mask), ("malignant", malignant_mask))}
    overlays = [cv2.resize(np.asarray(saliency[c], dtype=np.float32), (sw, sh), interpolation=cv2.INTER_NEAREST)
                for c in (0, 1)]

    k = len(patch_locations)
    n_panels = 4 + k
    fig = Figure(figsize=(2.3 * n_panels, 3.9), dpi=dpi)
    axes = fig.subplots(1, n_panels, gridspec_kw={"wspace": 0.06})

    def base(ax, panel_title):
        ax.imshow(small, cmap=_GREY, vmin=vmin, vmax=vmax, interpolation="bilinear")
        ax.set_title(panel_title, fontsize=10)
        ax.set_axis_off()

    def draw_masks(ax):
        for name, color in (("benign", BENIGN_COLOR), ("malignant", MALIGNANT_COLOR)):
            if masks[name] is not None and masks[name].any():
                ax.imshow(masks[name].astype(np.uint8), cmap=_mask_map(color), vmin=0, vmax=1, interpolation="nearest")
                ax.contour(masks[name], levels=[0.5], colors=[color], linewidths=0.8)

    base(axes[0], "input + ground truth" if any(m is not None for m in masks.values()) else "input")
    draw_masks(axes[0])

    base(axes[1], "selected region")
    for r, c in np.asarray(patch_locations):
        axes[1].add_patch(Rectangle((c * scale, r * scale), crop_size[1] * scale, crop_size[0] * scale,
                                    fill=False, edgecolor=PATCH_COLOR, linewidth=1.2))
    draw_masks(axes[1])

    for ax, channel, name in ((axes[2], 0, "benign"), (axes[3], 1, "malignant")):
        base(ax, f"saliency: {name}")
        ax.imshow(overlays[channel], cmap=_SALIENCY_MAPS[name], vmin=0.0, vmax=1.0, interpolation="nearest")

    for i, (r, c) in enumerate(np.asarray(patch_locations)):
        ax = axes[4 + i]
        patch = np.asarray(patches[i], dtype=np.float32)
        lo, hi = _display_range(patch)
        ax.imshow(patch, cmap=_GREY, vmin=lo, vmax=hi, interpolation="nearest")
        # The malignant map over the region, from the full-resolution map's grid.
        r0, c0 = int(round(r * scale)), int(round(c * scale))
        r1, c1 = r0 + max(1, int(round(crop_size[0] * scale))), c0 + max(1, int(round(crop_size[1] * scale)))
        region = overlays[1][r0:r1, c0:c1]
        if region.size:
            ax.imshow(region, cmap=_SALIENCY_MAPS["malignant"], vmin=0.0, vmax=1.0, interpolation="nearest",
                      extent=(-0.5, patch.shape[1] - 0.5, patch.shape[0] - 0.5, -0.5), alpha=0.6)
        ax.set_title(f"region {i}: malignant", fontsize=10)
        ax.set_axis_off()

    if title:
        fig.suptitle(title, fontsize=11, y=0.99)
    fig.subplots_adjust(left=0.005, right=0.995, top=0.86 if title else 0.9, bottom=0.01)
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
