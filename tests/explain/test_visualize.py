"""The GMIC figure: panels, ground-truth outlines, readable size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mammoscreen.explain.visualize import gmic_figure


def draw(tmp_path, name, **masks):
    rng = np.random.default_rng(0)
    window = rng.normal(size=(2944, 1920)).astype(np.float32)
    saliency = np.zeros((2, 46, 30), np.float32)
    saliency[1, 20:24, 10:14] = 1.0
    locations = np.array([[1280, 640], [0, 0], [2688, 1664]])
    patches = rng.normal(size=(3, 256, 256)).astype(np.float32)
    path = tmp_path / f"{name}.png"
    gmic_figure(window, saliency, locations, patches, np.array([0.7, 0.2, 0.1]), path, title=name, **masks)
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def coloured_fraction(image, channel):
    others = [c for c in range(3) if c != channel]
    strong = (image[..., channel] > 150) & (image[..., others[0]] < 90) & (image[..., others[1]] < 90)
    return strong.mean()


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_figure_shows_masks_only_when_given(tmp_path):
    plain = draw(tmp_path, "plain")
    mask = np.zeros((2944, 1920), np.uint8)
    mask[1000:1400, 500:900] = 255
    with_masks = draw(tmp_path, "masks", benign_mask=mask, malignant_mask=np.roll(mask, 900, axis=0))
    assert plain.shape == with_masks.shape
    height, width, _ = plain.shape
    assert width > 1500 and 300 < height < 600  # 7 panels side by side, readable at 100 %
    left = slice(0, width * 2 // 7)  # input and patch-map panels
    assert coloured_fraction(plain[:, left], 1) == 0 and coloured_fraction(plain[:, left], 0) == 0
    assert coloured_fraction(with_masks[:, left], 1) > 0.002  # green benign outline and fill
    assert coloured_fraction(with_masks[:, left], 0) > 0.002  # red malignant


def test_malignant_saliency_is_drawn_in_its_panel(tmp_path):
    image = draw(tmp_path, "sal")
    width = image.shape[1]
    malignant_panel = image[:, width * 3 // 7: width * 4 // 7]
    benign_panel = image[:, width * 2 // 7: width * 3 // 7]
    assert coloured_fraction(malignant_panel, 0) > coloured_fraction(benign_panel, 0) + 0.001


@pytest.mark.slow
def test_panels_show_the_window_maps_and_patches(tmp_path):
    """Every panel's content against the array it draws (tests/figures.py reads the panels back)."""
    import cv2

    from figures import check_gmic_figure

    rng = np.random.default_rng(1)
    window = cv2.GaussianBlur(rng.normal(size=(2944, 1920)).astype(np.float32), (0, 0), 40)
    saliency = np.zeros((2, 46, 30), np.float32)
    saliency[0] = np.linspace(0, 1, 46 * 30).reshape(46, 30)  # a ramp: benign
    saliency[1, 20:24, 10:14] = 1.0  # a blob: malignant
    locations = np.array([[1280, 640], [0, 0], [2688, 1664]])
    patches = np.stack([cv2.GaussianBlur(p, (0, 0), 8) for p in rng.normal(size=(3, 256, 256)).astype(np.float32)])
    gmic_figure(window, saliency, locations, patches, np.array([0.7, 0.2, 0.1]), tmp_path / "f.png", title="t")
    check_gmic_figure(tmp_path / "f.png", window, saliency, locations, patches)
    # and a figure of other data fails the same check
    with pytest.raises(AssertionError, match="benign saliency"):
        check_gmic_figure(tmp_path / "f.png", window, saliency[::-1], locations, patches)
    with pytest.raises(AssertionError, match="patch 0"):
        check_gmic_figure(tmp_path / "f.png", window, saliency, locations, patches[::-1])
    with pytest.raises(AssertionError, match="patch map"):
        check_gmic_figure(tmp_path / "f.png", window, saliency, locations + 300, patches)
