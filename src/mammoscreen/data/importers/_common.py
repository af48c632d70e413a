"""What every importer shares: the records they produce, building exams, reading tables, conversion."""

from __future__ import annotations

import io
import csv
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from ...batch import Failure, map_images
from ...core.paths import output_path
from ...files import Journal, write_text_atomic
from ..convert import cancer_label, convert_file
from ..dicom import PixelPolicy
from ..exams import VIEWS, Exam, save_exam_list

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


@dataclass
class Imported:
    """What an importer read: images, breast labels per exam, per-exam extras, notes for the user."""

    images: list[ImageEntry]
    breast_labels: dict[str, dict[str, int]]  # exam id -> {'left_malignant': 0/1, ...}
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)  # exam id -> extra exam keys
    notes: list[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """The exam list written and where each image came from."""

    exams: list[Exam]
    sources: dict[str, Path]  # image name -> source file
    notes: list[str]
    failures: list[Failure] = field(default_factory=list)

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


def build_exams(imported: Imported) -> tuple[list[Exam], dict[str, Path]]:
    """Exams in exam-id order; images named '<exam>_<view>' ('_2', '_3' for further images of a view)."""
    by_exam: dict[str, list[ImageEntry]] = {}
    for entry in imported.images:
        by_exam.setdefault(entry.exam_id, []).append(entry)
    exams, sources = [], {}
    for exam_id in sorted(by_exam):
        images: dict[str, list[str]] = {view: [] for view in VIEWS}
        for view in VIEWS:
            entries = sorted((e for e in by_exam[exam_id] if e.view == view), key=lambda e: (e.order, str(e.source)))
            for j, entry in enumerate(entries):
                name = f"{safe_name(exam_id)}_{view}" + ("" if j == 0 else f"_{j + 1}")
                images[view].append(name)
                sources[name] = entry.source
        label = cancer_label(imported.breast_labels.get(exam_id, {}))
        exams.append(Exam(images=images, horizontal_flip="NO", cancer_label=label,
                          extra=dict(imported.extra.get(exam_id, {}))))
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
    """Exams without the images not in ``keep`` (e.g. ones that failed to convert)."""
    out = []
    for exam in exams:
        images = {view: [n for n in names if n in keep] for view, names in exam.images.items()}
        out.append(Exam(images=images, horizontal_flip=exam.horizontal_flip, cancer_label=exam.cancer_label,
                        extra=dict(exam.extra)))
    return out


def finish(imported: Imported, output_dir: Path, convert: bool, policy: PixelPolicy, workers: int,
           progress: bool) -> ImportResult:
    """Build the exams, optionally convert the images, and write exam_list.pkl and sources.csv."""
    exams, sources = build_exams(imported)
    failures: list[Failure] = []
    if convert:
        done, failures = convert_sources(sources, output_dir, policy, workers, progress)
        exams = drop_images(exams, done)
    save_exam_list(exams, output_dir / EXAM_LIST)
    write_sources(output_dir / SOURCES, exams, sources)
    return ImportResult(exams, sources, imported.notes, failures)
