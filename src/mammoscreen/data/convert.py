"""Converting a directory of DICOM files into 16-bit PNGs, an exam list and audit sidecars.

Three passes: :func:`scan_dicom_dir` reads every header and decides what each file is (a view to
convert, or skipped with a reason, or unreadable); :func:`plan_exams` groups the views into exams by
Study Instance UID, names the images and decides ``horizontal_flip`` from Patient Orientation;
:func:`convert_planned` writes the PNGs and sidecars, resumably. :func:`convert_dicom_dir` runs them
all and writes ``exam_list.pkl`` and ``manifest.csv``.

Output layout::

    images/<exam>_<view>[_<n>].png   16-bit PNGs
    sidecars/<image>.json            every attribute and pipeline step used for that image
    exam_list.pkl                    the NYU exam list (pickle protocol 4)
    manifest.csv                     one row per input file: converted, skipped or failed, and why
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..core.files import write_json_atomic, write_text_atomic
from ..core.journal import Journal
from ..core.parallel_map import map_images
from ..core.paths import output_path
from ..core.stages import Failure
from .dicom import (
    AcceptPolicy,
    DicomFileError,
    PixelPolicy,
    dicom_tags,
    header_metadata,
    laterality_conflict,
    png_pixels,
    read_dicom,
    skip_reason,
    standard_view,
    stored_facing,
)
from .exams import VIEWS, Exam, save_exam_list, view_side
from .images import write_png
from .metadata import IMAGES_KEY, merge_metadata, set_exam_metadata

EXAM_LIST = "exam_list.pkl"
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class DicomSource:
    """One DICOM file that holds a standard view, with what grouping and naming need."""

    path: str
    view: str  # 'L-CC', ...
    study_uid: str
    sop_uid: str
    patient_id: str
    study_date: str
    instance_number: int
    facing: str | None  # where the nipple points in the stored image, from Patient Orientation
    metadata: dict = field(default_factory=dict, compare=False)  # header values (see data.metadata)
    laterality: dict = field(default_factory=dict, compare=False)  # ImageLaterality and Laterality as stored
    warning: str | None = None  # converted, but something the user should check (e.g. conflicting laterality)


@dataclass(frozen=True)
class PlannedImage:
    """One PNG to write: its name, its source and whether to mirror it."""

    name: str
    source: DicomSource
    mirror: bool


@dataclass
class PlannedExam:
    """An exam to write: its study, images per view and flip setting."""

    study_uid: str
    images: dict[str, list[PlannedImage]]
    horizontal_flip: str
    orientation_note: str

    def metadata(self, converted: Iterable[str]) -> dict:
        """The exam's metadata (data.metadata) from its converted images' headers."""
        images = {image.name: image.source.metadata for view in VIEWS for image in self.images[view]
                  if image.name in converted}
        exam_level, per_image = merge_metadata(images)
        return {"dataset": "dicom", **exam_level, **({IMAGES_KEY: per_image} if per_image else {})}


@dataclass
class ConversionReport:
    """What a conversion did."""

    exams: list[Exam]
    converted: dict[str, dict]  # image name -> sidecar record
    skipped: list[tuple[str, str]]  # (file, reason): not images to convert
    failures: list[Failure]  # files that should have converted but could not
    unlabelled_studies: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file, warning): converted, but check them


def iter_files(input_dir: Path, exclude: Iterable[Path] = ()) -> list[Path]:
    """Every regular file under ``input_dir`` (any name), sorted, skipping hidden files and ``exclude``."""
    excluded = [p.resolve() for p in exclude]
    out = []
    for root, dirs, files in os.walk(input_dir):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and (root_path / d).resolve() not in excluded)
        out.extend(root_path / f for f in sorted(files) if not f.startswith("."))
    return out


NOT_DICOM = "not a DICOM file"


def _scan_file(path: str, accept: AcceptPolicy) -> dict:
    try:
        ds = read_dicom(path)
    except DicomFileError as e:
        if str(e).endswith(NOT_DICOM):  # other files are expected in a DICOM tree: skip them quietly
            return {"skip": NOT_DICOM}
        raise
    reason = skip_reason(ds, accept)
    if reason is not None:
        return {"skip": reason}
    try:
        instance = int(ds.get("InstanceNumber") or 0)
    except (TypeError, ValueError):
        instance = 0
    study_uid = str(ds.get("StudyInstanceUID", "")).strip()
    if not study_uid:
        raise DicomFileError(f"{path}: no Study Instance UID, so the image cannot be grouped into an exam")
    return {"source": {"path": path, "view": standard_view(ds), "study_uid": study_uid,
                       "sop_uid": str(ds.get("SOPInstanceUID", "")).strip(),
                       "patient_id": str(ds.get("PatientID", "")).strip(),
                       "study_date": str(ds.get("StudyDate", "")).strip(),
                       "instance_number": instance, "facing": stored_facing(ds),
                       "metadata": header_metadata(ds),
                       "laterality": {k: str(ds.get(k, "")).strip() or None for k in ("ImageLaterality", "Laterality")},
                       "warning": laterality_conflict(ds)}}


def scan_dicom_dir(input_dir: str | Path, accept: AcceptPolicy = AcceptPolicy(), *, exclude: Iterable[Path] = (),
                   workers: int = 1, progress: bool = True, pool: Executor | None = None
                   ) -> tuple[list[DicomSource], list[tuple[str, str]], list[Failure]]:
    """Read every file's header: (views to convert, skipped files with reasons, unreadable files)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"input directory not found: {input_dir}")
    paths = [str(p) for p in iter_files(input_dir, exclude)]
    results, failures = map_images(partial(_scan_file, accept=accept), paths, paths, workers=workers,
                                   desc="scan", progress=progress, pool=pool)
    sources, skipped = [], []
    for path, result in results.items():
        if "skip" in result:
            skipped.append((path, result["skip"]))
        else:
            sources.append(DicomSource(**result["source"]))
    return sources, skipped, failures


