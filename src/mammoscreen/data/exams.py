"""The exam list: mammoscreen's one in-memory description of a dataset.

On disk an exam list is the NYU format — a pickle (or JSON) of a list of exam dicts::

    {'horizontal_flip': 'NO',
     'L-CC': ['0_L-CC'], 'R-CC': ['0_R-CC'], 'L-MLO': ['0_L-MLO'], 'R-MLO': ['0_R-MLO'],
     'cancer_label': {'left_benign': 0, 'right_benign': 1, 'left_malignant': 0, 'right_malignant': 0, ...},
     # added by preprocessing, one entry per image of each view:
     'window_location': {'L-CC': [(top, bottom, left, right)], ...},
     'rightmost_points': {...}, 'bottommost_points': {...},
     'distance_from_starting_side': {...}, 'best_center': {...},
     # added by mammoscreen's crop stage (not in the official format; readers of the official keys
     # ignore it): the (rows, cols) of the original, uncropped image
     'original_shape': {'L-CC': [(rows, cols)], ...},
     # optional, mammoscreen's: patient and acquisition values for subgroup analyses (exam level, and per
     # image under 'images'; see data/exam_metadata.py)
     'metadata': {'age': 61, 'manufacturer': 'HOLOGIC', 'images': {'0_L-CC': {'density': 'C'}, ...}}}

In memory every step works on :class:`Exam` objects, which validate that structure once, at the edge,
with errors that name the file, the exam and the key. Keys this module does not know (for example
``'L-CC_benign_seg'``) are kept unchanged and written back.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..core.files import atomic_write
from ..core.limits import InputLimitError
from ..core.paths import name_problem
from ..core.safejson import JSONInputError, load_json
from ..core.safepickle import MalformedPickleError, UnsafePickleError, load_pickle
from .exam_metadata import METADATA_KEY, MetadataError, check_metadata, restrict_metadata
from .views import VIEWS

"""The four standard screening views, in the official processing order."""

LABEL_KEYS: tuple[str, ...] = ("left_benign", "right_benign", "left_malignant", "right_malignant")
"""Breast-level labels that image-level labels are derived from."""

# Per-image metadata written by the preprocessing stages, with the shape of one entry.
IMAGE_METADATA_SHAPES: dict[str, Any] = {
    "window_location": (int, int, int, int),  # (top, bottom, left, right) in the original image
    "rightmost_points": ((int, int), int),  # ((y_start, y_end), x) in the cropped, flipped image
    "bottommost_points": (int, (int, int)),  # (y, (x_start, x_end)) in the cropped, flipped image
    "distance_from_starting_side": int,
    "best_center": (int, int),  # (row, col) of the window centre in the cropped, flipped image
    # mammoscreen's addition (absent from the official format and from older exam lists):
    "original_shape": (int, int),  # (rows, cols) of the original, uncropped image
}

PICKLE_PROTOCOL = 4
"""Protocol used when writing pickles: readable by Python >= 3.4 and the meta-repository's tools."""


class ExamListError(ValueError):
    """An exam list does not have the expected structure."""


class UnknownViewWarning(UserWarning):
    """Images under a view key mammoscreen does not know were left out (``ignore_unknown_views``)."""


# A key that names a mammographic view (side + DICOM view code, any case or separator) but is not one of
# VIEWS: 'L-XCCL', 'l-cc', 'RCC', 'LEFT_MLO'. Its images would be silently ignored, so it is an error.
_VIEW_LIKE = re.compile(r"(?:L|R|LEFT|RIGHT)[-_ ]?(?:CC|MLO|ML|LM|LMO|XCCL|XCCM|XCC|FB|SIO|AT|CV|RL|RM|TAN|SPOT|"
                        r"MAG)(?:[-_ ]?ID)?", re.IGNORECASE)


def _unknown_view_keys(raw: Mapping[Any, Any]) -> list[str]:
    return [k for k in raw if isinstance(k, str) and k not in VIEWS and _VIEW_LIKE.fullmatch(k.strip())]


