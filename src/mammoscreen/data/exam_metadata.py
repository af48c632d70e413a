"""Exam-list metadata: who the patient is and how the images were taken, for subgroup analyses.

An exam's ``metadata`` is a flat dict of exam-level values (``age``, ``manufacturer``, ``site`` ...) and,
under ``metadata['images']``, per-image values keyed by image name (``density`` per breast, ``abnormality``
...). Values are plain scalars (str, int, float, bool or None for missing); the keys and their canonical
spellings are documented in ``docs/data.md`` (the importers write them; this module only checks the shape).

An image's value for a key is its own, else the exam's. A breast's value is the value its images agree
on, else the exam's; when its images disagree and the exam has none, the breast has no value and the
disagreement is reported (see :func:`breast_value`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .views import VIEWS

METADATA_KEY = "metadata"
"""Key of the metadata in an exam dict (pickle and JSON alike)."""

IMAGES_KEY = "images"
"""Key of the per-image values inside an exam's metadata."""

MAX_TEXT = 1000
"""Longest accepted metadata text: values are categories (a vendor, a site), not documents."""

MAX_KEYS = 200
"""Most keys per exam or image: a guard against a malformed list, far above any dataset's columns."""

BREAST_VIEWS = {"left": ("L-CC", "L-MLO"), "right": ("R-CC", "R-MLO")}


class MetadataError(ValueError):
    """An exam's metadata does not have the documented shape."""


def _scalar(value: Any, where: str) -> Any:
    """A plain metadata value: numpy scalars unwrapped, NaN as None (missing), anything else refused."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None  # pandas' spelling of a blank cell
        if math.isinf(value):
            raise MetadataError(f"{where}: expected a finite number, got {value!r}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise MetadataError(f"{where}: text of {len(value)} characters; metadata values are short categories "
                                f"(at most {MAX_TEXT})")
        return value
    raise MetadataError(f"{where}: metadata values must be text, numbers, true/false or null, got "
                        f"{type(value).__name__} {str(value)[:60]!r}")


def _flat(raw: Any, where: str, allow_images: bool) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise MetadataError(f"{where}: expected a dict of key -> value, got {type(raw).__name__}")
    if len(raw) > MAX_KEYS:
        raise MetadataError(f"{where}: {len(raw)} keys; at most {MAX_KEYS} are accepted")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise MetadataError(f"{where}: keys must be non-empty text, got {key!r}")
        if key == IMAGES_KEY:
            if not allow_images:
                raise MetadataError(f"{where}: {IMAGES_KEY!r} is reserved for the exam's per-image values")
            continue
        out[key] = _scalar(value, f"{where}[{key!r}]")
    return out


def check_metadata(raw: Any, image_names: Iterable[str], where: str = "metadata") -> dict[str, Any]:
    """The validated, normalised metadata of one exam (a new dict).

    Parameters
    ----------
    raw : the exam's ``metadata`` value as loaded.
    image_names : the exam's image names: per-image entries must name one of them.
    where : prefix of error messages (file and exam).
    """
    if raw is None:
        return {}
    out = _flat(raw, where, allow_images=True)
    images = raw.get(IMAGES_KEY) if isinstance(raw, Mapping) else None
    if images is None:
        return out
    if not isinstance(images, Mapping):
        raise MetadataError(f"{where}[{IMAGES_KEY!r}]: expected a dict of image name -> {{key: value}}, got "
                            f"{type(images).__name__}")
    known = set(image_names)
    per_image: dict[str, dict[str, Any]] = {}
    for name, values in images.items():
        if name not in known:
            shown = sorted(known)[:6]
            raise MetadataError(f"{where}[{IMAGES_KEY!r}]: {name!r} is not an image of this exam (its images: "
                                f"{shown}{' ...' if len(known) > 6 else ''})")
        flat = _flat(values, f"{where}[{IMAGES_KEY!r}][{name!r}]", allow_images=False)
        if flat:
            per_image[name] = flat
    if per_image:
        out[IMAGES_KEY] = per_image
    return out


def restrict_metadata(metadata: Mapping[str, Any], image_names: Iterable[str]) -> dict[str, Any]:
    """A copy of ``metadata`` keeping per-image values only for ``image_names`` (e.g. after a crop dropped some)."""
    keep = set(image_names)
    out = {k: v for k, v in metadata.items() if k != IMAGES_KEY}
    images = {name: dict(values) for name, values in (metadata.get(IMAGES_KEY) or {}).items() if name in keep}
    if images:
        out[IMAGES_KEY] = images
    return out


def copy_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy (one level of per-image dicts is all there is)."""
    return restrict_metadata(metadata, (metadata.get(IMAGES_KEY) or {}).keys())


# ----------------------------------------------------------------------------------------------
# Resolution: the value of an image, a breast, an exam
# ----------------------------------------------------------------------------------------------

