"""Coordinates of a saliency map: from the model window back to the original image.

The map is brought to the window's size (:func:`map_to_window`: bilinear for the GMIC layout, repeated samples
for the GLAM layout), placed back into the cropped image (undoing the window's padding and position),
un-mirrored and shifted by the crop box (:func:`window_to_original`). Pixels the window did not cover get NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ...data.exams import VIEWS, needs_flip
from ...preprocess.windows import WindowGeometry

__all__ = ["MapPlacement", "upsample_to_window", "expand_strided_map", "map_to_window", "window_to_original"]


@dataclass(frozen=True)
class MapPlacement:
    """How a window-aligned map sits on the original image.

    Parameters
    ----------
    geometry : the window in the padded, mirrored, cropped image (``window_borders``, ``window_padding``).
    view : e.g. 'L-CC'.
    horizontal_flip : the exam's 'YES'/'NO' (together with ``view``: was the crop mirrored).
    crop_location : the crop box (top, bottom, left, right) in the original image (``window_location``).
    cropped_shape : (rows, cols) of the cropped image.
    original_shape : (rows, cols) of the original image, when recorded (``original_shape`` of the crop stage;
        None for maps and exam lists written before it was recorded).
    map_stride : None for a map stretched over the window (GMIC layout, upsampled bilinearly); ``s`` for a map
        holding every ``s``-th window pixel (GLAM layout, ``saliency_map_stride``; see :func:`expand_strided_map`).
    """

    geometry: WindowGeometry
    view: str
    horizontal_flip: str
    crop_location: tuple[int, int, int, int]
    cropped_shape: tuple[int, int]
    original_shape: tuple[int, int] | None = None
    map_stride: int | None = None

    def __post_init__(self) -> None:
        if self.map_stride is not None and (isinstance(self.map_stride, bool)
                                            or not isinstance(self.map_stride, (int, np.integer))
                                            or self.map_stride < 1):
            raise ValueError(f"saliency_map_stride must be an integer >= 1, got {self.map_stride!r}")
        top, bottom, left, right = self.crop_location
        if not (0 <= top < bottom and 0 <= left < right):
            raise ValueError(f"crop box (window_location) {self.crop_location} is not (top, bottom, left, right) "
                             "with top < bottom and left < right")
        if (bottom - top, right - left) != tuple(self.cropped_shape):
            raise ValueError(f"crop box (window_location) {self.crop_location} has size {bottom - top}x{right - left} "
                             f"but the cropped image was {self.cropped_shape[0]}x{self.cropped_shape[1]}: the exam "
                             "list does not belong to these maps (use the cropped exam list of the same run)")
        if self.original_shape is not None:
            rows, cols = self.original_shape
            if rows < bottom or cols < right:
                raise ValueError(f"the original image ({rows}x{cols}, original_shape) does not contain the crop box "
                                 f"(window_location) {self.crop_location}: the two do not come from the same crop")
        needs_flip(self.view, self.horizontal_flip)  # raises for an unknown horizontal_flip
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; expected one of {', '.join(VIEWS)}")

    @property
    def window_shape(self) -> tuple[int, int]:
        """(rows, cols) of the window in the padded image."""
        g = self.geometry
        return g.bottom - g.top, g.right - g.left


def upsample_to_window(saliency: np.ndarray, window_shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a 2-D map to the window size (OpenCV, pixel centres aligned as torch's
    ``align_corners=False``), as float32.

    Parameters
    ----------
    saliency : (h, w) map.
    window_shape : (rows, cols) of the window.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    if saliency.ndim != 2 or 0 in saliency.shape:
        raise ValueError(f"a saliency map must be a non-empty 2-D array, got shape {saliency.shape}")
    rows, cols = (int(v) for v in window_shape)
    if saliency.shape == (rows, cols):
        return saliency.copy()
    return cv2.resize(saliency, (cols, rows), interpolation=cv2.INTER_LINEAR)


def expand_strided_map(saliency: np.ndarray, stride: int, window_shape: tuple[int, int]) -> np.ndarray:
    """A window-sized map from every ``stride``-th pixel of it (GLAM's ``saliency_map``), as float32.

    Sample ``[i, j]`` is window pixel ``(stride*i, stride*j)`` (``full[::stride, ::stride]``) and stands for the
    block of rows ``stride*i .. stride*i + stride - 1`` and columns ``stride*j .. stride*j + stride - 1``: each
    sample is repeated ``stride`` times along each axis and the result cut to the window (the last block is
    partial when the window is not a multiple of ``stride``). For a map constant on those blocks this gives
    back the full map exactly.

    Parameters
    ----------
    saliency : (ceil(rows / stride), ceil(cols / stride)) samples.
    stride : the sampling step (``saliency_map_stride``).
    window_shape : (rows, cols) of the window.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    rows, cols = (int(v) for v in window_shape)
    stride = int(stride)
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    expected = (-(-rows // stride), -(-cols // stride))
    if saliency.shape != expected:
        raise ValueError(f"a map sampled every {stride} pixels of a {rows}x{cols} window must have shape "
                         f"{expected[0]}x{expected[1]}, got {saliency.shape}")
    return np.repeat(np.repeat(saliency, stride, axis=0), stride, axis=1)[:rows, :cols]


def map_to_window(saliency: np.ndarray, placement: MapPlacement) -> np.ndarray:
    """One channel of a maps file at the window's size, by the file's layout (``placement.map_stride``)."""
    if placement.map_stride is None:
        return upsample_to_window(saliency, placement.window_shape)
    return expand_strided_map(saliency, placement.map_stride, placement.window_shape)


def window_to_original(window_map: np.ndarray, placement: MapPlacement, original_shape: tuple[int, int] | None = None,
                       fill_value: float = np.nan) -> np.ndarray:
    """Map a window-sized array back to the original image frame (the inverse of ``align_to_window``).

    Parameters
    ----------
    window_map : (rows, cols) array of the window's size (see :func:`upsample_to_window`).
    placement : where the window was cut (:class:`MapPlacement`).
    original_shape : (rows, cols) of the original image; must contain the crop box, and equal
        ``placement.original_shape`` when that is recorded (None: use it).
    fill_value : value of original pixels the window does not cover (NaN: no value).
    """
    window_map = np.asarray(window_map)
    if original_shape is None:
        if placement.original_shape is None:
            raise ValueError("the original image's shape is not recorded in the placement: pass original_shape")
        original_shape = placement.original_shape
    original_shape = (int(original_shape[0]), int(original_shape[1]))
    if placement.original_shape is not None and original_shape != tuple(placement.original_shape):
        raise ValueError(f"original_shape {original_shape[0]}x{original_shape[1]} differs from the original image's "
                         f"recorded shape {placement.original_shape[0]}x{placement.original_shape[1]}")
    if window_map.shape != placement.window_shape:
        raise ValueError(f"window map of shape {window_map.shape} does not match the window "
                         f"{placement.window_shape}: upsample it first")
    top, bottom, left, right = placement.crop_location
    if original_shape[0] < bottom or original_shape[1] < right:
        raise ValueError(f"the original image ({original_shape[0]}x{original_shape[1]}) does not contain the crop "
                         f"box (window_location) {placement.crop_location}")
    g = placement.geometry
    crop_rows, crop_cols = placement.cropped_shape
    cropped = np.full((crop_rows, crop_cols), fill_value, dtype=np.float32)
    # Window row i is padded-image row g.top + i, i.e. image row g.top + i - pad_top; padding has no image.
    first_row, last_row = max(g.top - g.pad_top, 0), min(g.bottom - g.pad_top, crop_rows)
    last_col = min(g.right, crop_cols)  # padding is only ever added on the right
    if last_row > first_row and last_col > g.left:
        cropped[first_row:last_row, g.left:last_col] = window_map[first_row - (g.top - g.pad_top):
                                                                  last_row - (g.top - g.pad_top),
                                                                  :last_col - g.left]
    if needs_flip(placement.view, placement.horizontal_flip):
        cropped = cropped[:, ::-1]
    original = np.full(original_shape, fill_value, dtype=np.float32)
    original[top:bottom, left:right] = cropped
    return original

