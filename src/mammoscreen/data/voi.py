"""Grey-level transforms between DICOM pixel data and the 16-bit PNGs the NYU models read.

Plain functions over integer arrays, each with an explicit input and output range so no step ever
depends on the image content (except :func:`minmax_scale`, which is chosen explicitly):

* :func:`apply_window` — the DICOM VOI window (LINEAR, LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2)
  onto ``0 .. 2**bits - 1``;
* :func:`minmax_scale` — the image's own minimum and maximum onto ``0 .. 2**bits - 1``;
* :func:`invert` — MONOCHROME1 to MONOCHROME2 over the fixed range ``0 .. 2**bits - 1``
  (``2**bits - 1 - x``; never ``max(x) - x``, which would shift every image by a different amount);
* :func:`rescale_to_16bit` — the meta-repository's conversion of ``bits``-bit values to the full
  16-bit range, ``round(x * 65535 / (2**bits - 1))`` (what ``png.Writer(bitdepth=12)`` stores).

Rounding is half up (``floor(y + 0.5)``) wherever a real value becomes an integer.
"""

from __future__ import annotations

import numpy as np

MAX_BITS = 16


def _check_bits(bits: int) -> int:
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bit depth must be an integer from 1 to {MAX_BITS}, got {bits!r}")
    return int(bits)


def round_half_up(values: np.ndarray) -> np.ndarray:
    """Nearest integer, halves rounded up (int64)."""
    return np.floor(np.asarray(values, dtype=np.float64) + 0.5).astype(np.int64)


def check_range(values: np.ndarray, bits: int, what: str) -> None:
    """Raise ValueError if ``values`` fall outside ``0 .. 2**bits - 1``."""
    top = (1 << _check_bits(bits)) - 1
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > top:
        raise ValueError(f"{what} span {lo}..{hi}, outside the {bits}-bit range 0..{top}")


def rescale_to_16bit(values: np.ndarray, bits: int) -> np.ndarray:
    """``round(x * 65535 / (2**bits - 1))`` as uint16, exactly (integer arithmetic).

    ``2**bits - 1`` is odd, so the exact quotient is never a half and the rounding is unambiguous.
    """
    bits = _check_bits(bits)
    values = np.asarray(values)
    check_range(values, bits, "values")
    if bits == 16:
        return values.astype(np.uint16)
    top = (1 << bits) - 1
    scaled = (values.astype(np.int64) * (2 * 65535) + top) // (2 * top)
    return scaled.astype(np.uint16)


def invert(values: np.ndarray, bits: int) -> np.ndarray:
    """MONOCHROME1 -> MONOCHROME2 over the fixed range: ``2**bits - 1 - x`` (int64)."""
    bits = _check_bits(bits)
    values = np.asarray(values, dtype=np.int64)
    check_range(values, bits, "values to invert")
    return ((1 << bits) - 1) - values


def apply_window(values: np.ndarray, center: float, width: float, bits: int,
                 function: str = "LINEAR") -> np.ndarray:
    """The DICOM VOI window onto ``0 .. 2**bits - 1`` (int64).

    Parameters
    ----------
    values : modality-LUT output values.
    center, width : Window Center (0028,1050) and Window Width (0028,1051).
    bits : output bit depth.
    function : VOI LUT Function (0028,1056): LINEAR (default), LINEAR_EXACT or SIGMOID.
    """
    bits = _check_bits(bits)
    x = np.asarray(values, dtype=np.float64)
    y_max = float((1 << bits) - 1)
    function = (function or "LINEAR").upper()
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"Window Width must be >= 1 for the LINEAR function, got {width}")
        low = center - 0.5 - (width - 1) / 2
        high = center - 0.5 + (width - 1) / 2
        if width == 1:  # a threshold: the standard's formula divides by width - 1
            y = np.where(x <= low, 0.0, y_max)
        else:
            y = ((x - (center - 0.5)) / (width - 1) + 0.5) * y_max
            y = np.where(x <= low, 0.0, np.where(x > high, y_max, y))
    elif function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"Window Width must be > 0 for LINEAR_EXACT, got {width}")
        y = ((x - center) / width + 0.5) * y_max
        y = np.where(x <= center - width / 2, 0.0, np.where(x > center + width / 2, y_max, y))
    elif function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"Window Width must be > 0 for SIGMOID, got {width}")
        y = y_max / (1 + np.exp(-4 * (x - center) / width))
    else:
        raise ValueError(f"unknown VOI LUT Function {function!r} (expected LINEAR, LINEAR_EXACT or SIGMOID)")
    return np.clip(round_half_up(y), 0, int(y_max))


def minmax_scale(values: np.ndarray, bits: int) -> np.ndarray:
    """The image's minimum..maximum onto ``0 .. 2**bits - 1`` (int64); content-dependent by design."""
    bits = _check_bits(bits)
    x = np.asarray(values, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        raise ValueError(f"the image is constant ({lo:g}); min-max scaling needs at least two grey levels")
    return round_half_up((x - lo) * (((1 << bits) - 1) / (hi - lo)))
