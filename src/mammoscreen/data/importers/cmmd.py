"""CMMD (The Chinese Mammography Database, TCIA): the clinical sheet and the DICOM tree.

The clinical data ``CMMD_clinicaldata_revision.xlsx`` (or a CSV export) has one row per affected
breast: ``ID1`` (patient, e.g. D1-0001), ``LeftRight`` (L/R), ``classification`` (Benign/Malignant).
Views and laterality are not in the sheet: they are read from the DICOM headers (Image Laterality,
View Code Sequence), found anywhere under ``root``; Patient ID matches ``ID1``. An exam is a study.

Labels, per breast: malignant = classification Malignant; benign = classification Benign. A breast
that was imaged but has no row in the sheet is taken as negative.

Metadata: per exam ``age`` (``Age``) and ``subtype`` (as spelt, e.g. 'Luminal A'); per image, for the
images of a breast with a row, ``abnormality`` (``abnormality``: mass, calcification, both).
"""

from __future__ import annotations

from pathlib import Path

from ..convert import scan_dicom_dir
from ..dicom import AcceptPolicy
from ._common import ImageEntry, Imported, MetadataReader, find_file, read_table, set_breast, side_letter

COLUMNS = ("ID1", "LeftRight", "classification")
TABLES = ("CMMD_clinicaldata_revision.xlsx", "CMMD_clinicaldata_revision.csv", "CMMD_clinicaldata_revision.xls")
PARTS = TABLES  # names whose presence means "this is the dataset, incomplete"
LAYOUT = "CMMD_clinicaldata_revision.xlsx (or a CSV export) and the DICOM tree"
# The importers' one accept policy is applied to every image afterwards (_common.check_headers), so the scan
# here lets those kinds of object through and only skips what is never a 2-D CC/MLO mammogram.
_SCAN_ACCEPT = AcceptPolicy(for_processing=True, synthesized_2d=True)


def is_root(path: Path) -> bool:
    """A CMMD folder: the clinical sheet in it or one level down (the DICOMs anywhere below)."""
    return any(p.is_file() for name in TABLES for p in [path / name, *path.glob(f"*/{name}")])


def read(root: Path, workers: int = 1, progress: bool = False) -> Imported:
    """Read a CMMD download rooted at ``root``."""
    table_path = find_file(root, TABLES, "the CMMD clinical data sheet")
    table = read_table(table_path, COLUMNS)
    values = MetadataReader(table_path.name)
    findings: dict[str, dict[str, int]] = {}
    patient_metadata: dict[str, dict] = {}
    breast_abnormality: dict[tuple[str, str], str | None] = {}
    for row in table.to_dict("records"):
        side = side_letter(row["LeftRight"])
        if row["ID1"] and side:
            kind = row["classification"].strip().lower()
            set_breast(findings, row["ID1"], side, kind == "malignant", kind == "benign")
            known = patient_metadata.setdefault(row["ID1"], {})
            for key, column in (("age", "Age"), ("subtype", "subtype")):
                value = values(key, row, column)
                if value is not None:
                    known[key] = value if known.get(key, value) == value else None
            breast_abnormality[(row["ID1"], side)] = values("abnormality", row, "abnormality")
    sources, skipped, failures = scan_dicom_dir(root, _SCAN_ACCEPT, workers=workers, progress=progress)
    images, labels, notes, metadata = [], {}, [], {}
    seen_patients = set()
    for source in sources:
        patient = source.patient_id or Path(source.path).relative_to(root).parts[0]
        seen_patients.add(patient)
        abnormality = breast_abnormality.get((patient, source.view[0]))
        images.append(ImageEntry(source.study_uid, source.view, Path(source.path),
                                 order=f"{source.instance_number:06d}",
                                 metadata={"abnormality": abnormality} if abnormality else {}))
        labels.setdefault(source.study_uid, dict(findings.get(patient, {})))
        metadata.setdefault(source.study_uid, dict(patient_metadata.get(patient, {})))
    unmatched = sorted(set(findings) - seen_patients)
    if unmatched:
        notes.append(f"{len(unmatched)} patient(s) in the clinical sheet without images (e.g. {unmatched[0]})")
    if skipped:
        notes.append(f"{len(skipped)} file(s) under {root} skipped (not 2-D CC/MLO mammograms)")
    if failures:
        notes.append(f"{len(failures)} unreadable DICOM file(s), e.g. {failures[0]}")
    notes.extend(values.notes())
    return Imported(images, labels, {}, notes, metadata, dataset="cmmd")