def exam_label(study_uid: str) -> str:
    """Short stable name of an exam: the first 12 hex digits of the SHA-1 of its Study Instance UID."""
    return hashlib.sha1(study_uid.encode()).hexdigest()[:12]


def plan_exams(sources: Sequence[DicomSource]) -> list[PlannedExam]:
    """Group views into exams, name the images and set ``horizontal_flip`` from the orientation.

    Per exam: if every image with a known orientation is mirrored relative to the standard display
    (left breasts facing right), ``horizontal_flip`` is 'YES' and pixels are kept; otherwise it is
    'NO' and the mirrored images (if any) are mirrored back, so that one flag describes the exam.
    Images without Patient Orientation are assumed to be in the standard orientation.
    """
    by_study: dict[str, list[DicomSource]] = {}
    for source in sources:
        by_study.setdefault(source.study_uid, []).append(source)
    order = sorted(by_study, key=lambda uid: (by_study[uid][0].patient_id, by_study[uid][0].study_date, uid))
    planned = []
    for uid in order:
        members = by_study[uid]
        mirrored = [s for s in members if s.facing is not None and s.facing != _standard_facing(s.view)]
        known = [s for s in members if s.facing is not None]
        if known and len(mirrored) == len(known):
            flip, mirror_set, note = "YES", set(), "all images stored mirrored (Patient Orientation)"
        else:
            flip, mirror_set = "NO", {s.path for s in mirrored}
            note = (f"{len(mirrored)} image(s) mirrored back to the standard orientation" if mirrored
                    else "standard orientation" if known else "no Patient Orientation: standard orientation assumed")
        label = exam_label(uid)
        images: dict[str, list[PlannedImage]] = {view: [] for view in VIEWS}
        for view in VIEWS:
            in_view = sorted((s for s in members if s.view == view),
                             key=lambda s: (s.instance_number, s.sop_uid, s.path))
            for j, source in enumerate(in_view):
                name = f"{label}_{view}" if j == 0 else f"{label}_{view}_{j + 1}"
                images[view].append(PlannedImage(name, source, source.path in mirror_set))
        planned.append(PlannedExam(uid, images, flip, note))
    return planned


def _standard_facing(view: str) -> str:
    return "right" if view_side(view) == "L" else "left"


def convert_file(path: str | Path, png_path: str | Path, policy: PixelPolicy = PixelPolicy(),
                 mirror: bool = False) -> dict:
    """Convert one DICOM mammogram to a 16-bit PNG; return the record of what was done."""
    ds = read_dicom(path, pixels=True)
    pixels, record = png_pixels(ds, policy, str(path))
    record["tags"] = dicom_tags(ds)
    if mirror:
        pixels = np.ascontiguousarray(pixels[:, ::-1])
    record["mirrored"] = mirror
    write_png(png_path, pixels)
    return record


