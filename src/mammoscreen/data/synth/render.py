"""Rendering one synthetic exam: four views with lesions, masks and burnt-in labels, as arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..exams import VIEWS, view_angle, view_side
from .anatomy import BreastShape, TissueParams, breast_mask, cc_shape, mlo_shape, tissue_image, tissue_params
from .lesions import Lesion, draw_lesion, draw_random_lesion, lesion_centre

FULL_SIZE = (3328, 2560)
"""Image size at scale 1 (rows, columns): the meta-repository's sample exams (Hologic-like detector)."""

FULL_PIXEL_MM = 0.07
"""Pixel spacing at scale 1, in millimetres."""

MAX_VALUE = 4095
"""Synthetic mammograms hold 12-bit values, like the GMIC sample exams."""

METADATA_STREAM = 0x6D657461
"""Tag of the random stream the metadata is drawn from: apart from the pixels' streams, so that adding or
changing metadata never changes an image."""

DENSITY_EDGES = (0.33, 0.44, 0.52)
"""Fibroglandular fraction (mean of a breast's two views) separating the density categories A|B|C|D: about
10 %, 40 %, 40 %, 10 % of the generated breasts, as in screening populations (BI-RADS 5th edition)."""

DENSITY_READING_STD = 0.02
"""Spread of the assessed fraction around the measured one: density is a reader's judgement."""


