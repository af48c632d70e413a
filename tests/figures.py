"""Reading figures back: find the panels of a saved figure and compare what they show with the arrays drawn.

A figure test that only checks a file size passes for a blank or wrong figure. These helpers let a test
say instead: panel 3 is the malignant saliency map over the input, with the map's values as the red
overlay's opacity. Import as ``from figures import ...`` (like ``testutils``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def read_rgb(path: str | Path) -> np.ndarray:
    """A saved figure as (H, W, 3) float64 in 0..255."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


@dataclass(frozen=True)
class Panel:
    """A panel's pixel box in the figure: rows [top, bottom), columns [left, right)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left

    def pixels(self, figure: np.ndarray, margin: int = 2) -> np.ndarray:
        """The panel's pixels without its outermost ``margin`` (antialiased edges)."""
        return figure[self.top + margin:self.bottom - margin, self.left + margin:self.right - margin]


def _runs(mask: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """[start, end) of the runs of True, joining runs separated by fewer than ``min_gap`` False."""
    runs: list[list[int]] = []
    for i in np.flatnonzero(mask):
        if runs and i - runs[-1][1] < min_gap:
            runs[-1][1] = i + 1
        else:
            runs.append([int(i), int(i) + 1])
    return [(a, b) for a, b in runs]


def find_panels(figure: np.ndarray, *, band: tuple[float, float] = (0.45, 0.6), min_gap: int = 4,
                min_size: int = 20) -> list[Panel]:
    """The image panels of a figure laid out side by side on a white background, left to right.

    Columns holding non-white pixels in a horizontal band through the middle of the figure make a
    panel; its rows are the longest run of rows with non-white pixels in those columns (titles above
    it are separated by white rows).
    """
    ink = (figure < 250).any(axis=2)
    h = figure.shape[0]
    rows = slice(int(h * band[0]), int(h * band[1]))
    panels = []
    for left, right in _runs(ink[rows].any(axis=0), min_gap):
        if right - left < min_size:
            continue
        row_runs = _runs(ink[:, left:right].any(axis=1), 2)
        top, bottom = max(row_runs, key=lambda r: r[1] - r[0])
        if bottom - top >= min_size:
            panels.append(Panel(top, bottom, left, right))
    return panels


def fit(array: np.ndarray, shape: tuple[int, int], interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """``array`` resized to ``shape`` (rows, cols), float64."""
    return cv2.resize(np.asarray(array, dtype=np.float32), (shape[1], shape[0]),
                      interpolation=interpolation).astype(np.float64)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two same-shaped arrays."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.mean(axis=-1)


def tint(rgb: np.ndarray, color: tuple[float, float, float]) -> np.ndarray:
    """Opacity of a ``color`` overlay on a grey image, per pixel.

    Over grey g (equal channels), an overlay of opacity a gives ``(1 - a) g + 255 a color``; the strongest
    channel of the colour minus the mean of the other two is then ``255 a (c_max - mean(c_others))``,
    independent of g.
    """
    color = np.asarray(color, dtype=np.float64)
    main = int(np.argmax(color))
    others = [i for i in range(3) if i != main]
    contrast = color[main] - color[others].mean()
    return (rgb[..., main] - rgb[..., others].mean(axis=-1)) / (255.0 * contrast)


def coloured(rgb: np.ndarray, color: tuple[float, float, float], threshold: float = 0.5) -> np.ndarray:
    """Pixels drawn in (nearly) ``color``: a boolean mask."""
    return tint(rgb, color) > threshold


# -- the explanation figures of mammoscreen.explain ------------------------------------------------------

BENIGN = (0.0, 0.7, 0.2)  # mammoscreen.explain.visualize's colours
MALIGNANT = (0.9, 0.1, 0.1)
PATCH = (0.1, 0.45, 1.0)
SALIENCY_OPACITY = 0.95  # the overlay's opacity at saliency 1


def coarse(image: np.ndarray) -> np.ndarray:
    """Fine texture, resampled twice (nearest-neighbour in the figure, area here), compares on a coarser grid."""
    return fit(image, (64, 64))


def displayed(image: np.ndarray) -> np.ndarray:
    """An image clipped to the grey range the figures show (percentiles 0.5 to 99.8)."""
    image = np.asarray(image, dtype=np.float64)
    return np.clip(image, *np.percentile(image, [0.5, 99.8]))


def assert_shows(panel: np.ndarray, expected: np.ndarray, what: str, min_correlation: float = 0.9) -> None:
    """The panel's grey levels follow ``expected`` (an image drawn in grey)."""
    r = correlation(luminance(panel), fit(expected, panel.shape[:2]))
    assert r > min_correlation, f"{what}: correlation {r:.3f} with the array it should show"


def assert_overlay(panel: np.ndarray, values: np.ndarray, color, what: str, *, opacity: float = SALIENCY_OPACITY,
                   interpolation: int = cv2.INTER_LINEAR, tolerance: float = 0.05) -> None:
    """The panel carries ``values`` (0..1) as the opacity of a ``color`` overlay."""
    shown = tint(panel, color) / opacity
    expected = fit(values, panel.shape[:2], interpolation)
    error = float(np.abs(shown - expected).mean())
    assert error < tolerance, f"{what}: mean |overlay - map| = {error:.3f}"
    if expected.std() > 0.05:  # the structure too, not just the level (resampling blurs fine detail a little)
        r = correlation(shown, expected)
        assert r > 0.8, f"{what}: correlation {r:.3f} of the overlay with the map"


def assert_boxes(panel: np.ndarray, boxes, scale: float, color, what: str, min_fraction: float = 0.6) -> None:
    """Rectangles ``(row, col, height, width)`` (figure-data pixels times ``scale``) are drawn in ``color``:
    most of the pixels along each edge of a box that lies inside the panel carry the colour."""
    drawn = coloured(panel, color, threshold=0.4)
    h, w = drawn.shape
    for row, col, height, width in boxes:
        # the panel lost a 2-pixel margin; the last pixel of a box is at start + size - 1
        r0, c0 = int(round(row * scale)) - 2, int(round(col * scale)) - 2
        r1, c1 = r0 + int(round(height * scale)) - 1, c0 + int(round(width * scale)) - 1
        rows, cols = slice(max(r0, 0) + 2, min(r1, h) - 2), slice(max(c0, 0) + 2, min(c1, w) - 2)
        edges = [drawn[max(r - 1, 0):r + 2, cols].any(axis=0) for r in (r0, r1) if 1 <= r < h - 1]
        edges += [drawn[rows, max(c - 1, 0):c + 2].any(axis=1) for c in (c0, c1) if 1 <= c < w - 1]
        edges = [e for e in edges if e.size > 4]
        assert edges, f"{what}: box {row, col} lies outside the panel"
        fraction = float(np.concatenate(edges).mean())
        assert fraction > min_fraction, f"{what}: box at {row, col}: {fraction:.2f} of its edges in the box colour"


def check_gmic_figure(path, window: np.ndarray, saliency: np.ndarray, locations: np.ndarray, patches: np.ndarray,
                      *, patch_size=(256, 256), display_factor: int = 6, masks: bool = False) -> None:
    """A GMIC figure (explain.visualize.gmic_figure) shows the window, the patch map, both saliency maps as
    overlays and the patches, in that order."""
    from mammoscreen.explain.visualize import _downsample

    figure = read_rgb(path)
    panels = find_panels(figure)
    assert len(panels) == 4 + len(locations), panels
    small = _downsample(window.astype(np.float32), display_factor)
    for panel in panels[:4]:
        assert abs(panel.shape[0] / panel.shape[1] - small.shape[0] / small.shape[1]) < 0.03, panel
    input_panel = panels[0].pixels(figure)
    # masks are drawn as translucent fills over the input: compare the grey level where there is none
    assert_shows(input_panel, small, "input panel", 0.85 if masks else 0.9)
    scale = (panels[1].shape[0]) / window.shape[0]
    assert_boxes(panels[1].pixels(figure), [(r, c, *patch_size) for r, c in locations], scale, PATCH, "patch map")
    assert_overlay(panels[2].pixels(figure), saliency[0], BENIGN, "benign saliency panel")
    assert_overlay(panels[3].pixels(figure), saliency[1], MALIGNANT, "malignant saliency panel")
    # Each patch panel shows its own patch: clearly more like it than like any other patch.
    shown = [panel.pixels(figure) for panel in panels[4:]]
    similarity = np.array([[correlation(coarse(luminance(pixels)), coarse(displayed(patch))) for patch in patches]
                           for pixels in shown])
    for i, panel in enumerate(panels[4:]):
        assert abs(panel.shape[0] / panel.shape[1] - patch_size[0] / patch_size[1]) < 0.03
        others = np.delete(similarity[i], i)
        assert similarity[i, i] > 0.9 and (others.size == 0 or similarity[i, i] > others.max() + 0.2), \
            f"patch {i}: correlation {similarity[i, i]:.3f} with its patch, {others.max():.3f} with another"


def grey_under(rgb: np.ndarray, color) -> np.ndarray:
    """The grey level under a ``color`` overlay (see :func:`tint`), from a channel the colour is weak in."""
    color = np.asarray(color, dtype=np.float64)
    weak = int(np.argmin(color))
    a = np.clip(tint(rgb, color), 0.0, 0.95)
    return (rgb[..., weak] - 255.0 * a * color[weak]) / (1.0 - a)


def check_glam_figure(path, window: np.ndarray, saliency: np.ndarray, locations: np.ndarray, patches: np.ndarray,
                      *, crop_size=(512, 512), display_factor: int = 4) -> None:
    """A GLAM figure (explain.glam_figure): input, selected region, both high-resolution saliency maps as
    overlays, then each region with its part of the malignant map over it (opacity 0.6 of the overlay)."""
    from mammoscreen.explain.visualize import _downsample

    figure = read_rgb(path)
    panels = find_panels(figure)
    assert len(panels) == 4 + len(locations), panels
    small = _downsample(window.astype(np.float32), display_factor)
    assert_shows(panels[0].pixels(figure), small, "input panel")
    scale = panels[1].shape[0] / window.shape[0]
    assert_boxes(panels[1].pixels(figure), [(r, c, *crop_size) for r, c in locations], scale, PATCH,
                 "selected region")
    nearest = cv2.INTER_NEAREST
    assert_overlay(panels[2].pixels(figure), saliency[0], BENIGN, "benign saliency panel", interpolation=nearest)
    assert_overlay(panels[3].pixels(figure), saliency[1], MALIGNANT, "malignant saliency panel", interpolation=nearest)
    map_scale = saliency.shape[1] / window.shape[0]
    for i, (panel, (r, c)) in enumerate(zip(panels[4:], locations)):
        pixels = panel.pixels(figure)
        rows = slice(int(round(r * map_scale)), int(round((r + crop_size[0]) * map_scale)))
        cols = slice(int(round(c * map_scale)), int(round((c + crop_size[1]) * map_scale)))
        assert_overlay(pixels, saliency[1][rows, cols], MALIGNANT, f"region {i} map", opacity=0.6 * SALIENCY_OPACITY,
                       interpolation=nearest)
        r = correlation(coarse(grey_under(pixels, MALIGNANT)), coarse(displayed(patches[i])))
        assert r > 0.9, f"region {i}: correlation {r:.3f} with its pixels"


def check_input_figure(path, image: np.ndarray) -> None:
    """explain.detections.input_figure: one panel showing ``image``."""
    figure = read_rgb(path)
    (panel,) = find_panels(figure)
    assert abs(panel.shape[0] / panel.shape[1] - image.shape[0] / image.shape[1]) < 0.03
    assert_shows(panel.pixels(figure), image, "input figure")


def check_detection_figure(path, image: np.ndarray, detections: dict[str, np.ndarray], max_boxes: int = 5) -> None:
    """explain.detections.detection_figure: a malignant and a benign panel, each showing the image with its
    class's strongest boxes ``[x1, y1, x2, y2, score]`` (inclusive corners) in the class colour."""
    figure = read_rgb(path)
    panels = find_panels(figure)
    classes = [c for c in ("malignant", "benign") if c in detections]
    assert len(panels) == len(classes), panels
    for panel, name in zip(panels, classes):
        pixels = panel.pixels(figure)
        assert abs(panel.shape[0] / panel.shape[1] - image.shape[0] / image.shape[1]) < 0.03
        assert_shows(pixels, image, f"{name} panel", 0.8)  # boxes and their score labels cover part of it
        boxes = np.asarray(detections[name], dtype=np.float64).reshape(-1, 5)[:max_boxes]
        assert_boxes(pixels, [(y1, x1, y2 - y1 + 1, x2 - x1 + 1) for x1, y1, x2, y2, _ in boxes],
                     panel.shape[0] / image.shape[0], MALIGNANT if name == "malignant" else BENIGN, f"{name} boxes",
                     min_fraction=0.5)
