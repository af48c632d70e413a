"""What every importer shares: the records they produce, building exams, reading tables, conversion."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from ...core.files import write_text_atomic
from ...core.journal import Journal
from ...core.parallel_map import map_images
from ...core.paths import output_path
from ...core.stages import Failure
from ..convert import cancer_label, convert_file
from ..dicom import AcceptPolicy, PixelPolicy, header_metadata, object_reason, read_dicom
from ..exams import VIEWS, Exam, save_exam_list
from ..metadata import (
    IMAGES_KEY,
    METADATA_KEY,
    NORMALISERS,
    MetadataValueError,
    exam_metadata,
    merge_metadata,
    set_exam_metadata,
)

EXAM_LIST = "exam_list.pkl"
SOURCES = "sources.csv"


class ImporterError(ValueError):
    """A dataset's metadata is missing or not in the published layout."""


@dataclass(frozen=True)
class ImageEntry:
    """One image of the dataset: the exam it belongs to, its view and its file."""

    exam_id: str
    view: str  # 'L-CC', 'R-MLO', ...
    source: Path
    order: str = ""  # sorts several images of one view (e.g. the dataset's image id)
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)  # per-image values (data.metadata)


@dataclass
class Imported:
    """What an importer read: images, breast labels per exam, per-exam extras and metadata, notes for the user."""

    images: list[ImageEntry]
    breast_labels: dict[str, dict[str, int]]  # exam id -> {'left_malignant': 0/1, ...}
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # exam id -> extra exam keys
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # exam id -> exam-level metadata
    dataset: str = ""  # the metadata's 'dataset' value


@dataclass
class ImportResult:
    """The exam list written and where each image came from."""

    exams: list[Exam]
    sources: dict[str, Path]  # image name -> source file, for the images in the exam list
    notes: list[str]
    failures: list[Failure] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # image name -> why the accept policy refused it

    @property
    def images(self) -> int:
        return len(self.sources)


def find_file(root: Path, names: Sequence[str], what: str) -> Path:
    """The first of ``names`` found in ``root`` or one directory below; ImporterError if none is."""
    for name in names:
        for candidate in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if candidate.is_file():
                return candidate
    raise ImporterError(f"{root}: {what} not found (looked for {', '.join(names)} here and one level down)")


def read_table(path: Path, required: Sequence[str], **kwargs: Any) -> pd.DataFrame:
    """A CSV or Excel sheet as strings, column names stripped; ImporterError naming missing columns."""
    try:
        if path.suffix.lower() in (".xls", ".xlsx"):
            frame = pd.read_excel(path, dtype=str, **kwargs)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except ImportError as e:
        raise ImporterError(f"{path}: reading {path.suffix} files needs an extra package ({e}); "
                            "pip install 'mammoscreen[datasets]'") from None
    except (ValueError, OSError) as e:
        raise ImporterError(f"{path}: cannot read the table ({e})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.fillna("")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ImporterError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; found "
                            f"{', '.join(repr(c) for c in frame.columns)}. Is this the published file?")
    return frame.apply(lambda column: column.astype(str).str.strip())


def side_letter(value: str) -> str | None:
    """'L' / 'R' from L, R, LEFT, RIGHT (any case); None otherwise."""
    value = value.strip().upper()
    return {"L": "L", "LEFT": "L", "R": "R", "RIGHT": "R"}.get(value)


def set_breast(labels: dict[str, dict[str, int]], exam_id: str, side: str, malignant: bool, benign: bool) -> None:
    """Mark a breast of an exam; a breast is positive if any of its findings is."""
    entry = labels.setdefault(exam_id, {})
    name = "left" if side == "L" else "right"
    entry[f"{name}_malignant"] = max(entry.get(f"{name}_malignant", 0), int(malignant))
    entry[f"{name}_benign"] = max(entry.get(f"{name}_benign", 0), int(benign))


def set_breast_from_birads(labels: dict[str, dict[str, int]], highest: Mapping[tuple[str, str], float],
                           malignant_from: float) -> None:
    """Breast labels from each breast's highest BI-RADS category (``highest``: (exam, side) -> rank):
    malignant from ``malignant_from`` up, benign for 2 and 3 below it, negative otherwise."""
    for (exam_id, side), rank in highest.items():
        set_breast(labels, exam_id, side, rank >= malignant_from, 2 <= rank < malignant_from)


