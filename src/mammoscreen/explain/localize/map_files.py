"""Reading what localisation compares: the ``.npz`` maps files of ``predict --save-maps`` (GMIC and GLAM
layouts) with where their window sits, and the lesion masks in any of the three frames, brought to the original
image frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...core.stages import describe_error
from ...core.archives import load_npz
from ...core.limits import InputLimitError
from ...core.paths import check_name, name_path
from ...data.images import read_png
from ...preprocess.windows import WindowGeometry
from .geometry import MapPlacement, window_to_original

__all__ = ["CLASSES", "MAP_LAYOUTS", "MASK_FRAMES", "MissingPlacementError", "map_layout", "read_map_file",
           "mask_frame", "mask_to_original"]

CLASSES = ("benign", "malignant")
"""Channel order of ``saliency_map`` in the maps files, and the mask suffixes."""

MAP_LAYOUTS = ("gmic", "glam")
"""The maps files :func:`read_map_file` reads (see the module docstring)."""

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