def view_side(view: str) -> str:
    """'L' or 'R' for a view name such as 'L-CC'."""
    return view[0]


def view_angle(view: str) -> str:
    """'CC' or 'MLO' for a view name such as 'L-CC'."""
    return view[2:]


def needs_flip(view: str, horizontal_flip: str) -> bool:
    """Whether an image of ``view`` must be mirrored so that the breast faces right.

    The official convention: with ``horizontal_flip == 'NO'`` right-breast images are mirrored;
    with ``'YES'`` (the stored images are already mirrored) left-breast images are.
    """
    if horizontal_flip == "NO":
        return view_side(view) == "R"
    if horizontal_flip == "YES":
        return view_side(view) == "L"
    raise ValueError(f"horizontal_flip must be 'YES' or 'NO', got {horizontal_flip!r}")


@dataclass
class Exam:
    """One screening exam: image names per view, labels, and per-image preprocessing metadata."""

    images: dict[str, list[str]] = field(default_factory=lambda: {v: [] for v in VIEWS})
    horizontal_flip: str = "NO"
    cancer_label: dict[str, int] | None = None
    image_metadata: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # patient/acquisition values (exam_metadata.py)

    def __post_init__(self) -> None:
        # An exam built with the metadata among the unknown keys keeps it where it belongs.
        if METADATA_KEY in self.extra:
            self.extra = dict(self.extra)
            found = self.extra.pop(METADATA_KEY)
            if not self.metadata:
                self.metadata = found

    def labels_for_view(self, view: str) -> tuple[int | None, int | None]:
        """(benign, malignant) label of the breast ``view`` shows; None where unknown."""
        if self.cancer_label is None:
            return None, None
        side = "left" if view_side(view) == "L" else "right"
        return self.cancer_label.get(f"{side}_benign"), self.cancer_label.get(f"{side}_malignant")

    def to_dict(self) -> dict[str, Any]:
        """The exam in the NYU dict format (tuples for coordinates, plain Python scalars)."""
        out: dict[str, Any] = {"horizontal_flip": self.horizontal_flip}
        for view in VIEWS:
            out[view] = list(self.images.get(view, []))
        if self.cancer_label is not None:
            out["cancer_label"] = dict(self.cancer_label)
        out.update(self.extra)
        for key, per_view in self.image_metadata.items():
            out[key] = {view: list(values) for view, values in per_view.items()}
        if self.metadata:  # absent from exam lists without metadata, which stay byte-identical
            try:
                out[METADATA_KEY] = check_metadata(self.metadata, self.image_names(), "metadata")
            except MetadataError as e:
                raise ExamListError(f"exam with images {self.image_names()[:4]}: {e}") from None
        return out

    def image_names(self) -> list[str]:
        """Every image name of the exam, views in the official order."""
        return [name for view in VIEWS for name in self.images.get(view, [])]


@dataclass(frozen=True)
class ImageRecord:
    """One image of an exam list, with everything a per-image step needs."""

    exam_index: int
    view: str
    index_in_view: int
    name: str
    horizontal_flip: str
    metadata: Mapping[str, Any]
    benign_label: int | None = None
    malignant_label: int | None = None

    @property
    def side(self) -> str:
        return view_side(self.view)

    @property
    def angle(self) -> str:
        return view_angle(self.view)

    @property
    def flip(self) -> bool:
        """Whether the stored image must be mirrored to face right."""
        return needs_flip(self.view, self.horizontal_flip)


def missing_views(exam: Exam, required: Sequence[str]) -> list[str]:
    """The required views for which ``exam`` lists no image."""
    return [view for view in required if not exam.images.get(view)]


def iter_images(exams: Sequence[Exam]) -> Iterator[ImageRecord]:
    """All images in the official order: exam by exam, views L-CC, R-CC, L-MLO, R-MLO."""
    for exam_index, exam in enumerate(exams):
        for view in VIEWS:
            benign, malignant = exam.labels_for_view(view)
            for j, name in enumerate(exam.images.get(view, [])):
                meta = {key: per_view[view][j] for key, per_view in exam.image_metadata.items()
                        if view in per_view}
                yield ImageRecord(exam_index, view, j, name, exam.horizontal_flip, meta, benign, malignant)


