"""The input of the window models (GMIC, GLAM, gmic_demo): a cropped image's standardised window around its
``best_center``, with how it was cut, and lesion masks cut the same way for the figures."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.paths import name_path
from ..data.exams import ImageRecord
from ..data.images import image_path, read_mammogram, read_png
from .windows import (
    ImageOrigin,
    WindowGeometry,
    align_to_window,
    extract_window,
    flip_to_face_right,
    standardize,
    window_geometry,
)


@dataclass
class WindowInput:
    """One preprocessed image: the standardised window and how it was cut from the cropped image."""

    window: np.ndarray  # (H, W) float32
    geometry: WindowGeometry
    cropped_shape: tuple[int, int]
    # Where the image came from, saved with the maps so that they can be mapped back to the original
    # image without the exam list (see explain/localize/geometry.py).
    origin: ImageOrigin


def window_input(record: ImageRecord, images_dir: Path, size: tuple[int, int],
                 rng: np.random.RandomState | None = None) -> WindowInput:
    """Read the cropped image, mirror it to face right, cut the ``size`` window around ``best_center`` (with
    ``rng``'s noise, if given) and standardise it."""
    if "best_center" not in record.metadata:
        raise ValueError(f"image {record.name!r} has no best_center: run 'mammoscreen centers' first "
                         "(or 'mammoscreen run', which does every stage)")
    cropped = read_mammogram(image_path(images_dir, record.name))
    image = flip_to_face_right(cropped.astype(np.float32), record.view, record.horizontal_flip)
    geometry = window_geometry(image.shape, size, record.metadata["best_center"], record.view, rng=rng)
    window = standardize(extract_window(image, geometry, size))
    return WindowInput(window, geometry, cropped.shape, ImageOrigin.of(record))


def window_masks(record: ImageRecord, prepared: WindowInput, segmentations: Path | None,
                 size: tuple[int, int]) -> dict[str, np.ndarray | None]:
    """The image's benign and malignant masks (``<image>_benign.png`` ...) cut like its window; None if absent."""
    masks: dict[str, np.ndarray | None] = {"benign": None, "malignant": None}
    if segmentations is not None:
        for kind in masks:
            mask_file = name_path(segmentations, record.name, f"_{kind}.png", "image name")
            if mask_file.is_file():
                masks[kind] = align_to_window(read_png(mask_file), record.view, record.horizontal_flip,
                                              prepared.geometry, size, prepared.cropped_shape,
                                              record.metadata.get("window_location"))
    return masks
