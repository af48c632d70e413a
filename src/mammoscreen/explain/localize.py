"""Localisation metrics of saliency maps against lesion masks: Dice and the pointing game.

A saliency map lives in the model's input window, cut from the cropped image after mirroring it so the
breast faces right. Everything here compares maps and lesion masks in the **original image frame**: the map
is brought to the window's size, placed back into the cropped image (undoing the window's padding and
position), un-mirrored and shifted by the crop box. Pixels of the original image that the window did not cover
get no value (NaN): the model never saw them, so they are never predicted as lesion and never the saliency
maximum.

Masks may be given in the three frames the figures accept (``preprocess.windows.align_to_window``): the
original image, the cropped image, or the model window (the official GMIC segmentation convention); they are
brought to the original frame first (:func:`mask_to_original`; a window-frame mask with the map's own inverse
mapping), so there is one metric definition whatever the masks' frame.

Two map layouts are read, told apart by their keys (:func:`map_layout`); both use the same window geometry
and the same inverse mapping (:func:`window_to_original`), they differ only in how the map reaches the
window's size (:func:`map_to_window`):

* ``gmic`` (GMIC, ``gmic_demo``): ``saliency_map`` is a low-resolution grid stretched over the whole window;
  it is upsampled bilinearly (pixel centres aligned, :func:`upsample_to_window`).
* ``glam`` (``nyu_glam``, recognised by ``saliency_map_stride``): ``saliency_map`` holds every ``s``-th pixel
  of GLAM's full-resolution map: sample ``[i, j]`` is window pixel ``(s*i, s*j)``. GLAM's map is constant on
  the ``s x s`` blocks starting at multiples of ``s`` (for the published model, ``s`` = 4), so each sample
  stands for the block ``[s*i, s*i+s) x [s*j, s*j+s)`` and the window map is the samples repeated ``s``
  times along each axis (:func:`expand_strided_map`) - exactly the full map, without interpolation.

Metrics, per class (the benign map against benign masks, the malignant map against malignant masks), over
the images that have a lesion of that class:

* Dice (DSC) ``2|P & G| / (|P| + |G|)`` of the map thresholded at ``t`` after min-max normalisation per
  image. The threshold is the one of :data:`THRESHOLD_GRID` with the highest mean Dice over the images of
  the class (reported with it), and optionally a fixed user-given threshold.
* Pointing game: whether the location of the map's maximum lies inside a lesion of that class.
* Percentile bootstrap 95% CIs over images; for the best-threshold Dice the threshold is chosen again in
  every replicate, so the interval includes the uncertainty of that choice.

See ``docs/localization.md``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from .. import __version__
from ..core.archives import load_npz
from ..core.files import write_json_atomic, write_text_atomic
from ..core.limits import InputLimitError
from ..core.paths import check_name, name_path
from ..core.stages import Failure, describe_error
from ..data.exams import VIEWS, iter_images, load_exam_list, needs_flip
from ..data.images import read_png
from ..evaluate.bootstrap import bootstrap_counts, percentile_interval
from ..preprocess.windows import WindowGeometry

__all__ = [
    "CLASSES", "THRESHOLD_GRID", "LOCALIZATION_JSON", "PER_IMAGE_CSV", "MapPlacement", "LocalizationResult",
    "MAP_LAYOUTS", "MASK_FRAMES", "map_layout", "mask_frame", "mask_to_original", "upsample_to_window",
    "expand_strided_map", "map_to_window", "window_to_original",
    "normalize_map", "dice_score", "dice_per_threshold",
    "pointing_game", "mean_with_interval", "best_threshold_dice", "read_map_file", "localize_maps",
    "format_localization",
]

CLASSES = ("benign", "malignant")
"""Channel order of ``saliency_map`` in the maps files, and the mask suffixes."""

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Thresholds tried on the min-max normalised map: 0.05, 0.10, ..., 0.95."""

LOCALIZATION_JSON = "localization.json"
PER_IMAGE_CSV = "localization_per_image.csv"
PER_IMAGE_COLUMNS = ("image", "class", "lesion_pixels", "threshold", "dice", "fixed_threshold", "dice_fixed",
                     "hit", "max_row", "max_col", "mask_frame")