def add_image_metadata(exams: Sequence[Exam], values: Mapping[str, Mapping[str, Any]]) -> list[Exam]:
    """Copies of ``exams`` with per-image metadata added: ``values`` maps image name -> {key: value}.

    Images missing from ``values`` (e.g. ones that failed to crop) are dropped from their view,
    together with their other metadata, so that every view list and its metadata stay aligned.
    Keys already present are overwritten.
    """
    new_keys = list(dict.fromkeys(k for per_image in values.values() for k in per_image))
    out = []
    for exam in exams:
        images: dict[str, list[str]] = {}
        metadata: dict[str, dict[str, list[Any]]] = {k: {} for k in exam.image_metadata if k not in new_keys}
        metadata.update({k: {} for k in new_keys})
        for view in VIEWS:
            kept = [j for j, name in enumerate(exam.images.get(view, [])) if name in values]
            images[view] = [exam.images[view][j] for j in kept]
            for key, per_view in exam.image_metadata.items():
                if key not in new_keys and view in per_view:
                    metadata[key][view] = [per_view[view][j] for j in kept]
            for key in new_keys:
                metadata[key][view] = []
                for j in kept:
                    name = exam.images[view][j]
                    if key not in values[name]:
                        raise ExamListError(f"image {name!r}: no value for {key!r}")
                    metadata[key][view].append(_normalise_metadata(key, values[name][key], f"{key} of image {name!r}"))
        kept = [name for names in images.values() for name in names]
        out.append(Exam(images, exam.horizontal_flip, exam.cancer_label, metadata, dict(exam.extra),
                        restrict_metadata(exam.metadata, kept)))
    return out


# ----------------------------------------------------------------------------------------------
# Validation and normalisation: from a raw dict (pickle/JSON) to an Exam
# ----------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars; lists/tuples/dicts recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _as_int(value: Any, where: str) -> int:
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExamListError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ExamListError(f"{where}: expected an integer, got {value!r}")
        value = int(value)
    return value


def _normalise_shape(shape: Any, value: Any, where: str) -> Any:
    if shape is int:
        return _as_int(value, where)
    if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != len(shape):
        raise ExamListError(f"{where}: expected a sequence of {len(shape)} values, got {value!r}")
    return tuple(_normalise_shape(s, v, where) for s, v in zip(shape, value))


def _normalise_metadata(key: str, value: Any, where: str) -> Any:
    shape = IMAGE_METADATA_SHAPES.get(key)
    if shape is None:
        return _plain(value)
    return _normalise_shape(shape, value, where)


def _check_image_name(name: str, where: str) -> None:
    # Names are joined to --images and --output-dir: one that is a path could read or write anywhere.
    problem = name_problem(name)
    if problem is not None:
        raise ExamListError(f"{where}: image name {_shown(name)} is not a plain file name: {problem}; exam lists "
                            "name images by file name without .png, relative to --images")


def _shown(name: str) -> str:
    return repr(name if len(name) <= 80 else name[:77] + "...")