def _convert_item(item: dict, output_dir: str, policy: PixelPolicy) -> dict:
    out = Path(output_dir)
    record = convert_file(item["path"], output_path(out, "images", f"{item['name']}.png"), policy, item["mirror"])
    sidecar = {"image": item["name"], "source": item["path"], "view": item["view"],
               "study_instance_uid": item["study_uid"], "sop_instance_uid": item["sop_uid"],
               "patient_id": item["patient_id"], "horizontal_flip": item["horizontal_flip"],
               "orientation": item["orientation_note"], "stored_facing": item["facing"],
               "laterality": item.get("laterality", {}), "warnings": item.get("warnings", []),
               "policy": {"voi": policy.voi, "voi_index": policy.voi_index, "bit_depth_override": policy.bit_depth},
               "pixels": record}
    write_json_atomic(output_path(out, "sidecars", f"{item['name']}.json"), sidecar)
    return sidecar


def convert_planned(planned: Sequence[PlannedExam], output_dir: str | Path, policy: PixelPolicy = PixelPolicy(), *,
                    workers: int = 1, progress: bool = True,
                    pool: Executor | None = None) -> tuple[dict[str, dict], list[Failure]]:
    """Write the PNGs and sidecars of ``planned`` exams; a re-run skips images already written."""
    output_dir = Path(output_dir)
    items = []
    for exam in planned:
        for view in VIEWS:
            for image in exam.images[view]:
                s = image.source
                items.append({"name": image.name, "path": s.path, "view": view, "study_uid": s.study_uid,
                              "sop_uid": s.sop_uid, "patient_id": s.patient_id, "facing": s.facing,
                              "mirror": image.mirror, "horizontal_flip": exam.horizontal_flip,
                              "orientation_note": exam.orientation_note, "laterality": s.laterality,
                              "warnings": [s.warning] if s.warning else []})
    by_name = {item["name"]: item for item in items}
    journal = Journal(output_dir / ".convert_journal.jsonl",
                      fingerprint={"stage": "convert-dicom", "voi": policy.voi, "voi_index": policy.voi_index,
                                   "bit_depth": policy.bit_depth})

    def still_valid(name: str) -> bool:
        # Done only if the PNG exists and came from the same file with the same mirroring.
        done = journal[name]["result"]
        return (output_path(output_dir, "images", f"{name}.png").is_file()
                and done.get("source") == by_name[name]["path"]
                and done.get("sop_instance_uid") == by_name[name]["sop_uid"]
                and done.get("pixels", {}).get("mirrored") == by_name[name]["mirror"])

    return map_images(partial(_convert_item, output_dir=str(output_dir), policy=policy), items,
                      [item["name"] for item in items], journal=journal,
                      source_of=lambda name: Path(by_name[name]["path"]), still_valid=still_valid,
                      workers=workers, desc="convert", progress=progress, pool=pool)