class MetadataReader:
    """Canonicalises a table's metadata values (data.metadata), counting the values it does not understand so
    that they are reported once per column instead of guessed or fatal."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.unknown: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def __call__(self, key: str, row: Mapping[str, str], column: str,
                 normalise: Callable[[Any], Any] | None = None) -> Any:
        if column not in row:
            return None
        raw = row[column]
        try:
            return (normalise or NORMALISERS[key])(raw)
        except MetadataValueError:
            self.unknown[column] += 1
            self.examples.setdefault(column, raw)
            return None

    def notes(self) -> list[str]:
        return [f"{self.source}: {count} value(s) of column {column!r} not understood (e.g. {self.examples[column]!r});"
                " left empty in the metadata" for column, count in self.unknown.items()]


def compact(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the keys whose value is None."""
    return {k: v for k, v in values.items() if v is not None}


def build_exams(imported: Imported) -> tuple[list[Exam], dict[str, Path]]:
    """Exams in exam-id order; images named '<exam>_<view>' ('_2', '_3' for further images of a view).

    Each exam carries ``metadata`` (data.metadata): the importer's exam-level values, the dataset's name and,
    under 'images', the per-image values.
    """
    by_exam: dict[str, list[ImageEntry]] = {}
    for entry in imported.images:
        by_exam.setdefault(entry.exam_id, []).append(entry)
    exams, sources = [], {}
    for exam_id in sorted(by_exam):
        images: dict[str, list[str]] = {view: [] for view in VIEWS}
        per_image: dict[str, dict[str, Any]] = {}
        for view in VIEWS:
            entries = sorted((e for e in by_exam[exam_id] if e.view == view), key=lambda e: (e.order, str(e.source)))
            for j, entry in enumerate(entries):
                name = f"{safe_name(exam_id)}_{view}" + ("" if j == 0 else f"_{j + 1}")
                images[view].append(name)
                sources[name] = entry.source
                if entry.metadata:
                    per_image[name] = compact(entry.metadata)
        label = cancer_label(imported.breast_labels.get(exam_id, {}))
        exam = Exam(images=images, horizontal_flip="NO", cancer_label=label,
                    extra=dict(imported.extra.get(exam_id, {})))
        metadata = {**({"dataset": imported.dataset} if imported.dataset else {}),
                    **compact(imported.metadata.get(exam_id, {}))}
        per_image = {name: values for name, values in per_image.items() if values}
        if per_image:
            metadata[IMAGES_KEY] = per_image
        set_exam_metadata(exam, metadata)
        exams.append(exam)
    return exams, sources


def safe_name(text: str) -> str:
    """``text`` usable as a file name: path separators and spaces replaced."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def write_sources(path: Path, exams: Iterable[Exam], sources: dict[str, Path]) -> None:
    """sources.csv: image name, exam index, view, source file."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["image", "exam", "view", "source"])
    for index, exam in enumerate(exams):
        for view in VIEWS:
            for name in exam.images[view]:
                writer.writerow([name, index, view, str(sources[name])])
    write_text_atomic(path, out.getvalue())


def _read_header(path: str, accept: AcceptPolicy) -> dict:
    ds = read_dicom(path)
    reason = object_reason(ds, accept)
    return {"refused": reason} if reason else {"metadata": header_metadata(ds)}


def check_headers(sources: dict[str, Path], accept: AcceptPolicy, workers: int, progress: bool
                  ) -> tuple[dict[str, dict], dict[str, str], list[Failure]]:
    """Read every source's DICOM header: (header metadata of the images to keep, {name: why refused},
    unreadable files). One policy for every importer: the kinds of object ``accept`` does not allow (For
    Processing, synthesised 2-D, 3-D, multi-frame, colour, non-image) are refused whatever the table says."""
    names = list(sources)
    results, failures = map_images(partial(_read_header, accept=accept), [str(sources[n]) for n in names], names,
                                   workers=workers, desc="check", progress=progress)
    refused = {name: result["refused"] for name, result in results.items() if "refused" in result}
    headers = {name: result["metadata"] for name, result in results.items() if "metadata" in result}
    return headers, refused, failures


def _convert_one(item: tuple[str, str], output_dir: str, policy: PixelPolicy) -> dict:
    name, source = item
    record = convert_file(source, output_path(output_dir, "images", f"{name}.png"), policy)
    return {"source": source, "bit_depth": record["bit_depth"]}


