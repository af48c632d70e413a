"""From a cropped mammogram to a model input: flip, input window around the best centre, standardise.

This reproduces the official NYU data pipeline (``random_augmentation_best_center`` and
``standard_normalize_single_image``), including its random-number draw order, so that the same
``numpy.random.RandomState`` seed gives the same windows as the official code:

1. if any crop (position) noise is allowed, draw 2 uniforms in [-1, 1) for it;
2. place the window of the model's input size around ``best_center``; images smaller than the window
   plus the noise margin are zero-padded (CC: split top/bottom, MLO: bottom only; columns: right only);
   the window is shifted inside the (padded) image; the position noise is applied;
3. always draw 4 uniforms for the size noise of each border (even when the size noise is 0, as at
   test time), apply it, and resize the window back to the input size with bicubic interpolation if
   its size changed.

At test time there is no noise and the window is a plain (padded) slice of the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..data.exams import ImageRecord, needs_flip, view_angle


def flip_to_face_right(image: np.ndarray, view: str, horizontal_flip: str) -> np.ndarray:
    """Mirror the image left-right if needed so that the breast faces right (a view, no copy)."""
    return image[:, ::-1] if needs_flip(view, horizontal_flip) else image


@dataclass(frozen=True)
class WindowGeometry:
    """Where the input window lies: padding added to the image, then the window in the padded image."""

    pad_top: int
    pad_bottom: int
    pad_right: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def borders(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) in the padded image; bottom and right exclusive."""
        return self.top, self.bottom, self.left, self.right

    def to_image(self, rows: np.ndarray, cols: np.ndarray, window: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Map window pixel coordinates to coordinates in the (flipped, cropped) image."""
        scale_r = (self.bottom - self.top) / window[0]
        scale_c = (self.right - self.left) / window[1]
        return (np.asarray(rows) * scale_r + self.top - self.pad_top,
                np.asarray(cols) * scale_c + self.left)


def _pad_and_align(image_size: int, input_size: int, noise: int, both_sides: bool) -> tuple[int, int, int, int]:
    """(start, end, pad_front, pad_back) for an axis shorter than the window plus its noise margin."""
    pad_width = input_size - image_size + noise * (2 if both_sides else 1)
    if both_sides:
        pad_front, start = int(pad_width / 2), noise
    else:
        pad_front, start = 0, 0
    return start, start + input_size, pad_front, pad_width - pad_front


def _shift_inside(start: int, end: int, size: int, input_size: int) -> tuple[int, int]:
    if start < 0:
        return 0, input_size
    if end > size:
        return size - input_size, size
    return start, end


def window_geometry(image_shape: tuple[int, int], window: tuple[int, int], center: tuple[int, int], view: str,
                    rng: np.random.RandomState | None = None, max_crop_noise: tuple[int, int] = (0, 0),
                    max_crop_size_noise: int = 0) -> WindowGeometry:
    """Place the input window on an image as the official pipeline does (see the module docstring).

    ``rng`` is needed only to reproduce the official random draws; without it the test-time (no noise)
    window is computed without drawing.
    """
    height, width = image_shape
    win_h, win_w = window
    crop_noise = np.array(max_crop_noise)
    if rng is None and (crop_noise.any() or max_crop_size_noise):
        raise ValueError("window noise needs a random number generator (rng)")
    multiplier = np.zeros(2, dtype=np.float32)
    if crop_noise.any():
        multiplier = rng.uniform(low=-1.0, high=1.0, size=2)

    cy, cx = int(center[0]), int(center[1])
    top, bottom = cy - win_h // 2, cy + win_h - win_h // 2
    left, right = cx - win_w // 2, cx + win_w - win_w // 2

    pad_top = pad_bottom = pad_right = 0
    angle = view_angle(view)
    noise_y = int(crop_noise[0]) + max_crop_size_noise
    if angle == "CC":
        if height < win_h + noise_y * 2:
            top, bottom, pad_top, pad_bottom = _pad_and_align(height, win_h, noise_y, True)
    elif angle == "MLO":
        if height < win_h + noise_y:
            top, bottom, _, pad_bottom = _pad_and_align(height, win_h, noise_y, False)
    else:
        raise ValueError(f"unknown view {view!r}")
    noise_x = int(crop_noise[1]) + max_crop_size_noise
    if width < win_w + noise_x:
        left, right, _, pad_right = _pad_and_align(width, win_w, noise_x, False)

    padded_h, padded_w = height + pad_top + pad_bottom, width + pad_right
    top, bottom = _shift_inside(top, bottom, padded_h, win_h)
    left, right = _shift_inside(left, right, padded_w, win_w)

    # Position noise may only move the window where there is room.
    if top == 0:
        multiplier[0] = np.abs(multiplier[0])
    elif bottom == padded_h:
        multiplier[0] = -np.abs(multiplier[0])
    if left == 0:
        multiplier[1] = np.abs(multiplier[1])
    elif right == padded_w:
        multiplier[1] = -np.abs(multiplier[1])
    vertical_room = padded_h - bottom if multiplier[0] >= 0 else top
    horizontal_room = padded_w - right if multiplier[1] >= 0 else left
    crop_noise = np.minimum(crop_noise, [vertical_room, horizontal_room])
    shift = np.round(crop_noise * multiplier)
    borders = np.array((top, bottom, left, right), dtype=np.int32)
    borders = borders + np.array((shift[0], shift[0], shift[1], shift[1]), dtype=np.int32)

    # Size noise: 4 draws, always (the official code draws them even when the noise is zero).
    if rng is not None:
        size_multiplier = rng.uniform(low=-1.0, high=1.0, size=4)
    else:
        size_multiplier = np.zeros(4)
    size_noise = min(max_crop_size_noise, borders[0], padded_h - borders[1], borders[2], padded_w - borders[3])
    if win_h >= win_w:
        noise_v, noise_h = size_noise, np.round(size_noise * (win_w / win_h))
    else:
        noise_v, noise_h = np.round(size_noise * (win_h / win_w)), size_noise
    max_size_noise = np.array((noise_v, noise_v, noise_h, noise_h), dtype=np.int32)
    borders = borders + np.array(np.round(max_size_noise * size_multiplier), dtype=np.int32)

    t, b, l, r = (int(v) for v in borders)
    if not (0 <= t < b <= padded_h and 0 <= l < r <= padded_w):
        raise ValueError(f"window {borders.tolist()} falls outside the padded image {padded_h}x{padded_w}")
    return WindowGeometry(pad_top, pad_bottom, pad_right, t, b, l, r)


def extract_window(image: np.ndarray, geometry: WindowGeometry, window: tuple[int, int]) -> np.ndarray:
    """Cut the window out of the (virtually zero-padded) image, resizing bicubically if its size differs.

    ``image`` is 2-D (H, W) or 3-D (H, W, C) with auxiliary channels (e.g. heatmaps) that follow the
    same window. The result is a new float32 array.
    """
    image = np.asarray(image)
    g = geometry
    out_h, out_w = g.bottom - g.top, g.right - g.left
    out = np.zeros((out_h, out_w) + image.shape[2:], dtype=np.float32)
    # Window rows in image coordinates (the padded image has pad_top extra rows above).
    src_top, src_bottom = g.top - g.pad_top, g.bottom - g.pad_top
    r0, r1 = max(src_top, 0), min(src_bottom, image.shape[0])
    c0, c1 = g.left, min(g.right, image.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - src_top:r1 - src_top, c0 - g.left:c1 - g.left] = image[r0:r1, c0:c1]
    if (out_h, out_w) != tuple(window):
        resized = cv2.resize(out, (window[1], window[0]), interpolation=cv2.INTER_CUBIC)
        out = resized.reshape((window[0], window[1]) + image.shape[2:])
    return out


def standardize(image: np.ndarray) -> np.ndarray:
    """Per-image standardisation of the official test-time pipeline: (x - mean) / max(std, 1e-5).

    Computed in float32 with numpy's reductions, in the same order as the official code, so the result
    is bit-identical to it.
    """
    out = np.array(image, dtype=np.float32, copy=True)
    out -= np.mean(out)
    out /= np.maximum(np.std(out), 10 ** (-5))
    return out


def model_input(cropped: np.ndarray, view: str, horizontal_flip: str, best_center: tuple[int, int],
                window: tuple[int, int]) -> np.ndarray:
    """The official test-time GMIC input for one cropped image: flip, window (no noise), standardise."""
    image = flip_to_face_right(cropped, view, horizontal_flip)
    geometry = window_geometry(image.shape, window, best_center, view)
    return standardize(extract_window(image, geometry, window))


def align_to_window(array: np.ndarray, view: str, horizontal_flip: str, geometry: WindowGeometry,
                    window: tuple[int, int], cropped_shape: tuple[int, int],
                    crop_location: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Bring an image-aligned array (e.g. a lesion mask) into the model's input window.

    The array may already be in window coordinates (the official GMIC segmentation convention), be
    aligned with the cropped image, or with the original image (then ``crop_location``, the image's
    ``window_location``, is needed to crop it).
    """
    shape = tuple(array.shape[:2])
    if shape == tuple(cropped_shape):
        aligned = array
    elif shape == tuple(window):
        return np.asarray(array, dtype=np.float32)
    elif crop_location is not None and shape[0] >= crop_location[1] and shape[1] >= crop_location[3]:
        top, bottom, left, right = crop_location
        aligned = array[top:bottom, left:right]
    else:
        raise ValueError(f"array of shape {shape} matches neither the window {tuple(window)}, the cropped image "
                         f"{tuple(cropped_shape)} nor the original image")
    return extract_window(flip_to_face_right(aligned, view, horizontal_flip), geometry, window)


@dataclass(frozen=True)
class ImageOrigin:
    """Where a cropped image came from: what a window-aligned map needs, besides its :class:`WindowGeometry`,
    to be mapped back onto the original image (``explain/localize/``)."""

    view: str
    horizontal_flip: str
    crop_location: tuple[int, int, int, int] | None = None  # the exam list's window_location, if any
    original_shape: tuple[int, int] | None = None  # the exam list's original_shape (absent from older crops)

    @classmethod
    def of(cls, record: ImageRecord) -> "ImageOrigin":
        """The origin recorded in a (cropped) exam list's image record."""
        crop_location = record.metadata.get("window_location")
        original_shape = record.metadata.get("original_shape")
        return cls(record.view, record.horizontal_flip,
                   None if crop_location is None else tuple(int(v) for v in crop_location),
                   None if original_shape is None else tuple(int(v) for v in original_shape))


def placement_arrays(geometry: WindowGeometry, cropped_shape: tuple[int, int],
                     origin: ImageOrigin) -> dict[str, np.ndarray]:
    """The arrays a maps ``.npz`` stores so that its maps can be placed on the original image.

    ``window_borders`` (top, bottom, left, right of the window in the padded, mirrored, cropped image),
    ``window_padding`` (pad_top, pad_bottom, pad_right), ``cropped_shape``, ``view``, ``horizontal_flip``, and
    when the exam list has them ``window_location`` (the crop box (top, bottom, left, right) in the original
    image) and ``original_shape`` (rows, cols of the original image).
    """
    g = geometry
    arrays = {
        "window_borders": np.array(g.borders, dtype=np.int64),
        "window_padding": np.array((g.pad_top, g.pad_bottom, g.pad_right), dtype=np.int64),
        "cropped_shape": np.array(tuple(cropped_shape), dtype=np.int64),
        "view": np.array(origin.view),
        "horizontal_flip": np.array(origin.horizontal_flip),
    }
    if origin.crop_location is not None:
        arrays["window_location"] = np.array(origin.crop_location, dtype=np.int64)
    if origin.original_shape is not None:
        arrays["original_shape"] = np.array(origin.original_shape, dtype=np.int64)
    return arrays
