"""ImageMagick 6's ``auto-level`` and ``-resize WxH!`` on 16-bit greyscale images, reimplemented exactly.

The end2end model's published preprocessing is an ImageMagick step (Wand ``auto_level()`` then
``transform(resize='896x1152!')`` on a Q16, non-HDRI build). These functions reproduce it pixel for
pixel without ImageMagick:

* :func:`auto_level` - linear min/max stretch to 0..65535, ``round-half-up(65535 * ((v - min) * (1 / (max - min))))``;
  a constant image is left unchanged.
* :func:`magick_resize` - ImageMagick's two-pass separable resize: the filter is Lanczos (3-lobed
  Sinc-windowed Sinc with ImageMagick's "SincFast" polynomial) unless the image is enlarged overall
  (``x_factor * y_factor > 1``), where ImageMagick picks Mitchell; the support grows by the shrink
  factor; each output pixel's weights are normalised; the pass along the axis with the larger scale
  factor runs first, and each pass rounds to 16-bit integers.

Arithmetic follows ImageMagick's double-precision evaluation order (weights, their normalisation and
the per-pixel sums are accumulated in the same sequence), so results agree with ImageMagick bit for
bit except, very rarely, for a value that lands within rounding noise of a half-integer.
"""

from __future__ import annotations

import math

import numpy as np

QUANTUM_RANGE = 65535.0
MAGICK_EPSILON = 1.0e-12  # ImageMagick's MagickEpsilon


def _long_double(text: str) -> float:
    # ImageMagick writes these constants as long-double literals assigned to doubles; rounding through
    # long double first reproduces the compiled values on x86 (where long double is 80-bit).
    return float(np.longdouble(text))


# Coefficients of ImageMagick's SincFast approximation for Q16 builds (sinc on [-4, 4], relative error < 2.2e-8).
_SINC_FAST_Q16 = [_long_double(c) for c in (
    "0.173611107357320220183368594093166520811e-2",
    "-0.384240921114946632192116762889211361285e-3",
    "0.394201182359318128221229891724947048771e-4",
    "-0.250963301609117217660068889165550534856e-5",
    "0.111902032818095784414237782071368805120e-6",
    "-0.372895101408779549368465614321137048875e-8",
    "0.957694196677572570319816780188718518330e-10",
    "-0.187208577776590710853865174371617338991e-11",
    "0.253524321426864752676094495396308636823e-13",
    "-0.177084805010701112639035485248501049364e-15",
)]


def _sinc_fast(x: np.ndarray) -> np.ndarray:
    """ImageMagick's SincFast(x) for x >= 0, evaluated in the same order as the C code."""
    x = np.asarray(x, dtype=np.float64)
    xx = x * x
    c = _SINC_FAST_Q16
    p = c[9]
    for coefficient in reversed(c[:9]):  # c0 + xx*(c1 + xx*(... + xx*c9))
        p = coefficient + xx * p
    polynomial = (xx - 1.0) * (xx - 4.0) * (xx - 9.0) * (xx - 16.0) * p
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = math.pi * x
        trig = np.sin(alpha) / alpha
    return np.where(x > 4.0, trig, polynomial)


def _lanczos_weight(x: np.ndarray) -> np.ndarray:
    # Lanczos = SincFast filter windowed by SincFast scaled to the 3-lobe support (window scale 1/3).
    x = np.abs(x)
    return _sinc_fast(x * (1.0 / 3.0)) * _sinc_fast(x)


# Mitchell-Netravali cubic (B = C = 1/3) in ImageMagick's coefficient form.
_B = _C = 1.0 / 3.0
_MITCHELL = (1.0 - (1.0 / 3.0) * _B, -3.0 + 2 * _B + _C, 2.0 - 1.5 * _B - _C,
             (4.0 / 3.0) * _B + 4.0 * _C, -8.0 * _C - 2 * _B, _B + 5.0 * _C, (-1.0 / 6.0) * _B - _C)


