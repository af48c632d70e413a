"""Synthetic lesions: round benign masses, spiculated malignant masses, malignant calcification clusters.

A lesion is described once per breast (:class:`Lesion`: kind, size, where it sits relative to the
nipple) and drawn into each view of that breast by :func:`draw_lesion`, which adds it to the grey
levels and returns its ground-truth mask. Shapes are drawn in a local patch around the lesion only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import BreastShape, pectoral_side

BENIGN_KINDS = ("round_mass",)
MALIGNANT_KINDS = ("spiculated_mass", "calcifications")


@dataclass(frozen=True)
class Lesion:
    """One lesion of a breast, in view-independent terms."""

    kind: str  # 'round_mass' (benign), 'spiculated_mass' or 'calcifications' (malignant)
    radius_mm: float  # mass radius, or radius of the region the calcifications are spread over
    depth: float  # distance behind the nipple as a fraction of the nipple-chest wall distance
    lateral: float  # position across the breast in [-1, 1] (lateral .. medial), seen in CC
    superior: float  # position in [-1, 1] (superior .. inferior), contributes to MLO
    contrast: float  # added grey level (12-bit units)
    seed: int  # shape details; the same in both views of the breast

    @property
    def malignant(self) -> bool:
        return self.kind in MALIGNANT_KINDS


def draw_random_lesion(rng: np.random.Generator, malignant: bool, contrast_scale: float = 1.0) -> Lesion:
    """A random lesion of the requested class."""
    kind = rng.choice(MALIGNANT_KINDS) if malignant else BENIGN_KINDS[0]
    if kind == "calcifications":
        radius, contrast = rng.uniform(5.0, 9.0), rng.uniform(1100, 1500)
    elif kind == "spiculated_mass":
        radius, contrast = rng.uniform(5.0, 11.0), rng.uniform(750, 1000)
    else:
        radius, contrast = rng.uniform(5.0, 11.0), rng.uniform(450, 700)
    angle = rng.uniform(0, 2 * np.pi)
    spread = np.sqrt(rng.uniform(0, 1)) * 0.75
    return Lesion(kind=str(kind), radius_mm=float(radius), depth=float(rng.uniform(0.2, 0.7)),
                  lateral=float(spread * np.cos(angle)), superior=float(spread * np.sin(angle)),
                  contrast=float(contrast * contrast_scale), seed=int(rng.integers(2**31)))


def lesion_centre(lesion: Lesion, shape: BreastShape, distance: np.ndarray, angle: str, radius_px: float,
                  pixel_mm: float) -> tuple[float, float]:
    """(row, col) of the lesion in a view, canonical orientation.

    The same distance behind the nipple in CC and MLO (as a radiologist triangulates); the position
    across the breast comes from ``lateral`` in CC and from a 45-degree mix of ``lateral`` and
    ``superior`` in MLO. The centre is moved inwards until the lesion is inside the breast, away from
    the skin and the pectoral muscle.
    """
    ny, nx = shape.nipple
    col = nx * (1 - lesion.depth)
    across = lesion.lateral if angle == "CC" else (lesion.superior + lesion.lateral) / np.sqrt(2)
    col_index = int(np.clip(round(col), 0, distance.shape[1] - 1))
    margin = radius_px + 4 / pixel_mm
    rows = np.arange(distance.shape[0])
    usable = distance[:, col_index] > margin
    if shape.pectoral is not None:
        usable &= pectoral_side(shape, rows.astype(np.float32), np.float32(col_index)) < -margin
    if not usable.any():  # the breast is too thin here: fall back to the widest usable point behind the nipple
        col_index = int(np.clip(round(nx * 0.5), 0, distance.shape[1] - 1))
        usable = distance[:, col_index] > min(margin, float(distance[:, col_index].max()) * 0.5)
    candidates = rows[usable]
    lo, hi = float(candidates.min()), float(candidates.max())
    row = (lo + hi) / 2 + across * (hi - lo) / 2
    row = float(candidates[np.argmin(np.abs(candidates - row))])  # stay inside (the usable set may have gaps)
    return row, float(col_index)


def draw_lesion(image: np.ndarray, lesion: Lesion, centre: tuple[float, float], pixel_mm: float,
                view_seed: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """Add ``lesion`` to ``image`` (float32, in place) around ``centre``.

    Returns the patch it was drawn in (a pair of slices) and the lesion's mask within that patch.
    """
    radius = lesion.radius_mm / pixel_mm
    shape_rng = np.random.default_rng(lesion.seed)  # same shape in both views
    view_rng = np.random.default_rng([lesion.seed, view_seed])  # small per-view differences
    reach = radius * (3.2 if lesion.kind == "spiculated_mass" else 1.6) + 3
    patch = _Patch(image.shape, centre, reach)
    if patch.empty:
        return patch.slices, np.zeros((0, 0), dtype=bool)
    dy, dx = patch.offsets()
    if lesion.kind == "round_mass":
        profile, core = _round_mass(shape_rng, view_rng, dy, dx, radius)
    elif lesion.kind == "spiculated_mass":
        profile, core = _spiculated_mass(shape_rng, view_rng, dy, dx, radius)
    else:
        profile, core = _calcifications(shape_rng, view_rng, dy, dx, radius, pixel_mm)
    image[patch.slices] += np.float32(lesion.contrast) * profile.astype(np.float32)
    return patch.slices, core


class _Patch:
    """The part of the image within ``reach`` pixels of ``centre``."""

    def __init__(self, shape: tuple[int, ...], centre: tuple[float, float], reach: float):
        cy, cx = centre
        self.centre = centre
        self.top, self.bottom = max(0, int(cy - reach)), min(shape[0], int(cy + reach) + 1)
        self.left, self.right = max(0, int(cx - reach)), min(shape[1], int(cx + reach) + 1)
        self.slices = (slice(self.top, self.bottom), slice(self.left, self.right))
        self.empty = self.bottom <= self.top or self.right <= self.left

    def offsets(self) -> tuple[np.ndarray, np.ndarray]:
        cy, cx = self.centre
        dy = np.arange(self.top, self.bottom, dtype=np.float32)[:, None] - np.float32(cy)
        dx = np.arange(self.left, self.right, dtype=np.float32)[None, :] - np.float32(cx)
        return dy, dx


def _edge(r: np.ndarray, radius: np.ndarray | float, softness: float) -> np.ndarray:
    """1 inside ``radius``, 0 outside, with a smooth transition ``softness`` pixels wide."""
    return 1 / (1 + np.exp((r - radius) / max(softness, 0.3)))


def _round_mass(shape_rng, view_rng, dy, dx, radius):
    """An oval with a smooth, well-circumscribed margin and a flat, slightly domed density."""
    aspect = shape_rng.uniform(1.0, 1.4)
    theta = view_rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u, v = dx * c + dy * s, -dx * s + dy * c
    r = np.hypot(u * np.sqrt(aspect), v / np.sqrt(aspect))
    body = _edge(r, radius, radius * 0.06)
    dome = 0.85 + 0.15 * np.clip(1 - (r / radius) ** 2, 0, 1)
    return body * dome, r <= radius


def _spiculated_mass(shape_rng, view_rng, dy, dx, radius):
    """An irregular dense core with thin radiating spicules."""
    r = np.hypot(dx, dy)
    # The irregular core only needs evaluating near the centre.
    core = np.zeros(r.shape, dtype=np.float32)
    cy, cx = -float(dy[0, 0]), -float(dx[0, 0])  # patch coordinates of the centre
    reach = int(radius * 1.3) + 2
    window = (slice(max(0, int(cy) - reach), int(cy) + reach + 1), slice(max(0, int(cx) - reach), int(cx) + reach + 1))
    near_r = r[window]
    phi = np.arctan2(dy[window[0]], dx[:, window[1]])
    wobble = np.zeros_like(phi)
    for k in range(3, 8):
        wobble += shape_rng.uniform(0, 0.12) * np.cos(k * phi + shape_rng.uniform(0, 2 * np.pi))
    core_radius = radius * 0.75 * (1 + wobble)
    core[window] = _edge(near_r, core_radius, radius * 0.05)
    inside = np.zeros(r.shape, dtype=bool)
    inside[window] = near_r <= core_radius * 1.05
    # Spicules: thin wedges from inside the core to their tips, drawn as polygons and softened.
    spicules = np.zeros(core.shape, dtype=np.float32)
    count = int(shape_rng.integers(12, 22))
    rotation = view_rng.uniform(0, 2 * np.pi)
    half_width = max(0.8, radius * 0.08)
    for _ in range(count):
        direction = shape_rng.uniform(0, 2 * np.pi) + rotation
        length = radius * shape_rng.uniform(1.6, 3.0)
        ux, uy = np.cos(direction), np.sin(direction)
        base = radius * 0.5
        points = np.array([[cx + ux * base - uy * half_width, cy + uy * base + ux * half_width],
                           [cx + ux * base + uy * half_width, cy + uy * base - ux * half_width],
                           [cx + ux * length, cy + uy * length]])
        cv2.fillConvexPoly(spicules, np.round(points * 16).astype(np.int32), 1.0, cv2.LINE_8, shift=4)
    sigma = max(0.5, half_width * 0.6)
    spicules = cv2.GaussianBlur(spicules, (0, 0), sigma)
    fade = np.clip(1 - r / (radius * 3.0), 0, 1)
    profile = np.maximum(core, 0.8 * spicules * (0.35 + 0.65 * fade))
    return profile, inside


def _calcifications(shape_rng, view_rng, dy, dx, radius, pixel_mm):
    """A cluster of tiny, very bright, irregular specks; the mask covers the whole cluster."""
    count = int(shape_rng.integers(12, 30))
    profile = np.zeros(np.broadcast(dy, dx).shape, dtype=np.float32)
    angles = view_rng.uniform(0, 2 * np.pi, count)
    spread = radius * np.sqrt(view_rng.uniform(0.02, 1.0, count)) * 0.85
    sizes = np.maximum(shape_rng.uniform(0.2, 0.5, count) / pixel_mm, 0.9)  # specks stay >= ~1 pixel
    ys, xs = spread * np.sin(angles), spread * np.cos(angles)
    cy, cx = -float(dy[0, 0]), -float(dx[0, 0])  # patch coordinates of the centre
    for y, x, size in zip(ys, xs, sizes):
        elongation = view_rng.uniform(1.0, 2.2)
        theta = view_rng.uniform(0, np.pi)
        # Evaluate each speck only in a small window around it.
        reach = size * elongation * 3 + 1
        top, left = max(0, int(cy + y - reach)), max(0, int(cx + x - reach))
        bottom, right = min(profile.shape[0], int(cy + y + reach) + 1), min(profile.shape[1], int(cx + x + reach) + 1)
        if bottom <= top or right <= left:
            continue
        sy = np.arange(top, bottom, dtype=np.float32)[:, None] - np.float32(cy + y)
        sx = np.arange(left, right, dtype=np.float32)[None, :] - np.float32(cx + x)
        u = sx * np.cos(theta) + sy * np.sin(theta)
        v = -sx * np.sin(theta) + sy * np.cos(theta)
        speck = np.exp(-((u / (size * elongation)) ** 2 + (v / size) ** 2))
        np.maximum(profile[top:bottom, left:right], speck, out=profile[top:bottom, left:right])
    extent = max(float(np.max(np.hypot(ys, xs) + sizes * 2.2)), 2.0)
    return profile, np.hypot(dx, dy) <= extent
