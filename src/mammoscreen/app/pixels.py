"""Image pixels for the browser: 16-bit values at full resolution and at halved levels, gzip-compressed.

Browsers decode PNGs to 8 bits per channel, so window/level on a 16-bit mammogram needs the raw values:
the server sends each level as little-endian uint16 (``Content-Encoding: gzip``, which the browser undoes)
and the viewer maps them to grey levels on a canvas. Level 0 is the full image; level k halves level k-1
(area average) until the longer side is at most :data:`SMALLEST_LEVEL` pixels. Files are read from the
study's image directory by the name recorded at study creation and checked against the recorded SHA-256
before use, so an image replaced after the study was created is refused rather than shown.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from ..data.images import ImageFileError
from .errors import StudyError

SMALLEST_LEVEL = 512
DEFAULT_CACHE_BYTES = 384 << 20
MAX_IMAGE_BYTES = 512 << 20  # a PNG larger than this is refused (a mammogram is < 50 MB)


def level_shapes(rows: int, cols: int) -> list[tuple[int, int]]:
    """(rows, cols) of every level, full resolution first."""
    shapes = [(int(rows), int(cols))]
    while max(shapes[-1]) > SMALLEST_LEVEL:
        r, c = shapes[-1]
        shapes.append(((r + 1) // 2, (c + 1) // 2))
    return shapes


def build_levels(array: np.ndarray) -> list[np.ndarray]:
    """The image at every level (uint16)."""
    array = np.ascontiguousarray(array, dtype=np.uint16)
    levels = [array]
    for rows, cols in level_shapes(*array.shape)[1:]:
        levels.append(cv2.resize(levels[-1], (cols, rows), interpolation=cv2.INTER_AREA))
    return levels


def safe_image_file(images_dir: Path, name: str) -> Path:
    """``images_dir/<name>.png``, refusing names that would leave the directory (exam lists are untrusted)."""
    if not name or "\x00" in name or "/" in name or "\\" in name or name.startswith(".") or Path(name).is_absolute():
        raise StudyError(f"image name {name!r} in the exam list is not a plain file name; exam lists name images "
                         "without directories or extensions")
    path = images_dir / f"{name}.png"
    if path.resolve().parent != images_dir.resolve():
        raise StudyError(f"image {name!r} resolves outside the image directory {images_dir}")
    return path


def decode_image(data: bytes, source: str) -> np.ndarray:
    """A greyscale 8- or 16-bit PNG from bytes, as uint16."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ImageFileError(f"{source}: not a PNG file")
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise ImageFileError(f"{source}: not a readable PNG")
    if array.ndim != 2:
        raise ImageFileError(f"{source}: a colour image; mammograms must be single-channel (greyscale) PNGs")
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"{source}: unsupported pixel type {array.dtype}")
    return array.astype(np.uint16, copy=False)


def read_file_checked(path: Path, sha256: str | None = None) -> tuple[bytes, str]:
    """The bytes of ``path`` and their SHA-256, checked against ``sha256`` when given."""
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageFileError(f"{path}: file not found") from None
    if size > MAX_IMAGE_BYTES:
        raise ImageFileError(f"{path}: {size} bytes - larger than any mammogram PNG ({MAX_IMAGE_BYTES} allowed)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ImageFileError(f"{path}: the file changed after the study was created (SHA-256 differs); put the "
                             "original back - a study must show the images it was created with")
    return data, digest


def default_window(array: np.ndarray) -> tuple[float, float]:
    """A starting window: the 0.5th to 99.5th percentile of the non-background pixels."""
    values = array[array > 0] if (array > 0).any() else array.ravel()
    if values.size > 1_000_000:
        values = values[:: values.size // 1_000_000]
    low, high = np.percentile(values, [0.5, 99.5])
    if high <= low:
        high = low + 1
    return float(low), float(high)


def gzip_bytes(array: np.ndarray) -> bytes:
    return gzip.compress(np.ascontiguousarray(array, dtype="<u2").tobytes(), compresslevel=1, mtime=0)


class PixelCache:
    """Compressed levels of recently viewed images, bounded in bytes (least recently used dropped first)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def get(self, image_id: int, level: int, path: Path, sha256: str) -> bytes:
        """Level ``level`` of image ``image_id`` (file ``path``), gzip-compressed uint16."""
        key = (image_id, level)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            loading = self._loading.setdefault(image_id, threading.Lock())
        with loading:  # one decode per image even when several panels ask at once
            with self._lock:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            data, _ = read_file_checked(path, sha256)
            levels = [gzip_bytes(a) for a in build_levels(decode_image(data, str(path)))]
            with self._lock:
                for k, blob in enumerate(levels):
                    if (image_id, k) not in self._entries:
                        self._entries[(image_id, k)] = blob
                        self._bytes += len(blob)
                while self._bytes > self.max_bytes and len(self._entries) > 1:
                    _, dropped = self._entries.popitem(last=False)
                    self._bytes -= len(dropped)
                self._loading.pop(image_id, None)
            if level >= len(levels):
                raise IndexError(level)
            return levels[level]


def overlay_png(saliency: np.ndarray, rows: int, cols: int, max_side: int = 1024) -> bytes:
    """An 8-bit PNG of a saliency map in the original image frame: 255 x the map's value (NaN: not covered -> 0).

    GMIC's and GLAM's maps are pixel-level probabilities in [0, 1]; they are shown on that absolute scale (not
    stretched per image), so a map of a normal breast stays faint. The map is stored at most ``max_side``
    pixels on its longer side; the viewer stretches it over the image.
    """
    values = np.asarray(saliency, dtype=np.float32)
    out = np.where(np.isfinite(values), np.clip(values, 0.0, 1.0), 0.0).astype(np.float32)
    scale = min(1.0, max_side / max(rows, cols))
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    small = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    ok, buffer = cv2.imencode(".png", np.clip(np.rint(small * 255), 0, 255).astype(np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buffer.tobytes()
