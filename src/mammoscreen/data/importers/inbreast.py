"""INbreast: ``INbreast.csv`` (or ``INbreast.xls``) and the ``AllDICOMs`` folder.

Table columns used: ``Laterality``, ``View``, ``File Name``, ``Bi-Rads`` (``Acquisition date`` for
grouping). DICOM files are named ``<File Name>_<patient>_MG_<L|R>_<CC|ML>_ANON.dcm``; the anonymised
patient code in that name and the acquisition date make an exam.

Labels, per breast, from the highest BI-RADS among its images (no pathology is published for every
image): malignant = BI-RADS 4 (4a, 4b, 4c), 5 or 6; benign = BI-RADS 2 or 3; BI-RADS 1 = negative.
Pass ``malignant_from`` to :func:`read` to choose another threshold.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._common import ImageEntry, Imported, ImporterError, find_file, read_table, set_breast, side_letter

COLUMNS = ("Laterality", "View", "File Name", "Bi-Rads")
FILE_PATTERN = re.compile(r"^(\d+)_([0-9a-fA-F]+)_MG_([LR])_(CC|ML|MLO)_ANON\.dcm$", re.IGNORECASE)


def birads_rank(value: str) -> float | None:
    """BI-RADS as a number for comparison: '4a' -> 4.1, '4b' -> 4.2, '4c' -> 4.3, '5' -> 5; None if unknown."""
    value = value.strip().lower().replace("bi-rads", "").strip()
    match = re.fullmatch(r"([0-6])([abc]?)", value)
    if not match:
        return None
    return int(match.group(1)) + {"": 0.0, "a": 0.1, "b": 0.2, "c": 0.3}[match.group(2)]


def read(root: Path, malignant_from: float = 4.0) -> Imported:
    """Read an INbreast release rooted at ``root``."""
    table_path = find_file(root, ("INbreast.csv", "INbreast.xls", "INbreast.xlsx"), "the INbreast table")
    if table_path.suffix.lower() == ".csv":
        frame = read_table(table_path, COLUMNS, sep=";")
    else:
        frame = read_table(table_path, COLUMNS)
    dicom_dir = root / "AllDICOMs"
    if not dicom_dir.is_dir():
        raise ImporterError(f"{root}: AllDICOMs folder not found")
    files: dict[str, tuple[Path, str]] = {}
    for path in sorted(dicom_dir.iterdir()):
        match = FILE_PATTERN.match(path.name)
        if match:
            files[match.group(1)] = (path, match.group(2).lower())

    images, labels, notes = [], {}, []
    missing, unrated = 0, 0
    for row in frame.to_dict("records"):
        file_id = row["File Name"].split(".")[0]
        if not file_id:
            continue  # blank or summary lines at the end of the sheet
        side = side_letter(row["Laterality"])
        angle = {"CC": "CC", "MLO": "MLO", "ML": "MLO"}.get(row["View"].upper())
        if file_id not in files:
            missing += 1
            continue
        path, patient = files[file_id]
        if side is None or angle is None:
            notes.append(f"{path.name}: laterality {row['Laterality']!r} / view {row['View']!r} not used")
            continue
        exam_id = f"{patient}_{row.get('Acquisition date', '')}".rstrip("_")
        images.append(ImageEntry(exam_id, f"{side}-{angle}", path, order=file_id))
        rank = birads_rank(row["Bi-Rads"])
        if rank is None:
            unrated += 1
            rank = 0.0
        set_breast(labels, exam_id, side, rank >= malignant_from, 2 <= rank < malignant_from)
    if missing:
        notes.append(f"{missing} table row(s) without a DICOM file in {dicom_dir}")
    if unrated:
        notes.append(f"{unrated} image(s) without a readable BI-RADS: counted as negative")
    return Imported(images, labels, {}, notes)