MIN_IMAGES_FOR_CI = 2  # a bootstrap of one image only ever redraws that image

MAP_LAYOUTS = ("gmic", "glam")
"""The maps files :func:`read_map_file` reads (see the module docstring)."""


# ----------------------------------------------------------------------------------------------
# Coordinates: model window -> original image
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# Metrics on one image
# ----------------------------------------------------------------------------------------------

def normalize_map(saliency: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] over the values present (NaN stays NaN); a constant map gives zeros.

    Parameters
    ----------
    saliency : array of map values, NaN where there is no value.
    """
    values = np.asarray(saliency, dtype=np.float32)
    present = ~np.isnan(values)
    if not present.any():
        raise ValueError("the saliency map has no value inside the image (the window does not overlap the crop)")
    low, high = float(values[present].min()), float(values[present].max())
    if high <= low:
        return np.where(present, np.float32(0), np.float32(np.nan))
    return (values - np.float32(low)) / np.float32(high - low)


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {mask.shape}")
    return mask.astype(bool, copy=False) if mask.dtype != bool else mask


def dice_score(predicted: np.ndarray, target: np.ndarray) -> float:
    """Dice similarity coefficient 2|P & G| / (|P| + |G|) of two binary masks (1.0 when both are empty).

    Parameters
    ----------
    predicted : binary mask (non-zero = lesion).
    target : binary mask of the same shape.
    """
    predicted, target = _as_mask(predicted, "predicted"), _as_mask(target, "target")
    if predicted.shape != target.shape:
        raise ValueError(f"predicted mask {predicted.shape} and target mask {target.shape} differ in shape")
    total = int(predicted.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, target).sum()) / total


def dice_per_threshold(normalized: np.ndarray, target: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Dice of ``normalized >= t`` against ``target`` for every threshold ``t`` (NaN pixels never predicted).

    Parameters
    ----------
    normalized : map with values in [0, 1] (see :func:`normalize_map`), NaN where there is no value.
    target : binary lesion mask of the same shape.
    thresholds : thresholds in [0, 1].
    """
    normalized = np.asarray(normalized, dtype=np.float32)
    target = _as_mask(target, "target")
    if normalized.shape != target.shape:
        raise ValueError(f"map {normalized.shape} and mask {target.shape} differ in shape")
    thresholds = _check_thresholds(thresholds)
    # Sorting once gives |P| and |P & G| for every threshold by binary search instead of one pass each.
    values = np.where(np.isnan(normalized), -np.inf, normalized).ravel()
    all_sorted, in_lesion = np.sort(values), np.sort(values[target.ravel()])
    t = thresholds.astype(np.float32)
    predicted = all_sorted.size - np.searchsorted(all_sorted, t, side="left")
    overlap = in_lesion.size - np.searchsorted(in_lesion, t, side="left")
    total = predicted + in_lesion.size
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), 1.0)


def pointing_game(saliency: np.ndarray, target: np.ndarray) -> tuple[bool, tuple[int, int]]:
    """Whether the map's maximum lies inside the lesion mask, and its (row, col).

    Ties go to the first maximum in row-major order; NaN pixels are ignored.

    Parameters
    ----------
    saliency : map in the frame of ``target``, NaN where there is no value.
    target : binary lesion mask of the same shape.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    target = _as_mask(target, "target")
    if saliency.shape != target.shape:
        raise ValueError(f"map {saliency.shape} and mask {target.shape} differ in shape")
    if np.isnan(saliency).all():
        raise ValueError("the saliency map has no value inside the image (the window does not overlap the crop)")
    row, col = np.unravel_index(int(np.nanargmax(saliency)), saliency.shape)
    return bool(target[row, col]), (int(row), int(col))


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or np.isnan(t).any() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"thresholds must be a non-empty list of numbers in [0, 1], got {list(thresholds)}")
    return t


# ----------------------------------------------------------------------------------------------
# Over images: means, best threshold, bootstrap intervals
# ----------------------------------------------------------------------------------------------

def _replicate_means(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the column means of ``values`` (n_images, k): shape (n_bootstrap, k)."""
    n = values.shape[0]
    blocks = [counts @ values / n for counts in bootstrap_counts(n, n_bootstrap, np.random.RandomState(seed))]
    return np.concatenate(blocks, axis=0)