def convert_sources(sources: dict[str, Path], output_dir: Path, policy: PixelPolicy, workers: int,
                    progress: bool) -> tuple[set[str], list[Failure]]:
    """Convert every source DICOM to ``output_dir/images/<name>.png``; resumable."""
    journal = Journal(output_dir / ".import_journal.jsonl",
                      fingerprint={"stage": "import", "voi": policy.voi, "voi_index": policy.voi_index,
                                   "bit_depth": policy.bit_depth})
    items = [(name, str(path)) for name, path in sources.items()]

    def still_valid(name: str) -> bool:
        return (output_path(output_dir, "images", f"{name}.png").is_file()
                and journal[name]["result"]["source"] == str(sources[name]))

    results, failures = map_images(partial(_convert_one, output_dir=str(output_dir), policy=policy), items,
                                   [name for name, _ in items], journal=journal,
                                   source_of=lambda name: Path(sources[name]), still_valid=still_valid,
                                   workers=workers, desc="convert", progress=progress)
    return set(results), failures


def drop_images(exams: list[Exam], keep: set[str]) -> list[Exam]:
    """Exams without the images not in ``keep`` (e.g. ones that failed to convert); exams left without any image
    are dropped, and per-image metadata follows its images."""
    out = []
    for exam in exams:
        images = {view: [n for n in names if n in keep] for view, names in exam.images.items()}
        if not any(images.values()):
            continue
        kept = Exam(images=images, horizontal_flip=exam.horizontal_flip, cancer_label=exam.cancer_label,
                    extra={k: v for k, v in exam.extra.items() if k != METADATA_KEY})
        metadata = exam_metadata(exam)
        if IMAGES_KEY in metadata:
            metadata[IMAGES_KEY] = {n: v for n, v in metadata[IMAGES_KEY].items() if n in keep}
            if not metadata[IMAGES_KEY]:
                del metadata[IMAGES_KEY]
        set_exam_metadata(kept, metadata)
        out.append(kept)
    return out


def add_header_metadata(exams: list[Exam], headers: Mapping[str, Mapping[str, Any]]) -> None:
    """Add what the DICOM headers say (manufacturer, model, age, implant) to each exam's metadata, where the
    dataset's tables did not already give the key: exam-level when the exam's images agree, else per image."""
    for exam in exams:
        names = [n for view in VIEWS for n in exam.images.get(view, [])]
        exam_level, per_image = merge_metadata({n: headers.get(n, {}) for n in names})
        metadata = exam_metadata(exam)
        given = set(metadata) | {k for values in (metadata.get(IMAGES_KEY) or {}).values() for k in values}
        for key, value in exam_level.items():
            if key not in given:
                metadata[key] = value
        images = {n: dict(v) for n, v in (metadata.get(IMAGES_KEY) or {}).items()}
        for name, values in per_image.items():
            for key, value in values.items():
                if key not in given:
                    images.setdefault(name, {})[key] = value
        if images:
            metadata[IMAGES_KEY] = images
        set_exam_metadata(exam, metadata)


def refusal_notes(refused: Mapping[str, str]) -> list[str]:
    """One note per reason an image was refused, with the count and an example."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in refused.items():
        by_reason.setdefault(reason, []).append(name)
    return [f"{len(names)} image(s) refused: {reason} (e.g. {names[0]})" for reason, names in by_reason.items()]


def finish(imported: Imported, output_dir: Path, convert: bool, policy: PixelPolicy, workers: int,
           progress: bool, accept: AcceptPolicy = AcceptPolicy()) -> ImportResult:
    """Build the exams, check every image's header, optionally convert the images, and write exam_list.pkl and
    sources.csv."""
    exams, sources = build_exams(imported)
    headers, refused, failures = check_headers(sources, accept, workers, progress)
    keep = set(headers)
    notes = list(imported.notes) + refusal_notes(refused)
    if convert:
        done, convert_failures = convert_sources({n: sources[n] for n in sources if n in keep}, output_dir, policy,
                                                 workers, progress)
        failures = failures + convert_failures
        keep &= done
    before = len(exams)
    exams = drop_images(exams, keep)
    if len(exams) < before:
        notes.append(f"{before - len(exams)} exam(s) left out: none of their images could be used")
    add_header_metadata(exams, headers)
    save_exam_list(exams, output_dir / EXAM_LIST)
    write_sources(output_dir / SOURCES, exams, sources)
    return ImportResult(exams, {n: p for n, p in sources.items() if n in keep}, notes, failures, refused)