def exam_from_dict(raw: Mapping[str, Any], exam_index: int = 0, source: str = "exam list", *,
                   ignore_unknown_views: bool = False, dropped: list[str] | None = None) -> Exam:
    """Validate one exam dict and convert it to an :class:`Exam`.

    A key that looks like a view but is not one of :data:`VIEWS` (``'L-XCCL'``, ``'l-cc'``) is an error;
    with ``ignore_unknown_views`` it is removed instead, and ``dropped`` (if given) receives one line per
    such key naming its images.
    """
    where = f"{source}: exam {exam_index}"
    if not isinstance(raw, Mapping):
        raise ExamListError(f"{where}: expected a dict, got {type(raw).__name__}")
    raw = dict(raw)
    left_out: set[str] = set()
    for key in _unknown_view_keys(raw):
        names = _plain(raw.pop(key))
        if isinstance(names, (list, tuple)):
            left_out.update(n for n in names if isinstance(n, str))
        shown = ", ".join(map(str, names)) if isinstance(names, (list, tuple)) else repr(names)
        if not ignore_unknown_views:
            raise ExamListError(f"{where}, key {key!r}: not a view mammoscreen knows (it reads {', '.join(VIEWS)}, "
                                f"spelled exactly so); rename the key, or pass --ignore-unknown-views to leave its "
                                f"images out ({shown or 'none'})")
        if dropped is not None:
            dropped.append(f"exam {exam_index} {key!r}: {shown or 'no images'}")

    images: dict[str, list[str]] = {}
    for view in VIEWS:
        names = _plain(raw.pop(view, []))
        if isinstance(names, str):
            raise ExamListError(f"{where}, key {view!r}: expected a list of image names, got the string {names!r}")
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise ExamListError(f"{where}, key {view!r}: expected a list of image names (strings), got {names!r}")
        for name in names:
            _check_image_name(name, f"{where}, key {view!r}")
        images[view] = list(names)
    if not any(images.values()) and not any(k in raw for k in ("cancer_label", "horizontal_flip")):
        raise ExamListError(
            f"{where}: none of the keys {', '.join(VIEWS)} is present - is this an exam list "
            "(a list of exam dicts)?")

    horizontal_flip = _plain(raw.pop("horizontal_flip", "NO"))
    if horizontal_flip not in ("YES", "NO"):
        raise ExamListError(f"{where}, key 'horizontal_flip': must be 'YES' or 'NO', got {horizontal_flip!r}")

    cancer_label = raw.pop("cancer_label", None)
    if cancer_label is not None:
        if not isinstance(cancer_label, Mapping):
            raise ExamListError(f"{where}, key 'cancer_label': expected a dict, got {cancer_label!r}")
        labels = {}
        for k, v in cancer_label.items():
            v = _plain(v)
            if isinstance(v, bool):
                v = int(v)
            if v is not None and (not isinstance(v, (int, float)) or v not in (0, 1)):
                raise ExamListError(f"{where}, key 'cancer_label'[{k!r}]: labels must be 0 or 1, got {v!r}")
            labels[str(k)] = None if v is None else int(v)
        cancer_label = labels

    image_metadata: dict[str, dict[str, list[Any]]] = {}
    for key in IMAGE_METADATA_SHAPES:
        if key not in raw:
            continue
        per_view = raw.pop(key)
        if not isinstance(per_view, Mapping):
            raise ExamListError(f"{where}, key {key!r}: expected a dict of view -> list, got {per_view!r}")
        normalised: dict[str, list[Any]] = {}
        for view in VIEWS:
            if view not in per_view:
                if images[view]:
                    raise ExamListError(f"{where}, key {key!r}: no entry for view {view!r}, which has images "
                                        f"{images[view]}")
                continue
            values = per_view[view]
            if not isinstance(values, (list, tuple)) or len(values) != len(images[view]):
                raise ExamListError(
                    f"{where}, key {key!r}[{view!r}]: expected a list with one entry per image "
                    f"({len(images[view])}), got {values!r}")
            normalised[view] = [_normalise_metadata(key, v, f"{where}, key {key!r}[{view!r}][{j}]")
                                for j, v in enumerate(values)]
        unknown = set(per_view) - set(VIEWS)
        if unknown:
            raise ExamListError(f"{where}, key {key!r}: unknown views {sorted(unknown)}")
        image_metadata[key] = normalised

    metadata: dict[str, Any] = {}
    if METADATA_KEY in raw:
        names = [name for view in VIEWS for name in images[view]]
        found = raw.pop(METADATA_KEY)
        if left_out and isinstance(found, Mapping) and isinstance(found.get("images"), Mapping):
            # the per-image values of images left out with their unknown view go with them
            found = {**found, "images": {n: v for n, v in found["images"].items() if n not in left_out}}
        try:
            metadata = check_metadata(found, names, f"{where}, key {METADATA_KEY!r}")
        except MetadataError as e:
            raise ExamListError(str(e)) from None

    extra = {str(k): _plain(v) for k, v in raw.items()}
    return Exam(images, horizontal_flip, cancer_label, image_metadata, extra, metadata)