def image_value(exam: Any, name: str, key: str) -> Any:
    """The value of ``key`` for image ``name`` of ``exam``: the image's own, else the exam's, else None."""
    metadata = exam.metadata
    own = (metadata.get(IMAGES_KEY) or {}).get(name)
    if own is not None and own.get(key) is not None:
        return own[key]
    return metadata.get(key)


def breast_images(exam: Any, side: str) -> list[str]:
    """Image names of the left or right breast of ``exam`` (CC then MLO)."""
    return [name for view in BREAST_VIEWS[side] for name in exam.images.get(view, [])]


def breast_value(exam: Any, side: str, key: str) -> tuple[Any, bool]:
    """(value, disagreement) of ``key`` for the ``side`` ('left'/'right') breast of ``exam``.

    The value the images' own values agree on (images without their own value do not vote); with no
    own value, or when they disagree, the exam's value - or None with ``disagreement`` True when the
    images disagree and the exam has none.
    """
    per_image = exam.metadata.get(IMAGES_KEY) or {}
    values = {_hashable((per_image.get(name) or {}).get(key)) for name in breast_images(exam, side)}
    values.discard(None)
    if len(values) == 1:
        return _unhash(values.pop()), False
    exam_level = exam.metadata.get(key)
    if not values or exam_level is not None:
        return exam_level, False
    return None, True


def _hashable(value: Any) -> Any:
    # 1 and True (and 1.0) are equal in a set; keep them apart by their type.
    return None if value is None else (type(value).__name__, value)


def _unhash(item: Any) -> Any:
    return item[1]


def metadata_keys(exams: Sequence[Any]) -> list[str]:
    """Every key used in the exams' metadata (exam or image level), in order of first use."""
    keys: dict[str, None] = {}
    for exam in exams:
        for key in exam.metadata:
            if key != IMAGES_KEY:
                keys.setdefault(key)
        for values in (exam.metadata.get(IMAGES_KEY) or {}).values():
            for key in values:
                keys.setdefault(key)
    return list(keys)


def has_metadata(exams: Sequence[Any]) -> bool:
    """Whether any exam carries metadata."""
    return any(exam.metadata for exam in exams)


# ----------------------------------------------------------------------------------------------
# Coverage: what `mammoscreen validate` reports
# ----------------------------------------------------------------------------------------------

@dataclass
class KeyCoverage:
    """How much of an exam list has one metadata key, and its values."""

    key: str
    n_exams: int  # exams with a value (at exam level or for at least one image)
    n_images: int  # images with a value (their own or their exam's)
    values: dict[str, int] = field(default_factory=dict)  # value -> images, for categorical keys
    numeric: dict[str, float] | None = None  # min / median / max over images, for numeric keys
    disagreeing_breasts: list[str] = field(default_factory=list)  # 'exam 3 left': images differ, no exam value

    @property
    def is_numeric(self) -> bool:
        return self.numeric is not None

    def describe(self, n_exams: int, n_images: int, max_values: int = 8) -> str:
        """One line: coverage and values."""
        text = f"{self.key}: {self.n_exams}/{n_exams} exams, {self.n_images}/{n_images} images"
        if self.numeric is not None:
            n = self.numeric
            return text + f"; numeric, min {n['min']:g}, median {n['median']:g}, max {n['max']:g}"
        shown = list(self.values.items())[:max_values]
        more = len(self.values) - len(shown)
        text += "; " + ", ".join(f"{v} ({c})" for v, c in shown) + (f", ... ({more} more)" if more > 0 else "")
        if self.disagreeing_breasts:
            text += (f"; {len(self.disagreeing_breasts)} breast(s) whose images disagree and whose exam has no "
                     f"value, e.g. {self.disagreeing_breasts[0]} (no value at breast level)")
        return text


def is_number(value: Any) -> bool:
    """A number that can be binned (bools are categories, not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metadata_coverage(exams: Sequence[Any]) -> list[KeyCoverage]:
    """Per key: exams and images that have it, and its values (image counts) or numeric range."""
    out = []
    for key in metadata_keys(exams):
        n_exams = 0
        per_image: list[Any] = []
        disagreeing = []
        for index, exam in enumerate(exams):
            names = [n for view in VIEWS for n in exam.images.get(view, [])]
            values = [image_value(exam, name, key) for name in names]
            present = [v for v in values if v is not None]
            if present or exam.metadata.get(key) is not None:
                n_exams += 1
            per_image.extend(present)
            disagreeing += [f"exam {index} {side}" for side in BREAST_VIEWS if breast_value(exam, side, key)[1]]
        coverage = KeyCoverage(key, n_exams, len(per_image), disagreeing_breasts=disagreeing)
        if per_image and all(is_number(v) for v in per_image):
            array = np.asarray(per_image, dtype=np.float64)
            coverage.numeric = {"min": float(array.min()), "median": float(np.median(array)),
                                "max": float(array.max())}
        else:
            counts: dict[str, int] = {}
            for value in per_image:
                counts[str(value)] = counts.get(str(value), 0) + 1
            coverage.values = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        out.append(coverage)
    return out