@dataclass(frozen=True)
class SynthOptions:
    """What the generated exams look like.

    Parameters
    ----------
    scale : image size relative to full size (3328 x 2560 at 0.07 mm); 0.25 gives 832 x 640 images.
    p_benign, p_malignant : probability that a breast has a benign / a malignant lesion (independent).
    contrast : multiplies every lesion's contrast (1 = clearly visible; lower = harder task).
    label_text : burn the view name into the background, as many scanners do (the crop removes it).
    background_noise : fraction of background pixels set to small non-zero values (isolated specks
        the crop's erosion removes); 0 keeps the background exactly zero.
    noise_std : quantum noise in the breast, in 12-bit grey levels.
    """

    scale: float = 1.0
    p_benign: float = 0.3
    p_malignant: float = 0.3
    contrast: float = 1.0
    label_text: bool = True
    background_noise: float = 0.0
    noise_std: float = 18.0

    def __post_init__(self) -> None:
        if not 0.05 <= self.scale <= 2.0:
            raise ValueError(f"scale must be between 0.05 and 2, got {self.scale}")
        for name in ("p_benign", "p_malignant", "background_noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.contrast <= 0:
            raise ValueError(f"contrast must be positive, got {self.contrast}")

    @property
    def size(self) -> tuple[int, int]:
        return max(64, round(FULL_SIZE[0] * self.scale)), max(48, round(FULL_SIZE[1] * self.scale))

    @property
    def pixel_mm(self) -> float:
        return FULL_PIXEL_MM / self.scale


@dataclass
class SynthView:
    """One rendered view in stored orientation (left breasts face right, right breasts face left)."""

    image: np.ndarray  # uint16, values 0..4095, background 0
    masks: dict[str, np.ndarray]  # 'benign' / 'malignant' -> bool mask, same size and orientation
    lesions: list[dict] = field(default_factory=list)  # kind, class, centre (row, col), bbox
    fibroglandular_fraction: float = 0.0  # mean glandular fraction of the breast tissue in this view


@dataclass
class SynthExam:
    """All views of one exam, its breast-level labels and its metadata."""

    views: dict[str, SynthView]
    labels: dict[str, int]  # the NYU cancer_label dict
    age: int | None = None  # years
    density: dict[str, str] = field(default_factory=dict)  # 'L'/'R' -> BI-RADS density 'A'..'D'


def render_exam(seed: int, exam_index: int, options: SynthOptions) -> SynthExam:
    """Render exam ``exam_index`` of the dataset with ``seed``: the same arguments give the same pixels."""
    rng = np.random.default_rng([seed, exam_index])
    breasts = {}
    for side in ("L", "R"):
        benign = rng.random() < options.p_benign
        malignant = rng.random() < options.p_malignant
        lesions = []
        if benign:
            lesions.append(draw_random_lesion(rng, False, options.contrast))
        if malignant:
            lesions.append(draw_random_lesion(rng, True, options.contrast))
        breasts[side] = (tissue_params(rng), lesions)

    views = {}
    for view_number, view in enumerate(VIEWS):
        tissue, lesions = breasts[view_side(view)]
        view_rng = np.random.default_rng([seed, exam_index, view_number])
        views[view] = render_view(view_rng, view, tissue, lesions, options, view_seed=view_number)

    labels = {}
    for side, name in (("L", "left"), ("R", "right")):
        lesions = breasts[side][1]
        labels[f"{name}_benign"] = int(any(not lesion.malignant for lesion in lesions))
        labels[f"{name}_malignant"] = int(any(lesion.malignant for lesion in lesions))
    labels["benign"] = max(labels["left_benign"], labels["right_benign"])
    labels["malignant"] = max(labels["left_malignant"], labels["right_malignant"])
    labels["unknown"] = 0
    age, density = exam_metadata(seed, exam_index, views)
    return SynthExam(views, labels, age, density)


def exam_metadata(seed: int, exam_index: int, views: dict[str, SynthView]) -> tuple[int, dict[str, str]]:
    """(age, density per side) of a rendered exam, from its own random stream.

    Density follows the breast's fibroglandular fraction in the images, read with some judgement; age
    falls with density, as in screening populations (denser breasts in younger women).
    """
    rng = np.random.default_rng([seed, exam_index, METADATA_STREAM])
    density, fractions = {}, []
    for side in ("L", "R"):
        fraction = float(np.mean([views[f"{side}-{angle}"].fibroglandular_fraction for angle in ("CC", "MLO")]))
        fractions.append(fraction)
        assessed = fraction + rng.normal(0.0, DENSITY_READING_STD)
        density[side] = "ABCD"[int(np.searchsorted(DENSITY_EDGES, assessed, side="right"))]
    age = int(np.clip(np.rint(rng.normal(57.0 - 25.0 * (np.mean(fractions) - 0.44), 8.0)), 40, 79))
    return age, density


def render_view(rng: np.random.Generator, view: str, tissue: TissueParams, lesions: list[Lesion],
                options: SynthOptions, view_seed: int = 0) -> SynthView:
    """Render one view: breast, lesions, noise, background, label text; stored orientation."""
    height, width = options.size
    angle = view_angle(view)
    shape: BreastShape = (cc_shape if angle == "CC" else mlo_shape)(rng, height, width)
    image, distance, fibroglandular = tissue_image(rng, shape, tissue, height, width, options.pixel_mm)

    masks = {"benign": np.zeros((height, width), bool), "malignant": np.zeros((height, width), bool)}
    found = []
    for lesion in lesions:
        radius_px = lesion.radius_mm / options.pixel_mm
        centre = lesion_centre(lesion, shape, distance, angle, radius_px, options.pixel_mm)
        slices, core = draw_lesion(image, lesion, centre, options.pixel_mm, view_seed)
        label = "malignant" if lesion.malignant else "benign"
        masks[label][slices] |= core
        found.append({"kind": lesion.kind, "class": label, "centre": centre, "slices": slices, "core": core})

    inside = breast_mask(shape, width)
    _add_noise(rng, image, options.noise_std)
    np.clip(image, 1, MAX_VALUE, out=image)  # the breast is never zero: the crop finds it by value > 0
    image *= inside
    for masks_of_class in masks.values():
        masks_of_class &= inside
    stored = np.rint(image).astype(np.uint16)

    lesion_info = []
    for item in found:
        rows, cols = np.nonzero(item["core"] & inside[item["slices"]])
        row, col = item["centre"]
        bbox = None
        if rows.size:
            top, left = item["slices"][0].start, item["slices"][1].start
            bbox = [top + int(rows.min()), top + int(rows.max()) + 1,
                    left + int(cols.min()), left + int(cols.max()) + 1]
        if view_side(view) == "R":  # mirrored below
            col = width - 1 - col
            if bbox is not None:
                bbox = [bbox[0], bbox[1], width - bbox[3], width - bbox[2]]
        lesion_info.append({"kind": item["kind"], "class": item["class"],
                            "centre": [round(float(row), 1), round(float(col), 1)], "bbox": bbox})

    if view_side(view) == "R":  # horizontal_flip 'NO': right breasts face left as stored
        stored = np.ascontiguousarray(stored[:, ::-1])
        inside = inside[:, ::-1]
        masks = {k: np.ascontiguousarray(m[:, ::-1]) for k, m in masks.items()}

    if options.background_noise > 0:
        _add_background_specks(rng, stored, inside, options.background_noise)
    if options.label_text:
        _burn_label(stored, inside, view)
    return SynthView(stored, masks, lesion_info, fibroglandular)


def _add_noise(rng: np.random.Generator, image: np.ndarray, std: float) -> None:
    """Add Gaussian quantum noise in place.

    Drawing 8 Mpx of normal deviates costs more than the rest of the view, so one tile of at most
    512 x 512 deviates is drawn and repeated with a random offset: the repetition (3.6 cm at full size)
    is invisible under the tissue texture.
    """
    if std <= 0:
        return
    h, w = image.shape
    th, tw = min(h, 512), min(w, 512)
    tile = rng.standard_normal((th, tw), dtype=np.float32) * np.float32(std)
    tile = np.roll(tile, (int(rng.integers(th)), int(rng.integers(tw))), axis=(0, 1))
    for top in range(0, h, th):  # in place, block by block: no full-size temporary
        for left in range(0, w, tw):
            block = image[top:top + th, left:left + tw]
            block += tile[:block.shape[0], :block.shape[1]]


def _add_background_specks(rng: np.random.Generator, image: np.ndarray, inside: np.ndarray, fraction: float) -> None:
    """Set a ``fraction`` of background pixels to small values (isolated specks, as on some detectors)."""
    count = int(fraction * image.size)
    if count == 0:
        return
    rows = rng.integers(0, image.shape[0], count)
    cols = rng.integers(0, image.shape[1], count)
    outside = ~inside[rows, cols]
    image[rows[outside], cols[outside]] = rng.integers(1, 120, int(outside.sum())).astype(np.uint16)


def _burn_label(image: np.ndarray, inside: np.ndarray, view: str) -> None:
    """Write e.g. 'L CC' in the top background corner on the nipple side, if it does not touch the breast."""
    height, width = image.shape
    text = f"{view_side(view)} {view_angle(view)}"
    font_scale = height / 900
    thickness = max(1, round(height / 700))
    (text_w, text_h), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    margin = max(4, height // 60)
    top = margin
    left = width - margin - text_w if view_side(view) == "L" else margin
    region = (slice(max(0, top - margin), top + text_h + baseline + margin),
              slice(max(0, left - margin), left + text_w + margin))
    if left < 0 or inside[region].any():
        return
    stamp = np.zeros(image.shape, np.uint8)[region]  # OpenCV draws text on 8-bit images only
    cv2.putText(stamp, text, (left - region[1].start, top + text_h - region[0].start), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, 255, thickness, cv2.LINE_AA)
    values = (stamp.astype(np.uint32) * MAX_VALUE // 255).astype(np.uint16)
    np.maximum(image[region], values, out=image[region])
