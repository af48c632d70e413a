"""Mammogram image files: single-channel PNGs, 16-bit as the NYU models expect.

Reading checks what most often goes silently wrong with converted mammograms — colour or palette
PNGs, 8-bit files — and says so, naming the file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ..core.files import atomic_write
from ..core.limits import InputLimitError, check_pixels
from ..core.paths import name_path

# Decompression bombs are refused by mammoscreen's own check of the declared size, made from the header
# before any pixel is decoded (core.limits.max_pixels, --max-pixels); Pillow's guard, which warns at a
# fixed size and cannot be configured per command, is left to it.
Image.MAX_IMAGE_PIXELS = None


class ImageFileError(OSError):
    """An image file is missing, unreadable or not a single-channel mammogram."""


class EightBitImageWarning(UserWarning):
    """A mammogram was stored with 8 bits per pixel; the models expect 16-bit PNGs."""


def image_path(directory: str | Path, name: str) -> Path:
    """Path of the PNG for image ``name`` (no extension, as in exam lists) in ``directory``.

    ``name`` must be a plain file name (:func:`mammoscreen.core.paths.check_name`): it cannot lead outside
    ``directory``.
    """
    return name_path(directory, name, ".png", what="image name")


def image_size(path: str | Path) -> tuple[int, int]:
    """(rows, cols) an image file declares in its header, refused beyond the pixel limit; nothing decoded."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageFileError(f"{path}: not a readable image ({e})") from None
    try:
        check_pixels(height, width, str(path))
    except InputLimitError as e:
        raise ImageFileError(str(e)) from None
    return height, width


def read_png(path: str | Path) -> np.ndarray:
    """Read a single-channel PNG as a 2-D uint16 (16-bit) or uint8 (8-bit) array.

    Raises :class:`ImageFileError` for missing, unreadable, colour or palette images.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            if img.format != "PNG":  # e.g. a JPEG renamed .png: say what it is, not "an 8-bit PNG"
                raise ImageFileError(
                    f"{path}: a {img.format or 'non-PNG'} file with a .png name, not a PNG; mammograms must be "
                    "16-bit PNGs - convert the original DICOM with 'mammoscreen convert-dicom'")
            width, height = img.size
            check_pixels(height, width, str(path))  # before a single pixel is decoded
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "L", "1"):
                array = np.asarray(img)
            elif mode in ("LA", "La"):
                raise ImageFileError(f"{path}: grey+alpha PNG; save the mammogram as a single-channel PNG")
            else:
                raise ImageFileError(
                    f"{path}: {mode} image; mammograms must be single-channel (greyscale) PNGs, "
                    "16-bit for the NYU models - convert with 'mammoscreen convert-dicom' or save the "
                    "greyscale pixel data directly")
    except InputLimitError as e:
        raise ImageFileError(str(e)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, ImageFileError):
            raise
        raise ImageFileError(f"{path}: not a readable PNG ({e})") from None
    if array.ndim != 2:
        raise ImageFileError(f"{path}: expected a 2-D image, got shape {array.shape}")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype.kind in "iu" and array.dtype.itemsize > 2:
        if array.min() < 0 or array.max() > 65535:
            raise ImageFileError(f"{path}: pixel values outside the 16-bit range")
        array = array.astype(np.uint16)
    elif array.dtype.byteorder == ">":
        array = array.astype(np.uint16)
    return array


def read_mammogram(path: str | Path) -> np.ndarray:
    """Read a mammogram PNG; warns (:class:`EightBitImageWarning`) if it is only 8-bit."""
    array = read_png(path)
    if array.dtype == np.uint8:
        warnings.warn(f"{path}: 8-bit PNG; the NYU models were trained on 16-bit images (12-bit values "
                      "rescaled to 16 bits). Predictions on 8-bit data may be unreliable.",
                      EightBitImageWarning, stacklevel=2)
    return array


def encode_png(array: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of a 2-D uint8/uint16 array (greyscale, bit depth kept).

    zlib level 1 with the run-length strategy: on mammograms about as small as the default settings
    and several times faster to write (encoding dominates the crop stage otherwise).
    """
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected uint8 or uint16 pixels, got {array.dtype}")
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(array),
                              [cv2.IMWRITE_PNG_COMPRESSION, compress_level,
                               cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()


def write_png(path: str | Path, array: np.ndarray, compress_level: int = 1) -> None:
    """Write a 2-D uint8/uint16 array as a greyscale PNG atomically, keeping its bit depth."""
    data = encode_png(array, compress_level)
    with atomic_write(path, "wb") as f:
        f.write(data)