def _interval(replicates: np.ndarray | None) -> tuple[float | None, float | None]:
    if replicates is None:
        return None, None
    return percentile_interval(replicates, 0.95)


def _check_bootstrap(n_bootstrap: int, seed: int) -> None:
    for name, value in (("n_bootstrap", n_bootstrap), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def mean_with_interval(values: Sequence[float], n_bootstrap: int = 2000,
                       seed: int = 0) -> tuple[float, float | None, float | None]:
    """Mean over images with a percentile bootstrap 95% CI (None without replicates or with < 2 images).

    Parameters
    ----------
    values : one value per image.
    n_bootstrap : replicates (0: no interval).
    seed : seed of the resampling (``numpy.random.RandomState``).
    """
    _check_bootstrap(n_bootstrap, seed)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or np.isnan(v).any():
        raise ValueError("mean_with_interval needs at least one value and no NaN")
    if n_bootstrap == 0 or v.size < MIN_IMAGES_FOR_CI:
        return float(v.mean()), None, None
    low, high = _interval(_replicate_means(v[:, None], n_bootstrap, seed)[:, 0])
    return float(v.mean()), low, high


def best_threshold_dice(dice_table: np.ndarray, thresholds: Sequence[float], n_bootstrap: int = 2000,
                        seed: int = 0) -> tuple[float, float, float | None, float | None]:
    """The threshold with the highest mean Dice, that mean, and its bootstrap 95% CI.

    The threshold is chosen again in every replicate (the interval covers that choice). Ties go to the
    lowest threshold.

    Parameters
    ----------
    dice_table : (n_images, n_thresholds) Dice of each image at each threshold.
    thresholds : the thresholds of the columns.
    n_bootstrap : replicates (0: no interval).
    seed : seed of the resampling.
    """
    _check_bootstrap(n_bootstrap, seed)
    table = np.asarray(dice_table, dtype=np.float64)
    t = _check_thresholds(thresholds)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] != t.size:
        raise ValueError(f"dice_table must have shape (n_images >= 1, {t.size}), got {table.shape}")
    means = table.mean(axis=0)
    best = int(np.argmax(means))
    if n_bootstrap == 0 or table.shape[0] < MIN_IMAGES_FOR_CI:
        return float(t[best]), float(means[best]), None, None
    low, high = _interval(_replicate_means(table, n_bootstrap, seed).max(axis=1))
    return float(t[best]), float(means[best]), low, high


# ----------------------------------------------------------------------------------------------
# Reading maps and masks
# ----------------------------------------------------------------------------------------------

_PLACEMENT_KEYS = ("view", "horizontal_flip", "window_location")


class MissingPlacementError(ValueError):
    """A maps file without view/horizontal_flip/window_location, and no exam list to supply them."""


def _int_tuple(array: Any, length: int, key: str, path: Path) -> tuple[int, ...]:
    values = np.asarray(array).ravel()
    if values.size != length or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{path}: '{key}' must hold {length} numbers, got {values.tolist()}")
    return tuple(int(v) for v in values)


def map_layout(keys: Sequence[str]) -> str:
    """Which maps file the keys of an ``.npz`` make: 'glam' (``saliency_map_stride`` or GLAM's
    ``saliency_map_global``; it needs both ``saliency_map`` and ``saliency_map_stride``) or 'gmic'.

    Raises ValueError for a file with neither layout's saliency map.
    """
    keys = set(keys)
    glam = "saliency_map_stride" in keys or "saliency_map_global" in keys
    if glam and "saliency_map" not in keys:
        raise ValueError("a GLAM maps file without its high-resolution 'saliency_map'")
    if glam and "saliency_map_stride" not in keys:
        raise ValueError("a GLAM maps file without 'saliency_map_stride' (how its saliency_map was sampled)")
    if glam:
        return "glam"
    if "saliency_map" in keys:
        return "gmic"
    raise ValueError("no 'saliency_map' array - not a GMIC or GLAM maps file")


