"""Exam-list metadata: the keys, their canonical values, and one function per key that canonicalises a
dataset's spelling.

An exam carries ``exam['metadata']``: a flat dict of exam-level values (age, manufacturer, site, ...)
and, under ``'images'``, a flat dict per image name for values a dataset gives per image (density,
BI-RADS, abnormality, split). Every value is a plain scalar (``str``, ``int``, ``float``, ``bool``) or
``None`` for missing, so the metadata survives pickle and JSON alike. The contract is documented in
``docs/data.md`` ("Metadata").

Each ``normalise_*`` function returns the canonical value, ``None`` for a blank or a spelling that
means "not given" ('', 'nan', 'removed', ...), and raises :class:`MetadataValueError` for a value it
does not recognise, so that an importer can count and report those rather than guess.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

from .exam_metadata import IMAGES_KEY, METADATA_KEY, check_metadata, copy_metadata

__all__ = [
    "METADATA_KEY", "IMAGES_KEY", "KEYS", "EXAM_KEYS", "IMAGE_KEYS", "DATASETS", "MANUFACTURERS",
    "MetadataValueError", "normalise_age", "normalise_density", "normalise_birads", "normalise_abnormality",
    "combine_abnormality", "canonical_manufacturer", "normalise_model", "normalise_text", "normalise_bool",
    "normalise_split", "NORMALISERS", "check_metadata", "merge_metadata", "exam_metadata", "set_exam_metadata",
]


EXAM_KEYS = ("age", "manufacturer", "manufacturer_model", "site", "machine_id", "implant", "subtype", "dataset")
IMAGE_KEYS = ("density", "birads", "abnormality", "split")
KEYS = EXAM_KEYS + IMAGE_KEYS
"""Every documented key. ``density`` may also be exam-level when a dataset gives it per exam."""

DATASETS = ("cbis-ddsm", "inbreast", "cmmd", "vindr-mammo", "rsna", "dicom")

MANUFACTURERS = ("HOLOGIC", "GE", "SIEMENS", "FUJIFILM", "PHILIPS", "PLANMED", "IMS", "KODAK", "AGFA",
                 "KONICA MINOLTA")
"""Canonical vendor names; any other Manufacturer is kept upper-cased and stripped."""

# How vendors spell themselves in (0008,0070) Manufacturer, first match wins. Whole words only, so
# that e.g. 'GE' does not match 'GENERIC' and 'IMS' does not match 'SIMS'.
_VENDOR_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"HOLOGIC|LORAD", "HOLOGIC"),
    (r"GE|GE MEDICAL SYSTEMS|GE HEALTHCARE|GENERAL ELECTRIC|GEMS", "GE"),
    (r"SIEMENS", "SIEMENS"),
    (r"FUJI|FUJIFILM|FUJI PHOTO FILM", "FUJIFILM"),
    (r"PHILIPS", "PHILIPS"),
    (r"PLANMED", "PLANMED"),
    (r"IMS|IMS GIOTTO|GIOTTO", "IMS"),
    (r"KODAK", "KODAK"),
    (r"AGFA|AGFA-GEVAERT", "AGFA"),
    (r"KONICA|KONICA MINOLTA|KONICAMINOLTA", "KONICA MINOLTA"),
)

# Spellings that mean "no value" in the published tables.
_MISSING = {"", "nan", "none", "null", "na", "n/a", "-", "removed", "unknown", "<na>"}


class MetadataValueError(ValueError):
    """A metadata value that none of the known spellings matches."""


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in _MISSING


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def normalise_age(value: Any) -> int | float | None:
    """Age in years: 61, '61', '61.0' -> 61; DICOM Age Strings '053Y' -> 53, '018M' -> 1.5; float only
    when the value has a fraction. Ages outside 0..130 raise."""
    if _blank(value):
        return None
    text = str(value).strip().upper()
    match = re.fullmatch(r"(\d{1,3})\s*([DWMY])", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        years: float = {"D": amount / 365.25, "W": amount * 7 / 365.25, "M": amount / 12, "Y": amount}[unit]
    else:
        number = _number(value)
        if number is None or not math.isfinite(number):
            raise MetadataValueError(f"age {value!r} is not a number of years")
        years = number
    if not 0 <= years <= 130:
        raise MetadataValueError(f"age {value!r} is outside 0-130 years")
    return int(years) if float(years).is_integer() else round(float(years), 2)


def normalise_density(value: Any) -> str | None:
    """ACR breast density as 'A'-'D': 'A'..'D', 'DENSITY C' (VinDr), 1-4 (CBIS-DDSM, INbreast ACR)."""
    if _blank(value):
        return None
    text = str(value).strip().upper()
    text = re.sub(r"^(DENSITY|ACR|BI-?RADS DENSITY)\s*[:\-]?\s*", "", text)
    if text in ("A", "B", "C", "D"):
        return text
    number = _number(text)
    if number is not None and number in (1, 2, 3, 4):
        return "ABCD"[int(number) - 1]
    raise MetadataValueError(f"breast density {value!r} is not A-D or 1-4")


def normalise_birads(value: Any) -> str | None:
    """BI-RADS category as '0'-'6', sub-categories lower-case ('4a'): 'BI-RADS 4', '4A', 4, '4.0'."""
    if _blank(value):
        return None
    text = str(value).strip().lower()
    text = re.sub(r"^(bi-?rads|birads)\s*[:\-]?\s*", "", text)
    match = re.fullmatch(r"([0-6])(?:\.0)?\s*([abc]?)", text)
    if not match or (match.group(2) and match.group(1) != "4"):
        raise MetadataValueError(f"BI-RADS {value!r} is not a category 0-6 (4a/4b/4c)")
    return match.group(1) + match.group(2)


_ABNORMALITY_WORDS = {
    "mass": "mass", "masses": "mass",
    "calcification": "calcification", "calcifications": "calcification", "calc": "calcification",
    "suspicious calcification": "calcification",
    "both": "mass+calcification", "mass+calcification": "mass+calcification",
    "mass and calcification": "mass+calcification", "calcification+mass": "mass+calcification",
}


def normalise_abnormality(value: Any) -> str | None:
    """'mass', 'calcification' or 'mass+calcification' from the datasets' spellings (CBIS-DDSM
    'abnormality type', CMMD 'abnormality' incl. 'both', VinDr 'Mass'/'Suspicious Calcification')."""
    if _blank(value):
        return None
    key = " ".join(str(value).strip().lower().replace("_", " ").split())
    if key not in _ABNORMALITY_WORDS:
        raise MetadataValueError(f"abnormality {value!r} is not mass, calcification or both")
    return _ABNORMALITY_WORDS[key]


def combine_abnormality(*values: str | None) -> str | None:
    """One value for several findings of an image: a mass and a calcification make 'mass+calcification'."""
    kinds = set()
    for value in values:
        if value:
            kinds.update(value.split("+"))
    if not kinds:
        return None
    return "mass+calcification" if kinds == {"mass", "calcification"} else kinds.pop()


def canonical_manufacturer(value: Any) -> str | None:
    """The vendor of DICOM (0008,0070) Manufacturer in one spelling: 'HOLOGIC, Inc.' -> 'HOLOGIC',
    'GE MEDICAL SYSTEMS' -> 'GE', ...; other names upper-cased and stripped."""
    if _blank(value):
        return None
    text = " ".join(str(value).strip().upper().split())
    words = re.sub(r"[^A-Z0-9\- ]", " ", text)
    for pattern, canonical in _VENDOR_PATTERNS:
        if re.search(rf"(?<![A-Z0-9])({pattern})(?![A-Z0-9])", words):
            return canonical
    return text


def normalise_text(value: Any) -> str | None:
    """A label kept as the dataset spells it, stripped; whole numbers lose a trailing '.0' ('29.0' -> '29')."""
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = " ".join(str(value).split())
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


def normalise_model(value: Any) -> str | None:
    """DICOM ManufacturerModelName, stripped (spelling kept)."""
    return normalise_text(value)


def normalise_bool(value: Any) -> bool | None:
    """True/False from 1/0, 'True'/'False', 'YES'/'NO' (DICOM Breast Implant Present), 'Y'/'N'."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true", "yes", "y"):
        return True
    if text in ("0", "0.0", "false", "no", "n"):
        return False
    raise MetadataValueError(f"{value!r} is not a yes/no value")