def exams_from_data(data: Any, source: str = "exam list", *, ignore_unknown_views: bool = False) -> list[Exam]:
    """Validate a loaded exam list (a list of dicts) and convert it to :class:`Exam` objects.

    Unknown view keys are an error, or with ``ignore_unknown_views`` one :class:`UnknownViewWarning`
    naming every image left out.
    """
    if isinstance(data, Mapping):
        raise ExamListError(f"{source}: expected a list of exam dicts, got a single dict "
                            f"(keys {sorted(map(str, data))[:8]}); wrap it in a list")
    if not isinstance(data, (list, tuple)):
        raise ExamListError(f"{source}: expected a list of exam dicts, got {type(data).__name__}")
    dropped: list[str] = []
    exams = [exam_from_dict(raw, i, source, ignore_unknown_views=ignore_unknown_views, dropped=dropped)
             for i, raw in enumerate(data)]
    if dropped:
        warnings.warn(f"{source}: leaving out the images of unknown view keys (--ignore-unknown-views): "
                      + "; ".join(dropped), UnknownViewWarning, stacklevel=2)
    return exams


# ----------------------------------------------------------------------------------------------
# Reading and writing
# ----------------------------------------------------------------------------------------------

def _format_for(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".pkl", ".pickle", ".p"):
        return "pickle"
    if suffix == ".json":
        return "json"
    raise ExamListError(f"{path}: unknown exam-list format {suffix!r}; use .pkl (pickle) or .json")


def load_exam_list(path: str | Path, *, ignore_unknown_views: bool = False) -> list[Exam]:
    """Read and validate an exam list from a pickle (any protocol, restricted) or JSON file.

    Keys that look like views but are not one of :data:`VIEWS` are an error naming the file, the exam and
    the key; with ``ignore_unknown_views`` their images are left out with one warning naming them all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exam list not found: {path}")
    fmt = _format_for(path)
    try:
        data = load_pickle(path) if fmt == "pickle" else load_json(path)
    except (UnsafePickleError, InputLimitError) as e:
        raise ExamListError(f"{e}. An exam list holds only plain data; if you trust this file, convert it to "
                            "plain data (or JSON) first") from None
    except (MalformedPickleError, JSONInputError) as e:
        raise ExamListError(f"exam list {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError) as e:
        raise ExamListError(f"{path}: not a readable {fmt} file ({type(e).__name__}: {e})") from None
    return exams_from_data(data, source=str(path), ignore_unknown_views=ignore_unknown_views)


def exams_to_data(exams: Iterable[Exam]) -> list[dict[str, Any]]:
    """The exam list as plain data (list of NYU-format dicts)."""
    return [exam.to_dict() for exam in exams]


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def save_exam_list(exams: Iterable[Exam], path: str | Path) -> Path:
    """Write an exam list atomically: pickle protocol 4 for .pkl, indented JSON for .json."""
    path = Path(path)
    data = exams_to_data(exams)
    if _format_for(path) == "pickle":
        with atomic_write(path, "wb") as f:
            pickle.dump(data, f, protocol=PICKLE_PROTOCOL)
    else:
        with atomic_write(path, "w") as f:
            json.dump(_to_json(data), f, indent=1)
            f.write("\n")
    return path


def save_exam_list_if_changed(exams: Sequence[Exam], path: str | Path) -> Path:
    """:func:`save_exam_list`, unless ``path`` already holds the same exam list: a re-run that changed nothing
    rewrites nothing (and whatever fingerprints the file's bytes or time stays up to date)."""
    path = Path(path)
    if path.is_file():
        try:
            if exams_to_data(load_exam_list(path)) == exams_to_data(exams):
                return path
        except (ExamListError, OSError, ValueError):
            pass  # unreadable: rewrite it
    return save_exam_list(exams, path)
