"""The GMIC explanation figure: input with ground truth, patch map, saliency maps, ROI patches.

Drawn with matplotlib's object-oriented API on images downsampled to display size first, which keeps a
figure to a fraction of a second (the official figure is rendered from full-resolution arrays at
500 dpi and takes several seconds) and lets figures be drawn from a background thread.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from matplotlib.colors import LinearSegmentedColormap, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..core.files import atomic_write

BENIGN_COLOR = (0.0, 0.7, 0.2)
MALIGNANT_COLOR = (0.9, 0.1, 0.1)
PATCH_COLOR = (0.1, 0.45, 1.0)


def _alpha_map(rgb: tuple[float, float, float], max_alpha: float = 0.95) -> ListedColormap:
    """A single-colour map whose opacity rises with the value (as the official green/red saliency overlays)."""
    colors = np.zeros((256, 4))
    colors[:, :3] = rgb
    colors[:, 3] = np.linspace(0.0, max_alpha, 256)
    return ListedColormap(colors)


def _mask_map(rgb: tuple[float, float, float]) -> ListedColormap:
    return ListedColormap([(0, 0, 0, 0), (*rgb, 0.35)])


_SALIENCY_MAPS = {"benign": _alpha_map(BENIGN_COLOR), "malignant": _alpha_map(MALIGNANT_COLOR)}
_GREY = LinearSegmentedColormap.from_list("mammo_grey", [(0, 0, 0), (1, 1, 1)])


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    if factor <= 1:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)


def _display_range(image: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(image, [0.5, 99.8])
    return float(lo), float(hi if hi > lo else lo + 1)


def gmic_figure(window: np.ndarray, saliency: np.ndarray, patch_locations: np.ndarray, patches: np.ndarray,
                attention: np.ndarray, path: str | Path, *, benign_mask: np.ndarray | None = None,
                malignant_mask: np.ndarray | None = None, patch_size: tuple[int, int] = (256, 256),
                title: str | None = None, display_factor: int = 6, dpi: int = 110) -> None:
    """Save the GMIC explanation figure for one image as a PNG.

    Parameters
    ----------
    window : (H, W) the model input (standardised window).
    saliency : (2, h, w) benign and malignant saliency maps.
    patch_locations : (K, 2) upper-left (row, col) of each ROI patch in the window.
    patches : (K, ph, pw) the ROI patches; attention : (K,) their attention weights.
    benign_mask, malignant_mask : optional ground-truth masks in window coordinates.
    display_factor : downsampling of the window for display (6 turns 2944x1920 into 490x320, about
        the size a panel is drawn at).
    """
    h_win, w_win = window.shape
    small = _downsample(window.astype(np.float32), display_factor)
    sh, sw = small.shape
    scale = sh / h_win
    vmin, vmax = _display_range(small)
    masks = {name: None if m is None else _downsample((np.asarray(m) > 0).astype(np.float32), display_factor) > 0.5
             for name, m in (("benign", benign_mask), ("malignant", malignant_mask))}

    k = len(patch_locations)
    n_panels = 4 + k
    fig = Figure(figsize=(2.3 * n_panels, 3.9), dpi=dpi)
    axes = fig.subplots(1, n_panels, gridspec_kw={"wspace": 0.06})

    def base(ax, panel_title):
        ax.imshow(small, cmap=_GREY, vmin=vmin, vmax=vmax, interpolation="bilinear")
        _title(ax, panel_title)
        ax.set_axis_off()

    def draw_masks(ax):
        for name, color in (("benign", BENIGN_COLOR), ("malignant", MALIGNANT_COLOR)):
            if masks[name] is not None and masks[name].any():
                ax.imshow(masks[name].astype(np.uint8), cmap=_mask_map(color), vmin=0, vmax=1,
                          interpolation="nearest")
                ax.contour(masks[name], levels=[0.5], colors=[color], linewidths=1.0)

    base(axes[0], "input + ground truth" if any(m is not None for m in masks.values()) else "input")
    draw_masks(axes[0])

    base(axes[1], "patch map")
    for i, (r, c) in enumerate(np.asarray(patch_locations)):
        axes[1].add_patch(Rectangle((c * scale, r * scale), patch_size[1] * scale, patch_size[0] * scale,
                                    fill=False, edgecolor=PATCH_COLOR, linewidth=1.2))
        axes[1].text(c * scale + 3, r * scale + 3, str(i), color="white", fontsize=7, va="top",
                     bbox={"facecolor": PATCH_COLOR, "edgecolor": "none", "pad": 0.8, "alpha": 0.8})
    draw_masks(axes[1])
    axes[1].set_xlim(-0.5, sw - 0.5)  # patches touching the border must not widen the axes
    axes[1].set_ylim(sh - 0.5, -0.5)

    for ax, channel, name in ((axes[2], 0, "benign"), (axes[3], 1, "malignant")):
        base(ax, f"saliency: {name}")
        overlay = cv2.resize(np.asarray(saliency[channel], dtype=np.float32), (sw, sh), interpolation=cv2.INTER_LINEAR)
        ax.imshow(overlay, cmap=_SALIENCY_MAPS[name], vmin=0.0, vmax=1.0, interpolation="bilinear")

    for i in range(k):
        ax = axes[4 + i]
        patch = np.asarray(patches[i], dtype=np.float32)
        lo, hi = _display_range(patch)
        ax.imshow(patch, cmap=_GREY, vmin=lo, vmax=hi, interpolation="nearest")
        _title(ax, rf"$\alpha_{i}$ = {float(attention[i]):.2f}")
        ax.set_axis_off()

    if title:
        fig.suptitle(title, fontsize=11, y=0.99)
    fig.subplots_adjust(left=0.005, right=0.995, top=0.86 if title else 0.9, bottom=0.01)
    save_figure_png(fig, path)


def _title(ax, text: str) -> None:
    # An explicit y turns off matplotlib's automatic title placement, which lays out every (hidden)
    # tick label of the axes and takes a large share of the drawing time.
    ax.set_title(text, fontsize=10, y=1.0, pad=4)


def save_figure_png(fig: Figure, path: str | Path) -> None:
    """Render a figure and write it as an RGB PNG atomically, encoding with OpenCV (much faster than
    matplotlib's default PNG writer at equal quality)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError(f"could not encode the figure for {path}")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())
