"""Images for the report: data URIs, downscaled JPEG thumbnails, ground-truth outlines on mammograms."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np

# Outline colours (BGR for OpenCV), the same hues as the GMIC figure's ground truth.
OUTLINE_COLORS = {"malignant": (25, 25, 230), "benign": (50, 180, 0)}


def data_uri(data: bytes, mime: str) -> str:
    """``data:`` URI embedding ``data`` (the report fetches nothing)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def jpeg_bytes(image_bgr: np.ndarray, quality: int = 82) -> bytes:
    ok, data = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def _resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if w <= width:
        return image
    return cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def figure_thumbnail(path: Path, width: int) -> bytes:
    """A figure PNG downscaled to at most ``width`` pixels wide, as JPEG bytes."""
    from ..data.images import image_size

    image_size(path)  # the declared size is checked before cv2 decodes anything
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path} is not a readable image")
    return jpeg_bytes(_resize_to_width(image, width))


def _display_grey(image: np.ndarray) -> np.ndarray:
    """8-bit display of a 12/16-bit mammogram, windowed on the breast (percentiles of non-zero pixels)."""
    values = image[image > 0]
    lo, hi = (np.percentile(values, [0.5, 99.8]) if values.size else (0.0, 1.0))
    hi = hi if hi > lo else lo + 1
    return np.clip((image.astype(np.float32) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def outlined_mammogram(image_file: Path, masks: dict[str, Path], height: int) -> bytes:
    """The mammogram downscaled to ``height`` rows with each lesion mask's outline drawn, as JPEG bytes.

    ``masks`` maps a class ('benign', 'malignant') to a mask PNG of the image's size and orientation.
    """
    from ..data.images import read_png

    image = read_png(image_file)
    h, w = image.shape[:2]
    scale = min(1.0, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    grey = cv2.resize(_display_grey(image), size, interpolation=cv2.INTER_AREA)
    canvas = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    for kind, mask_file in masks.items():
        mask = read_png(mask_file)
        if mask.shape[:2] != (h, w):
            raise ValueError(f"{mask_file} is {mask.shape[1]}x{mask.shape[0]} pixels but the image {image_file} is "
                             f"{w}x{h}; masks must have the image's size and orientation")
        # Resize the binary mask (not its contour) so the outline stays closed at display size.
        small = cv2.resize((mask > 0).astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) >= 128
        contours, _ = cv2.findContours(small.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(canvas, contours, -1, OUTLINE_COLORS.get(kind, (0, 200, 255)), 2)
    return jpeg_bytes(canvas)