def read_labels_csv(path: str | Path) -> dict[str, dict[str, int]]:
    """Breast labels from a CSV with columns study, laterality, malignant, benign.

    ``study`` is the Study Instance UID; ``laterality`` L or R; ``malignant``/``benign`` 0 or 1.
    Returns {study: {'left_malignant': .., 'left_benign': .., ...}} for the breasts listed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    missing = [c for c in ("study", "laterality", "malignant", "benign") if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; expected study, laterality, "
                         f"malignant, benign (found {', '.join(reader.fieldnames or []) or 'no header'})")
    labels: dict[str, dict[str, int]] = {}
    for line, raw in enumerate(reader, start=2):
        row = {name: (raw.get(columns[name]) or "").strip() for name in ("study", "laterality", "malignant", "benign")}
        study, side = row["study"], row["laterality"].upper()
        if side not in ("L", "R", "LEFT", "RIGHT"):
            raise ValueError(f"{path}, line {line}: laterality must be L or R, got {side!r}")
        side_name = "left" if side.startswith("L") else "right"
        entry = labels.setdefault(study, {})
        for kind in ("malignant", "benign"):
            value = row[kind]
            if value not in ("0", "1"):
                raise ValueError(f"{path}, line {line}: {kind} must be 0 or 1, got {value!r}")
            key = f"{side_name}_{kind}"
            if key in entry and entry[key] != int(value):
                raise ValueError(f"{path}, line {line}: conflicting {kind} label for study {study} {side}")
            entry[key] = int(value)
    return labels


def cancer_label(breasts: dict[str, int]) -> dict[str, int]:
    """The NYU cancer_label dict from breast labels; breasts not listed count as negative (0)."""
    label = {key: int(breasts.get(key, 0)) for key in ("left_benign", "right_benign", "left_malignant",
                                                       "right_malignant")}
    label["benign"] = max(label["left_benign"], label["right_benign"])
    label["malignant"] = max(label["left_malignant"], label["right_malignant"])
    label["unknown"] = 0
    return label


def convert_dicom_dir(input_dir: str | Path, output_dir: str | Path, *, policy: PixelPolicy = PixelPolicy(),
                      accept: AcceptPolicy = AcceptPolicy(), labels: dict[str, dict[str, int]] | None = None,
                      workers: int = 1, progress: bool = True, pool: Executor | None = None) -> ConversionReport:
    """Convert every 2-D mammogram under ``input_dir``; write images, sidecars, exam list and manifest.

    Parameters
    ----------
    input_dir : directory searched recursively; file names do not matter.
    output_dir : see the module docstring for the layout (may not be inside ``input_dir``'s files).
    policy : the pixel pipeline's VOI policy and bit-depth override.
    accept : which non-default objects (For Processing, synthesised 2-D) to convert too.
    labels : from :func:`read_labels_csv`; fills ``cancer_label`` of the studies listed.
    workers : parallel processes for reading and converting.
    pool : runs the reading and converting instead of ``workers`` processes (the Ray engine's tasks).
    """
    output_dir = Path(output_dir)
    sources, skipped, failures = scan_dicom_dir(input_dir, accept, exclude=[output_dir], workers=workers,
                                                progress=progress, pool=pool)
    planned = plan_exams(sources)
    converted, convert_failures = convert_planned(planned, output_dir, policy, workers=workers, progress=progress,
                                                  pool=pool)
    failures = failures + convert_failures

    exams, unlabelled = [], []
    for exam in planned:
        images = {view: [image.name for image in exam.images[view] if image.name in converted] for view in VIEWS}
        if not any(images.values()):
            continue
        label = None
        if labels is not None:
            if exam.study_uid in labels:
                label = cancer_label(labels[exam.study_uid])
            else:
                unlabelled.append(exam.study_uid)
        record = Exam(images=images, horizontal_flip=exam.horizontal_flip, cancer_label=label)
        set_exam_metadata(record, exam.metadata(converted))
        exams.append(record)
    save_exam_list(exams, output_dir / EXAM_LIST)
    _write_manifest(output_dir / MANIFEST, planned, converted, skipped, failures)
    warnings = [(image.source.path, image.source.warning) for exam in planned for view in VIEWS
                for image in exam.images[view] if image.source.warning and image.name in converted]
    return ConversionReport(exams, converted, skipped, failures, unlabelled, warnings)


def _write_manifest(path: Path, planned: Sequence[PlannedExam], converted: dict[str, dict],
                    skipped: Sequence[tuple[str, str]], failures: Sequence[Failure]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "status", "image", "view", "study_instance_uid", "reason"])
    failed = {f.name: f.reason for f in failures}
    for exam in planned:
        for view in VIEWS:
            for image in exam.images[view]:
                status = "converted" if image.name in converted else "failed"
                reason = failed.get(image.name, "") if status == "failed" else (image.source.warning or "")
                writer.writerow([image.source.path, status, image.name, view, exam.study_uid, reason])
    image_names = {image.name for exam in planned for view in VIEWS for image in exam.images[view]}
    for f in failures:
        if f.name not in image_names:  # failed while reading the header: named by its path
            writer.writerow([f.name, "failed", "", "", "", f.reason])
    for file, reason in skipped:
        writer.writerow([file, "skipped", "", "", "", reason])
    write_text_atomic(path, out.getvalue())


def summarise(report: ConversionReport) -> str:
    """A few lines for the terminal: counts and the most common skip reasons."""
    lines = [f"converted {len(report.converted)} image(s) into {len(report.exams)} exam(s); "
             f"skipped {len(report.skipped)} file(s); {len(report.failures)} failed"]
    reasons: dict[str, int] = {}
    for _, reason in report.skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {count}: {reason}")
    if report.warnings:
        file, warning = report.warnings[0]
        lines.append(f"  warning: {len(report.warnings)} converted image(s) to check (manifest.csv, their sidecars), "
                     f"e.g. {file}: {warning}")
    if report.unlabelled_studies:
        lines.append(f"  {len(report.unlabelled_studies)} exam(s) have no row in the labels file: "
                     "their cancer_label is left out")
    return "\n".join(lines)

