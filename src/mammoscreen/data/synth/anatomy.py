"""The breast itself: outline, skin, fibroglandular texture and pectoral muscle of one synthetic view.

Everything is drawn in the *canonical* orientation — chest wall on the left edge, nipple pointing
right — and mirrored later for right-breast views. Smooth quantities (tissue density, skin band,
muscle) are computed on a grid of ``COARSE_MM`` spacing and upsampled once, which
keeps a full-size 4-view exam well under a second; only the outline, noise and lesions are drawn at
full resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import scipy.fft

COARSE_MM = 0.45
"""Spacing of the grid on which the smooth tissue fields are computed, in millimetres."""


def coarse_factor(pixel_mm: float) -> int:
    """How many image pixels one coarse-grid pixel spans (at least 2: noise adds the finest detail)."""
    return max(2, round(COARSE_MM / pixel_mm))


@dataclass(frozen=True)
class BreastShape:
    """Outline of one view in canonical orientation, as the breast's extent per image row."""

    edge: np.ndarray  # (rows,) float: the breast covers columns [0, edge[y]) of row y; 0 = no breast
    nipple: tuple[float, float]  # (row, col) of the most anterior skin point
    pectoral: tuple[float, float] | None  # MLO only: (height on the chest wall, width on the top edge)

    @property
    def depth(self) -> float:
        """Distance from the chest wall to the nipple, in pixels."""
        return self.nipple[1]


def power_law_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Gaussian noise with an isotropic power spectrum ~ 1/f**beta, zero mean, unit std (float32).

    Mammographic parenchyma has beta close to 3 (Burgess et al.); smaller beta gives finer texture.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    spectrum = scipy.fft.rfft2(white, workers=1)
    fy = scipy.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    freq = np.sqrt(fy * fy + fx * fx)
    freq[0, 0] = 1.0  # the mean is removed below; avoid dividing by zero
    spectrum *= freq ** (-beta / 2)
    spectrum[0, 0] = 0
    field = scipy.fft.irfft2(spectrum, s=shape, workers=1).astype(np.float32)
    field /= max(float(field.std()), 1e-12)
    return field


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def cc_shape(rng: np.random.Generator, height: int, width: int) -> BreastShape:
    """A cranio-caudal outline: a superellipse-like mound against the chest wall."""
    nipple_row = height * rng.uniform(0.42, 0.56)
    depth = width * rng.uniform(0.50, 0.68)
    top = nipple_row - height * rng.uniform(0.30, 0.40)  # where the outline meets the chest wall
    bottom = nipple_row + height * rng.uniform(0.30, 0.40)
    power = rng.uniform(1.8, 2.6)
    rows = np.arange(height, dtype=np.float64)
    t = np.where(rows < nipple_row, (nipple_row - rows) / (nipple_row - top),
                 (rows - nipple_row) / (bottom - nipple_row))
    edge = depth * np.clip(1 - np.abs(t) ** power, 0, None) ** (1 / power)
    edge *= 1 + _wobble(rng, rows / height, 0.03)
    return BreastShape(edge, (float(nipple_row), float(edge.max())), None)


def mlo_shape(rng: np.random.Generator, height: int, width: int) -> BreastShape:
    """A medio-lateral oblique outline: axillary tissue at the top, the breast mound, the fold below."""
    nipple_row = height * rng.uniform(0.50, 0.62)
    depth = width * rng.uniform(0.55, 0.72)
    fold = min(height - 1.0, nipple_row + height * rng.uniform(0.28, 0.36))  # inframammary fold
    top_width = width * rng.uniform(0.28, 0.42)
    rows = np.arange(height, dtype=np.float64)
    upper = top_width + (depth - top_width) * np.sin(np.pi / 2 * np.clip(rows / nipple_row, 0, 1)) ** 1.6
    t = np.clip((rows - nipple_row) / (fold - nipple_row), 0, 1)
    power = rng.uniform(1.8, 2.4)
    lower = depth * np.clip(1 - t ** power, 0, None) ** (1 / power)
    edge = np.where(rows < nipple_row, upper, lower)
    edge *= 1 + _wobble(rng, rows / height, 0.025)
    pectoral_height = height * rng.uniform(0.40, 0.55)
    pectoral_width = top_width * rng.uniform(0.75, 0.95)
    return BreastShape(edge, (float(nipple_row), float(edge.max())), (pectoral_height, pectoral_width))