def _read_map_file(path: Path, image_info: Mapping[str, Any] | None) -> tuple[np.ndarray, MapPlacement, str]:
    try:
        arrays = load_npz(path)
    except InputLimitError:
        raise
    except Exception as e:  # a truncated or foreign file raises zipfile, numpy or OS errors
        raise ValueError(f"{path}: unreadable maps file ({describe_error(e)}); write it again with "
                         "'mammoscreen predict --save-maps'") from None
    try:
        layout = map_layout(arrays)
    except ValueError as e:
        raise ValueError(f"{path}: {e}; write it again with 'mammoscreen predict --model gmic|nyu_glam "
                         "--save-maps'") from None
    for key in ("window_borders", "window_padding", "cropped_shape"):
        if key not in arrays:
            raise ValueError(f"{path}: no '{key}' array - not a {layout.upper()} maps file from 'mammoscreen predict "
                             "--save-maps' (or a damaged one); write it again")
    saliency = np.asarray(arrays["saliency_map"], dtype=np.float32)
    if saliency.ndim != 3 or saliency.shape[0] != len(CLASSES) or 0 in saliency.shape:
        raise ValueError(f"{path}: saliency_map must have shape ({len(CLASSES)}, h, w), got {saliency.shape}; "
                         "write the file again with 'mammoscreen predict --save-maps'")
    if not np.isfinite(saliency).all():
        raise ValueError(f"{path}: saliency_map contains NaN or infinite values; write the file again with "
                         "'mammoscreen predict --save-maps' (check the model's weights if it stays so)")
    stride = None
    if layout == "glam":
        stride = _int_tuple(arrays["saliency_map_stride"], 1, "saliency_map_stride", path)[0]
        if stride < 1:
            raise ValueError(f"{path}: saliency_map_stride must be >= 1, got {stride}; write the file again")
    missing = [key for key in _PLACEMENT_KEYS if key not in arrays]
    if missing:
        if image_info is None:
            raise MissingPlacementError(f"{path}: the file has no {', '.join(missing)} (written by an older "
                                        "mammoscreen); pass the cropped exam list of the run with --exam-list "
                                        "(exam_list=...)")
        for key in missing:
            if key not in image_info:
                raise ValueError(f"{path}: the exam list has no '{key}' for this image: give the *cropped* exam "
                                 "list (cropped_exam_list.pkl or data.pkl)")
            arrays[key] = np.asarray(image_info[key])
    if "original_shape" not in arrays and image_info is not None and image_info.get("original_shape") is not None:
        arrays["original_shape"] = np.asarray(image_info["original_shape"])
    original_shape = None
    if "original_shape" in arrays:
        original_shape = _int_tuple(arrays["original_shape"], 2, "original_shape", path)
    top, bottom, left, right = _int_tuple(arrays["window_borders"], 4, "window_borders", path)
    pad_top, pad_bottom, pad_right = _int_tuple(arrays["window_padding"], 3, "window_padding", path)
    geometry = WindowGeometry(pad_top, pad_bottom, pad_right, top, bottom, left, right)
    try:
        placement = MapPlacement(geometry, str(arrays["view"]), str(arrays["horizontal_flip"]),
                                 _int_tuple(arrays["window_location"], 4, "window_location", path),
                                 _int_tuple(arrays["cropped_shape"], 2, "cropped_shape", path), original_shape,
                                 stride)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if stride is not None:
        rows, cols = placement.window_shape
        expected = (-(-rows // stride), -(-cols // stride))
        if saliency.shape[1:] != expected:
            raise ValueError(f"{path}: saliency_map of {saliency.shape[1]}x{saliency.shape[2]} samples, but every "
                             f"{stride}th pixel of the {rows}x{cols} window (window_borders) makes "
                             f"{expected[0]}x{expected[1]}: the map and its window do not belong together; write "
                             "the file again")
    return saliency, placement, layout


def read_map_file(path: str | Path, image_info: Mapping[str, Any] | None = None) -> tuple[np.ndarray, MapPlacement]:
    """The saliency maps (n_classes, h, w) of a ``predict --save-maps`` file and their :class:`MapPlacement`.

    Parameters
    ----------
    path : a GMIC or GLAM maps ``.npz`` (the layout is told from its keys, :func:`map_layout`; a GLAM file
        gives a placement with ``map_stride`` = its ``saliency_map_stride``).
    image_info : ``view``, ``horizontal_flip``, ``window_location`` and, when recorded, ``original_shape`` of
        the image (from a cropped exam list), used only for files written before the maps stored them.

    ``original_shape`` is optional: files and exam lists written before the crop stage recorded it give a
    placement without it (masks are then only checked to contain the crop box).
    """
    saliency, placement, _ = _read_map_file(Path(path), image_info)
    return saliency, placement


def _mask_path(segmentation_dir: Path, image: str, kind: str) -> Path:
    # Maps found in sub-folders of maps/ have their masks in the same sub-folders of the segmentation dir;
    # every part is a plain name, so the mask path stays inside it.
    *folders, name = image.split("/")
    return name_path(segmentation_dir.joinpath(*(check_name(f, "folder name") for f in folders)), name,
                     f"_{kind}.png", "image name")


MASK_FRAMES = ("original", "cropped", "window")
"""The frames a lesion mask may be given in, in the order they are tried when two have the same size
(:func:`mask_to_original`)."""


def _shape_text(shape: Sequence[int]) -> str:
    return f"{int(shape[0])}x{int(shape[1])}"


def mask_frame(shape: Sequence[int], placement: MapPlacement) -> str | None:
    """Which frame a mask of ``shape`` (rows, cols) is in: 'original', 'cropped', 'window' or None (none).

    Tried in this order, the first that fits wins (two frames can have the same size):

    1. 'original' - the recorded ``original_shape`` (only when recorded);
    2. 'cropped' - ``cropped_shape`` (the crop keeps the original orientation);
    3. 'window' - the window the maps were computed in (``placement.window_shape``; mirrored, padded);
    4. without a recorded ``original_shape`` (older files): 'original' for any mask that contains the crop box.
    """
    shape = (int(shape[0]), int(shape[1]))
    if placement.original_shape is not None and shape == tuple(placement.original_shape):
        return "original"
    if shape == tuple(placement.cropped_shape):
        return "cropped"
    if shape == tuple(placement.window_shape):
        return "window"
    _, bottom, _, right = placement.crop_location
    if placement.original_shape is None and shape[0] >= bottom and shape[1] >= right:
        return "original"
    return None


def mask_to_original(mask: np.ndarray, placement: MapPlacement) -> tuple[np.ndarray, str]:
    """A lesion mask in the original image frame, and the frame it was given in (:func:`mask_frame`).

    * 'original': returned as is;
    * 'cropped': placed at the crop box (``crop_location``), zeros elsewhere;
    * 'window': mapped back with the saliency map's own inverse (:func:`window_to_original`: padding dropped,
      un-mirrored, shifted by the crop box), zeros elsewhere. Lesion pixels in the window's zero padding, and
      any lesion outside the window, cannot be represented in this frame.

    The original frame is ``placement.original_shape``; when it is not recorded, the mask's own shape for an
    original-frame mask, and the smallest image holding the crop box, (bottom, right), otherwise (the map has no
    value outside the crop box, so this gives the same scores as any larger original).

    Parameters
    ----------
    mask : 2-D array, non-zero = lesion.
    placement : where the maps of the image were computed (:class:`MapPlacement`).

    Raises ValueError (with the three expected sizes) for a mask that fits no frame.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a lesion mask must be a 2-D (grey) image, got shape {mask.shape}; save it as a "
                         "single-channel PNG (non-zero = lesion)")
    mask = mask > 0
    frame = mask_frame(mask.shape, placement)
    top, bottom, left, right = placement.crop_location
    if placement.original_shape is not None:
        original_text = f"the original (uncropped) image {_shape_text(placement.original_shape)} (original_shape)"
    else:
        original_text = (f"the original (uncropped) image, at least {bottom}x{right} to contain the crop box "
                         f"(window_location) {placement.crop_location}")
    if frame is None:
        raise ValueError(f"mask of size {_shape_text(mask.shape)} matches none of the frames a mask can be in: "
                         f"{original_text}, the cropped image {_shape_text(placement.cropped_shape)} "
                         f"(cropped_shape), or the model window {_shape_text(placement.window_shape)} "
                         "(window_borders): the mask is of another image, or was resized, padded or cropped; give "
                         "it at the size and orientation of one of these frames (see docs/localization.md)")
    if frame == "original":
        return mask, frame
    original_shape = placement.original_shape if placement.original_shape is not None else (bottom, right)
    if frame == "cropped":
        original = np.zeros(original_shape, dtype=bool)
        original[top:bottom, left:right] = mask
        return original, frame
    return window_to_original(mask.astype(np.float32), placement, original_shape, fill_value=0.0) > 0, frame


def _read_mask(path: Path, placement: MapPlacement) -> tuple[np.ndarray, str]:
    mask = read_png(path)
    try:
        original, frame = mask_to_original(mask, placement)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if frame == "window" and not original.any() and mask.any():
        raise ValueError(f"{path}: a mask in the model window's frame ({_shape_text(placement.window_shape)}) whose "
                         "lesion pixels all lie in the window's zero padding, outside the image: it cannot be "
                         "placed on the image; check that the mask belongs to this image and view")
    return original, frame


# ----------------------------------------------------------------------------------------------
# The batch: a directory of maps against a directory of masks
# ----------------------------------------------------------------------------------------------

@dataclass
class ImageScore:
    """One image's localisation of one class."""

    image: str
    kind: str  # 'benign' or 'malignant'
    lesion_pixels: int
    dice_per_threshold: np.ndarray  # over THRESHOLD_GRID
    dice_fixed: float | None
    hit: bool
    max_location: tuple[int, int]  # (row, col) of the map maximum in the original image
    mask_frame: str = "original"  # the frame the mask file was in (MASK_FRAMES); scored in the original frame


@dataclass
class LocalizationResult:
    """What :func:`localize_maps` computed and wrote."""

    summary: dict[str, Any]  # the content of localization.json
    rows: list[dict[str, Any]]  # the rows of localization_per_image.csv
    skipped: list[Failure]
    n_maps: int
    json_path: Path
    csv_path: Path
    classes: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.classes = self.summary["classes"]


def _score_image(path: Path, image: str, segmentation_dir: Path, image_info: Mapping[str, Any] | None,
                 threshold: float | None) -> tuple[list[ImageScore], str]:
    mask_files = {kind: _mask_path(segmentation_dir, image, kind) for kind in CLASSES}
    if not any(p.is_file() for p in mask_files.values()):
        raise ValueError(f"no mask: neither {mask_files['benign'].name} nor {mask_files['malignant'].name} "
                         f"in {segmentation_dir}")
    saliency, placement, layout = _read_map_file(path, image_info)
    scores = []
    for channel, kind in enumerate(CLASSES):
        if not mask_files[kind].is_file():
            continue  # official convention: no file = no lesion of that class
        mask, frame = _read_mask(mask_files[kind], placement)
        if not mask.any():
            continue  # an empty mask (the synthetic data writes one per class) = no lesion
        original = window_to_original(map_to_window(saliency[channel], placement), placement, mask.shape)
        normalized = normalize_map(original)
        hit, location = pointing_game(original, mask)
        dice_fixed = None
        if threshold is not None:
            dice_fixed = float(dice_per_threshold(normalized, mask, [threshold])[0])
        scores.append(ImageScore(image, kind, int(mask.sum()), dice_per_threshold(normalized, mask, THRESHOLD_GRID),
                                 dice_fixed, hit, location, frame))
    return scores, layout


def _class_summary(scores: list[ImageScore], n_bootstrap: int, seed: int,
                   threshold: float | None) -> tuple[dict[str, Any], float | None]:
    if not scores:
        empty = {"value": None, "ci_low": None, "ci_high": None}
        return {"n_images": 0, "threshold": None, "dice": dict(empty), "pointing_game": dict(empty),
                "dice_at_fixed_threshold": None if threshold is None else {"threshold": threshold, **empty}}, None
    table = np.stack([s.dice_per_threshold for s in scores])
    best, dice, dice_low, dice_high = best_threshold_dice(table, THRESHOLD_GRID, n_bootstrap, seed)
    hits, hit_low, hit_high = mean_with_interval([float(s.hit) for s in scores], n_bootstrap, seed)
    summary = {"n_images": len(scores), "threshold": best,
               "dice": {"value": dice, "ci_low": dice_low, "ci_high": dice_high},
               "pointing_game": {"value": hits, "ci_low": hit_low, "ci_high": hit_high},
               "dice_at_fixed_threshold": None}
    if threshold is not None:
        value, low, high = mean_with_interval([s.dice_fixed for s in scores], n_bootstrap, seed)
        summary["dice_at_fixed_threshold"] = {"threshold": threshold, "value": value, "ci_low": low, "ci_high": high}
    return summary, best


def _csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def _exam_list_index(exam_list: str | Path) -> dict[str, dict[str, Any]]:
    index = {}
    for record in iter_images(load_exam_list(exam_list)):
        info = {"view": record.view, "horizontal_flip": record.horizontal_flip}
        for key in ("window_location", "original_shape"):  # absent before cropping / from older crops
            if key in record.metadata:
                info[key] = record.metadata[key]
        index[record.name] = info
    return index


def localize_maps(maps_dir: str | Path, segmentation_dir: str | Path, output_dir: str | Path, *,
                  exam_list: str | Path | None = None, n_bootstrap: int = 2000, seed: int = 0,
                  threshold: float | None = None, log: Callable[[str], None] | None = print) -> LocalizationResult:
    """Dice and pointing game of every map in ``maps_dir`` against its masks; writes localization.json and
    localization_per_image.csv to ``output_dir``.

    Parameters
    ----------
    maps_dir : the ``maps/`` directory of ``predict --save-maps`` (``<image>.npz``) of one model: GMIC
        (``gmic``, ``gmic_demo``) or GLAM (``nyu_glam``) layout, told apart by their keys (:func:`map_layout`).
    segmentation_dir : lesion masks ``<image>_benign.png`` / ``<image>_malignant.png`` (non-zero = lesion) in
        the frame of the original image, of the cropped image or of the model window (:func:`mask_frame`, tried
        in that order); a missing or empty mask means no lesion of that class.
    output_dir : where the two output files go (atomically).
    exam_list : the cropped exam list, needed only for maps files without ``view``/``window_location``
        (it also supplies ``original_shape`` to files without it, when the exam list records it).
    n_bootstrap : bootstrap replicates for the 95% CIs (0: none).
    seed : seed of the bootstrap; each class is resampled with its own generator seeded with it.
    threshold : optional fixed threshold in [0, 1] on the normalised map, reported besides the best one.
    log : receives one line per skipped file (None: silent).

    A mask whose size is none of the recorded ``original_shape``, ``cropped_shape`` and the window's is refused;
    without a recorded ``original_shape`` (older files) a mask of neither the cropped nor the window size is
    taken as an original-frame mask when it contains the crop box.
    ``map_layouts`` in localization.json counts the files of each layout that were read, ``mask_frames`` the
    scored masks per frame; the per-image CSV gives each mask's frame (``mask_frame``).
    A file that cannot be used (no mask, unreadable, wrong size, another layout than the directory's
    first readable file...) is skipped and listed with its reason
    in ``LocalizationResult.skipped`` and in localization.json; it never stops the batch.
    """
    maps_dir, segmentation_dir, output_dir = Path(maps_dir), Path(segmentation_dir), Path(output_dir)
    _check_bootstrap(n_bootstrap, seed)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a number in [0, 1] (on the min-max normalised map), got {threshold!r}")
        threshold = float(threshold)
    if not maps_dir.is_dir():
        raise FileNotFoundError(f"maps directory not found: {maps_dir} (the maps/ folder written by "
                                "'mammoscreen predict --save-maps')")
    if not segmentation_dir.is_dir():
        raise FileNotFoundError(f"segmentation directory not found: {segmentation_dir}")
    map_files = sorted(maps_dir.rglob("*.npz"))
    if not map_files:
        raise FileNotFoundError(f"no .npz maps in {maps_dir}: run 'mammoscreen predict --save-maps' first")
    image_infos = _exam_list_index(exam_list) if exam_list is not None else None
    say = log or (lambda message: None)

    scores: list[ImageScore] = []
    skipped: list[Failure] = []
    layouts: dict[str, int] = {}
    for path in map_files:
        image = path.relative_to(maps_dir).with_suffix("").as_posix()
        info = None if image_infos is None else image_infos.get(image)
        try:
            try:
                found, layout = _score_image(path, image, segmentation_dir, info, threshold)
                if layouts and layout not in layouts:
                    raise ValueError(f"{path}: a {layout.upper()} maps file among {'/'.join(layouts).upper()} maps; "
                                     "one model's maps per directory (localise each model's maps/ separately)")
                layouts[layout] = layouts.get(layout, 0) + 1
                scores.extend(found)
            except MissingPlacementError:
                if image_infos is None:
                    raise
                raise ValueError(f"{path}: the file has no view/window_location and image {image!r} is not in the "
                                 f"exam list {exam_list}") from None
        except Exception as e:  # one bad file never stops the batch; it is reported with its reason
            failure = Failure(image, describe_error(e))
            skipped.append(failure)
            say(f"skipped {failure}")

    classes, rows = {}, []
    for kind in CLASSES:
        of_class = [s for s in scores if s.kind == kind]
        classes[kind], best = _class_summary(of_class, n_bootstrap, seed, threshold)
        for s in of_class:
            best_index = THRESHOLD_GRID.index(best)
            rows.append({"image": s.image, "class": kind, "lesion_pixels": s.lesion_pixels, "threshold": best,
                         "dice": float(s.dice_per_threshold[best_index]), "fixed_threshold": threshold,
                         "dice_fixed": s.dice_fixed, "hit": int(s.hit), "max_row": s.max_location[0],
                         "max_col": s.max_location[1], "mask_frame": s.mask_frame})
    summary = {
        "tool": "mammoscreen localize", "version": __version__,
        "maps_dir": str(maps_dir), "segmentation_dir": str(segmentation_dir),
        "n_bootstrap": n_bootstrap, "seed": seed,
        "map_layouts": layouts,
        "mask_frames": {frame: sum(s.mask_frame == frame for s in scores) for frame in MASK_FRAMES},
        "normalization": "min-max per image over the pixels the window covers",
        "threshold_grid": list(THRESHOLD_GRID),
        "classes": classes,
        "n_maps": len(map_files), "n_skipped": len(skipped),
        "skipped": [{"image": f.name, "reason": f.reason} for f in skipped],
    }
    json_path, csv_path = output_dir / LOCALIZATION_JSON, output_dir / PER_IMAGE_CSV
    write_json_atomic(json_path, summary)
    write_text_atomic(csv_path, _csv_text(rows))
    return LocalizationResult(summary, rows, skipped, len(map_files), json_path, csv_path)


def format_localization(result: LocalizationResult) -> str:
    """A small text table of the per-class results (what ``mammoscreen localize`` prints)."""

    def cell(metric: Mapping[str, Any] | None) -> str:
        if metric is None or metric["value"] is None:
            return "-"
        if metric["ci_low"] is None:
            return f"{metric['value']:.3f}"
        return f"{metric['value']:.3f} ({metric['ci_low']:.3f}-{metric['ci_high']:.3f})"

    fixed = any(c["dice_at_fixed_threshold"] is not None for c in result.classes.values())
    header = ["class", "images", "threshold", "Dice (95% CI)", "pointing game (95% CI)"]
    if fixed:
        header.append("Dice at fixed threshold")
    lines = [header]
    for kind in CLASSES:
        c = result.classes[kind]
        row = [kind, str(c["n_images"]), "-" if c["threshold"] is None else f"{c['threshold']:.2f}",
               cell(c["dice"]), cell(c["pointing_game"])]
        if fixed:
            f = c["dice_at_fixed_threshold"]
            row.append(f"{cell(f)} at {f['threshold']:.2f}")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines) + "\n"
    text += f"{result.n_maps} maps, {len(result.skipped)} skipped\n"
    return text