def _mitchell_weight(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    c = _MITCHELL
    near = c[0] + x * (x * (c[1] + x * c[2]))
    far = c[3] + x * (c[4] + x * (c[5] + x * c[6]))
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


FILTERS = {"lanczos": (_lanczos_weight, 3.0), "mitchell": (_mitchell_weight, 2.0)}


def auto_level(image: np.ndarray) -> np.ndarray:
    """ImageMagick ``-auto-level`` of a greyscale image, returned as 16-bit (Q16) values.

    8-bit input is first scaled to the 16-bit range as ImageMagick reads it (v * 257).
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {image.shape}")
    if image.dtype == np.uint8:
        image = image.astype(np.uint16) * np.uint16(257)
    elif image.dtype != np.uint16:
        raise ValueError(f"expected uint8 or uint16 pixels, got {image.dtype}")
    low, high = float(image.min()), float(image.max())
    if abs(high - low) < MAGICK_EPSILON:
        return image.copy()
    scale = 1.0 / (high - low)
    # The stretch depends on the value only: evaluate it once per possible value and look it up.
    table = _clamp_to_quantum(QUANTUM_RANGE * (scale * (np.arange(65536, dtype=np.float64) - low)))
    return table[image]


def _clamp_to_quantum(values: np.ndarray) -> np.ndarray:
    # Non-HDRI ClampToQuantum: 0 below, 65535 above, otherwise round half up.
    out = np.floor(values + 0.5)
    out[values <= 0.0] = 0.0
    out[values >= QUANTUM_RANGE] = QUANTUM_RANGE
    return out.astype(np.uint16)


def resize_filter_name(in_shape: tuple[int, int], out_shape: tuple[int, int]) -> str:
    """The filter ImageMagick picks by default for a greyscale image: Mitchell if enlarged overall, else Lanczos."""
    x_factor = out_shape[1] / in_shape[1]
    y_factor = out_shape[0] / in_shape[0]
    return "mitchell" if x_factor * y_factor > 1.0 else "lanczos"


def contributions(in_size: int, out_size: int, filter_name: str = "lanczos") -> tuple[np.ndarray, np.ndarray]:
    """Per output pixel: the first input index and the normalised weights (zero-padded to a common length).

    Returns ``(start (out_size,), weights (out_size, taps))``: output pixel ``i`` is
    ``sum_k weights[i, k] * input[start[i] + k]``.
    """
    weight_fn, filter_support = FILTERS[filter_name]
    factor = out_size / in_size
    scale = max(1.0 / factor + MAGICK_EPSILON, 1.0)
    support = scale * filter_support
    if support < 0.5:  # too small even for nearest neighbour: point sampling
        support, scale = 0.5, 1.0
    scale = 1.0 / scale
    bisect = (np.arange(out_size, dtype=np.float64) + 0.5) / factor + MAGICK_EPSILON
    start = np.maximum(bisect - support + 0.5, 0.0).astype(np.int64)  # C truncation of non-negative values
    stop = np.minimum(bisect + support + 0.5, float(in_size)).astype(np.int64)
    count = stop - start
    taps = int(count.max())
    k = np.arange(taps)
    valid = k[None, :] < count[:, None]
    offsets = scale * ((start[:, None] + k[None, :]).astype(np.float64) - bisect[:, None] + 0.5)
    weights = np.where(valid, weight_fn(offsets), 0.0)
    # Sequential sum as ImageMagick's loop (padding zeros do not change it).
    density = np.zeros(out_size)
    for j in range(taps):
        density = density + weights[:, j]
    normalise = (density != 0.0) & (density != 1.0)
    reciprocal = np.where(np.abs(density) >= MAGICK_EPSILON, 1.0 / np.where(density == 0.0, 1.0, density),
                          np.sign(density) / MAGICK_EPSILON)
    weights = np.where(normalise[:, None], weights * reciprocal[:, None], weights)
    return start, weights


def _filter_axis(image: np.ndarray, out_size: int, axis: int, filter_name: str) -> np.ndarray:
    """One resize pass along ``axis`` of a uint16 image; sums in double, rounds to 16 bits."""
    if axis == 1:  # filter rows of the transpose: gathering whole rows is far faster than columns
        return np.ascontiguousarray(_filter_axis(np.ascontiguousarray(image.T), out_size, 0, filter_name).T)
    start, weights = contributions(image.shape[0], out_size, filter_name)
    # Zero-weight padding taps may index past the image: clamp them (their weight is exactly 0).
    last = image.shape[0] - 1
    accumulator = np.zeros((out_size, image.shape[1]), dtype=np.float64)
    for k in range(weights.shape[1]):
        accumulator += weights[:, k, None] * image[np.minimum(start + k, last), :]
    return _clamp_to_quantum(accumulator)


def magick_resize(image: np.ndarray, size: tuple[int, int], filter_name: str | None = None) -> np.ndarray:
    """ImageMagick ``-resize {cols}x{rows}!`` of a 2-D uint16 image to ``size = (rows, cols)``.

    ``filter_name`` None picks ImageMagick's default (see :func:`resize_filter_name`). An image that
    already has the requested size is returned unchanged, as ImageMagick does.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint16:
        raise ValueError(f"expected a 2-D uint16 image, got {image.dtype} with shape {image.shape}")
    rows, cols = int(size[0]), int(size[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"invalid target size {size}")
    if image.shape == (rows, cols):
        return image.copy()
    filter_name = filter_name or resize_filter_name(image.shape, (rows, cols))
    x_factor, y_factor = cols / image.shape[1], rows / image.shape[0]
    if x_factor > y_factor:  # ImageMagick filters along the less-shrunk axis first
        return _filter_axis(_filter_axis(image, cols, 1, filter_name), rows, 0, filter_name)
    return _filter_axis(_filter_axis(image, rows, 0, filter_name), cols, 1, filter_name)


__all__ = ["auto_level", "magick_resize", "resize_filter_name", "contributions"]