def _wobble(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A few low-frequency sinusoids: keeps every outline slightly irregular."""
    out = np.zeros_like(t)
    for k in range(2, 5):
        out += rng.normal(0, amplitude / k) * np.sin(2 * np.pi * k * t + rng.uniform(0, 2 * np.pi))
    return out


def breast_mask(shape: BreastShape, width: int) -> np.ndarray:
    """Full-resolution boolean mask of the breast (True inside)."""
    return np.arange(width, dtype=np.float32)[None, :] < shape.edge.astype(np.float32)[:, None]


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Distance to the skin in pixels: positive inside the breast, negative outside (float32).

    Image borders do not count as skin: the chest wall is not a boundary of the breast.
    """
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    inside = cv2.distanceTransform(m, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - m, cv2.DIST_L2, 5)
    return inside - outside


def pectoral_side(shape: BreastShape, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Signed distance (pixels) from the pectoral muscle line; positive inside the muscle."""
    if shape.pectoral is None:
        return np.full(np.broadcast(rows, cols).shape, -1e6, dtype=np.float32)
    h, w = shape.pectoral
    # Line through (h, 0) on the chest wall and (0, w) on the top edge: rows/h + cols/w = 1.
    norm = np.hypot(1 / h, 1 / w)
    return ((1 - rows / h - cols / w) / norm).astype(np.float32)


@dataclass(frozen=True)
class TissueParams:
    """Grey levels (12-bit) and density of one breast; shared by its CC and MLO views."""

    fat: float
    gland: float
    density: float  # 0 (fatty) .. 1 (extremely dense)
    muscle: float
    skin: float


def tissue_params(rng: np.random.Generator) -> TissueParams:
    """Draw the grey levels of one breast: fatty to dense, within the 12-bit range."""
    density = float(rng.beta(2.0, 2.2))
    fat = rng.uniform(850, 1250)
    gland = fat + rng.uniform(1200, 1700)
    return TissueParams(fat=float(fat), gland=float(gland), density=density,
                        muscle=float(gland + rng.uniform(-100, 250)), skin=float(gland + rng.uniform(100, 400)))


def tissue_image(rng: np.random.Generator, shape: BreastShape, tissue: TissueParams, height: int, width: int,
                 pixel_mm: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Grey levels of the breast at full resolution (float32, values outside the breast are arbitrary).

    Returns (image, distance_to_skin, fibroglandular fraction): the first two full resolution, the last
    the mean glandular fraction over the breast (what a density assessment judges).
    """
    factor = coarse_factor(pixel_mm)
    ch, cw = -(-height // factor), -(-width // factor)
    rows = (np.arange(ch, dtype=np.float32)[:, None] + 0.5) * factor - 0.5
    cols = (np.arange(cw, dtype=np.float32)[None, :] + 0.5) * factor - 0.5
    coarse_edge = np.interp(rows[:, 0], np.arange(height), shape.edge).astype(np.float32)
    mask = cols < coarse_edge[:, None]
    dist = signed_distance(mask) * factor  # in full-resolution pixels
    mm = 1 / pixel_mm  # pixels per millimetre

    # Where glandular tissue can be: away from the skin (subcutaneous fat) and from the chest wall
    # in CC views, densest a few centimetres behind the nipple.
    ny, nx = shape.nipple
    radial = np.hypot((rows - ny) * 0.8, cols - nx) / max(shape.depth, 1.0)
    envelope = _smoothstep(dist, 4 * mm, 25 * mm) * (1 - _smoothstep(radial, 0.55, 1.05))

    blobs = power_law_noise(rng, (ch, cw), 3.0)
    detail = power_law_noise(rng, (ch, cw), 2.3)
    strands = _radial_strands(rng, rows, cols, shape.nipple, pixel_mm)
    level = tissue.density * 2.4 - 1.3 + 1.5 * envelope
    gland_fraction = 1 / (1 + np.exp(-(level + 1.1 * blobs + 0.35 * detail) * 1.6))
    gland_fraction *= _smoothstep(envelope, 0.02, 0.35)
    fibroglandular = float(gland_fraction[mask].mean()) if mask.any() else 0.0
    intensity = tissue.fat + (tissue.gland - tissue.fat) * gland_fraction
    # Cooper's ligaments and ducts: thin bright strands, most visible against fat.
    intensity += (260 + 420 * (1 - gland_fraction)) * strands * _smoothstep(dist, 1 * mm, 6 * mm)
    intensity += 110 * detail * gland_fraction

    # Thinner tissue towards the skin is darker, the skin itself a bright rim (peripheral equalisation
    # in For Presentation images keeps the periphery visible).
    intensity *= 0.72 + 0.28 * _smoothstep(dist, 0, 18 * mm)
    skin = _smoothstep(-dist, -1.8 * mm, -0.6 * mm)  # 1 within ~1 mm of the outline, also just outside
    intensity = intensity * (1 - skin) + tissue.skin * 0.82 * skin

    if shape.pectoral is not None:
        inside = pectoral_side(shape, rows, cols)
        muscle = _smoothstep(inside, -1.5 * mm, 2.5 * mm)
        fibres = power_law_noise(rng, (ch, cw), 2.2)
        gradient = 1 - 0.25 * np.clip(cols / max(shape.pectoral[1], 1.0), 0, 1)
        muscle_level = tissue.muscle * gradient + 60 * fibres
        intensity = intensity * (1 - muscle) + muscle_level * muscle

    full = cv2.resize(intensity.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    full_dist = cv2.resize(dist.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return full, full_dist, fibroglandular


def _radial_strands(rng: np.random.Generator, rows: np.ndarray, cols: np.ndarray, nipple: tuple[float, float],
                    pixel_mm: float) -> np.ndarray:
    """Thin curvilinear strands converging on the nipple, in [0, 1] (coarse grid).

    Ridges of band-limited noise (1 - |n|, sharpened) look like the web of ligaments and ducts; sampling
    the noise in polar coordinates around the nipple, stretched along the radius, makes them converge.
    """
    ny, nx = nipple
    radius = np.hypot(rows - ny, cols - nx) * (pixel_mm / 0.28)  # in units of ~0.28 mm
    angle = np.arctan2(rows - ny, nx - cols)  # 0 pointing from the nipple to the chest wall
    noise_h, noise_w = 256, 512
    noise = power_law_noise(rng, (noise_h, noise_w), 2.0)
    ridges = np.clip(1 - np.abs(noise) / 1.2, 0, 1) ** 6
    # Radial coordinate stretched x3 (strands elongated along the radius), angular one as arc length.
    map_x = (radius / 3.0) % noise_w
    map_y = ((angle + np.pi) / (2 * np.pi) * noise_h * 2.0) % noise_h
    return cv2.remap(ridges, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_WRAP)