def normalise_split(value: Any) -> str | None:
    """'train' or 'test' ('training' as VinDr-Mammo spells it)."""
    if _blank(value):
        return None
    text = str(value).strip().lower()
    if text in ("train", "training"):
        return "train"
    if text in ("test", "testing"):
        return "test"
    raise MetadataValueError(f"split {value!r} is not train or test")


def _normalise_dataset(value: Any) -> str | None:
    if _blank(value):
        return None
    if value not in DATASETS:
        raise MetadataValueError(f"dataset {value!r} is not one of {', '.join(DATASETS)}")
    return value


NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "age": normalise_age, "density": normalise_density, "birads": normalise_birads,
    "abnormality": normalise_abnormality, "manufacturer": canonical_manufacturer,
    "manufacturer_model": normalise_model, "site": normalise_text, "machine_id": normalise_text,
    "implant": normalise_bool, "subtype": normalise_text, "split": normalise_split, "dataset": _normalise_dataset,
}
"""The canonicalising function of every documented key."""

def merge_metadata(per_image: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Exam-level values from per-image ones (e.g. each DICOM header's Manufacturer): a key whose images all
    agree (ignoring missing values) becomes exam-level; a key on which they disagree stays per image.

    Returns (exam-level dict, {image name: {key: value}} for the disagreeing keys, images without any omitted).
    """
    values: dict[str, set] = {}
    for image in per_image.values():
        for key, value in image.items():
            if value is not None:
                values.setdefault(key, set()).add((type(value).__name__, value))
    exam_level = {key: next(iter(found))[1] for key, found in values.items() if len(found) == 1}
    images = {name: {k: v for k, v in image.items() if k not in exam_level and v is not None}
              for name, image in per_image.items()}
    return exam_level, {name: image for name, image in images.items() if image}


def exam_metadata(exam: Any) -> dict[str, Any]:
    """A copy of an :class:`~mammoscreen.data.exams.Exam`'s metadata (empty when it has none)."""
    return copy_metadata(exam.metadata or {})


def set_exam_metadata(exam: Any, metadata: Mapping[str, Any]) -> None:
    """Store a copy of ``metadata`` in ``exam``, validated against the exam's images."""
    exam.metadata = check_metadata(metadata, exam.image_names())
