"""CMMD (The Chinese Mammography Database, TCIA): the clinical sheet and the DICOM tree.

The clinical data ``CMMD_clinicaldata_revision.xlsx`` (or a CSV export) has one row per affected
breast: ``ID1`` (patient, e.g. D1-0001), ``LeftRight`` (L/R), ``classification`` (Benign/Malignant).
Views and laterality are not in the sheet: they are read from the DICOM headers (Image Laterality,
View Code Sequence), found anywhere under ``root``; Patient ID matches ``ID1``. An exam is a study.

Labels, per breast: malignant = classification Malignant; benign = classification Benign. A breast
that was imaged but has no row in the sheet is taken as negative.
"""

from __future__ import annotations

from pathlib import Path

from ..convert import scan_dicom_dir
from ._common import ImageEntry, Imported, find_file, read_table, set_breast, side_letter

COLUMNS = ("ID1", "LeftRight", "classification")
TABLES = ("CMMD_clinicaldata_revision.xlsx", "CMMD_clinicaldata_revision.csv", "CMMD_clinicaldata_revision.xls")


def read(root: Path, workers: int = 1, progress: bool = False) -> Imported:
    """Read a CMMD download rooted at ``root``."""
    table = read_table(find_file(root, TABLES, "the CMMD clinical data sheet"), COLUMNS)
    findings: dict[str, dict[str, int]] = {}
    for row in table.to_dict("records"):
        side = side_letter(row["LeftRight"])
        if row["ID1"] and side:
            kind = row["classification"].strip().lower()
            set_breast(findings, row["ID1"], side, kind == "malignant", kind == "benign")
    sources, skipped, failures = scan_dicom_dir(root, workers=workers, progress=progress)
    images, labels, notes = [], {}, []
    seen_patients = set()
    for source in sources:
        patient = source.patient_id or Path(source.path).relative_to(root).parts[0]
        seen_patients.add(patient)
        images.append(ImageEntry(source.study_uid, source.view, Path(source.path),
                                 order=f"{source.instance_number:06d}"))
        labels.setdefault(source.study_uid, dict(findings.get(patient, {})))
    unmatched = sorted(set(findings) - seen_patients)
    if unmatched:
        notes.append(f"{len(unmatched)} patient(s) in the clinical sheet without images (e.g. {unmatched[0]})")
    if skipped:
        notes.append(f"{len(skipped)} file(s) under {root} skipped (not 2-D CC/MLO mammograms)")
    if failures:
        notes.append(f"{len(failures)} unreadable DICOM file(s), e.g. {failures[0]}")
    return Imported(images, labels, {}, notes)
