"""INbreast: ``INbreast.csv`` (or ``INbreast.xls``) and the ``AllDICOMs`` folder.

Table columns used: ``Laterality``, ``View``, ``File Name``, ``Bi-Rads`` (``Acquisition date`` for
grouping). DICOM files are named ``<File Name>_<patient>_MG_<L|R>_<CC|ML>_ANON.dcm``; the anonymised
patient code in that name and the acquisition date make an exam.

Labels, per breast, from the highest BI-RADS among its images (no pathology is published for every
image): malignant = highest BI-RADS 4 (4a, 4b, 4c), 5 or 6; benign = highest 2 or 3; highest 1 =
negative. A breast with a BI-RADS 2 and a BI-RADS 5 image is malignant, not also benign. Pass
``malignant_from`` to :func:`read` to choose another threshold. Images in views other than CC and MLO
(INbreast has a few ``FB`` images) are left out, but their BI-RADS counts for their breast.

Metadata, per image: ``density`` from ``ACR`` (1-4 -> A-D), ``birads`` from ``Bi-Rads``; per exam:
``age`` from ``Patient age`` where the release gives it (the public one says 'removed').
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from ._common import (ImageEntry, Imported, ImporterError, MetadataReader, find_file, read_table,
                      set_breast_from_birads, side_letter)

COLUMNS = ("Laterality", "View", "File Name", "Bi-Rads")
TABLES = ("INbreast.csv", "INbreast.xls", "INbreast.xlsx")
FILE_PATTERN = re.compile(r"^(\d+)_([0-9a-fA-F]+)_MG_([LR])_([A-Z]+)_ANON\.dcm$", re.IGNORECASE)
PARTS = (*TABLES, "AllDICOMs")  # names whose presence means "this is the dataset, incomplete"
LAYOUT = "INbreast.csv (or INbreast.xls) and the AllDICOMs folder"


def is_root(path: Path) -> bool:
    """An INbreast release folder: AllDICOMs/ and the table (in it or one level down)."""
    return (path / "AllDICOMs").is_dir() and any(p.is_file() for name in TABLES
                                                  for p in [path / name, *path.glob(f"*/{name}")])


def birads_rank(value: str) -> float | None:
    """BI-RADS as a number for comparison: '4a' -> 4.1, '4b' -> 4.2, '4c' -> 4.3, '5' -> 5; None if unknown."""
    value = value.strip().lower().replace("bi-rads", "").strip()
    match = re.fullmatch(r"([0-6])([abc]?)", value)
    if not match:
        return None
    return int(match.group(1)) + {"": 0.0, "a": 0.1, "b": 0.2, "c": 0.3}[match.group(2)]


def read(root: Path, malignant_from: float = 4.0) -> Imported:
    """Read an INbreast release rooted at ``root``."""
    table_path = find_file(root, TABLES, "the INbreast table")
    if table_path.suffix.lower() == ".csv":
        frame = read_table(table_path, COLUMNS, sep=";")
    else:
        frame = read_table(table_path, COLUMNS)
    dicom_dir = root / "AllDICOMs"
    if not dicom_dir.is_dir():
        raise ImporterError(f"{root}: AllDICOMs folder not found")
    files: dict[str, tuple[Path, str, str]] = {}
    for path in sorted(dicom_dir.iterdir()):
        match = FILE_PATTERN.match(path.name)
        if match:
            files[match.group(1)] = (path, match.group(2).lower(), match.group(4).upper())

    values = MetadataReader(table_path.name)
    images, labels, notes = [], {}, []
    metadata: dict[str, dict] = {}
    highest: dict[tuple[str, str], float] = {}
    other_views: Counter[str] = Counter()
    missing, unrated = 0, 0
    for row in frame.to_dict("records"):
        file_id = row["File Name"].split(".")[0]
        if not file_id:
            continue  # blank or summary lines at the end of the sheet
        if file_id not in files:
            missing += 1
            continue
        path, patient, file_view = files[file_id]
        side = side_letter(row["Laterality"])
        if side is None:
            side = side_letter(path.name.split("_")[3])
            if side is not None:
                notes.append(f"{path.name}: laterality {row['Laterality']!r} in the table not understood; the "
                             f"file name's ({side}) used")
        view = (row["View"] or file_view).upper()
        angle = {"CC": "CC", "MLO": "MLO", "ML": "MLO"}.get(view)
        exam_id = f"{patient}_{row.get('Acquisition date', '')}".rstrip("_")
        rank = birads_rank(row["Bi-Rads"])
        if rank is None:
            unrated += 1
            rank = 0.0
        if side is None:
            notes.append(f"{path.name}: laterality {row['Laterality']!r} is neither L nor R, nor is the file "
                         "name's: left out")
            continue
        highest[(exam_id, side)] = max(highest.get((exam_id, side), 0.0), rank)
        if angle is None:
            other_views[view or "missing"] += 1
            continue
        age = values("age", row, "Patient age")
        if age is not None:
            metadata.setdefault(exam_id, {})["age"] = age
        images.append(ImageEntry(exam_id, f"{side}-{angle}", path, order=file_id,
                                 metadata={"density": values("density", row, "ACR"),
                                           "birads": values("birads", row, "Bi-Rads")}))
    set_breast_from_birads(labels, highest, malignant_from)
    if other_views:
        shown = ", ".join(f"{view} {count}" for view, count in sorted(other_views.items()))
        notes.append(f"{sum(other_views.values())} image(s) in views other than CC/MLO left out ({shown}): unsupported "
                     "view; their BI-RADS still counts for the breast label")
    if missing:
        notes.append(f"{missing} table row(s) without a DICOM file in {dicom_dir}")
    if unrated:
        notes.append(f"{unrated} image(s) without a readable BI-RADS: counted as negative")
    notes.extend(values.notes())
    return Imported(images, labels, {}, notes, metadata, dataset="inbreast")
