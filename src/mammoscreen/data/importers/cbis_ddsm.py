"""CBIS-DDSM (TCIA): the case-description CSVs and the full-mammogram DICOM folders.

Files read: ``mass_case_description_{train,test}_set.csv`` and ``calc_case_description_{train,test}_set.csv``
(columns ``patient_id``, ``left or right breast``, ``image view``, ``pathology``, ``image file path``).
The full mammogram of a row is the DICOM file under the folder named by the first component of
``image file path`` (e.g. ``Mass-Training_P_00001_LEFT_CC``); the CSV's own sub-path is used when it
exists, since TCIA downloads name the sub-folders and files differently.

Labels, per breast: malignant = any abnormality of the breast has pathology MALIGNANT; benign = any
has BENIGN or BENIGN_WITHOUT_CALLBACK. An exam is a patient (``patient_id``); the same image listed
in both the mass and the calcification tables is used once. ``split`` ('train'/'test') comes from the
file name. CBIS-DDSM holds only breasts with abnormalities; the other breast, when absent, has no
images and negative labels.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._common import ImageEntry, Imported, ImporterError, read_table, set_breast, side_letter

TABLES = ("mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
          "calc_case_description_train_set.csv", "calc_case_description_test_set.csv")
COLUMNS = ("patient_id", "left or right breast", "image view", "pathology", "image file path")


def _find_tables(root: Path) -> list[Path]:
    found = []
    for name in TABLES:
        found.extend(p for p in [root / name, *sorted(root.glob(f"*/{name}"))] if p.is_file())
    if not found:
        raise ImporterError(f"{root}: no CBIS-DDSM case-description CSV found (expected {', '.join(TABLES)})")
    return found


def _dicom_index(root: Path) -> dict[str, list[Path]]:
    """Folder name -> DICOM files anywhere below that folder, for the folders directly holding series."""
    index: dict[str, list[Path]] = {}
    for dirpath, _, filenames in os.walk(root):
        dicoms = [Path(dirpath) / f for f in filenames if f.lower().endswith(".dcm")]
        if not dicoms:
            continue
        for parent in Path(dirpath).relative_to(root).parts:
            index.setdefault(parent, []).extend(dicoms)
    return index


def read(root: Path) -> Imported:
    """Read a CBIS-DDSM download rooted at ``root``."""
    tables = _find_tables(root)
    index = _dicom_index(root)
    images: dict[tuple[str, str], ImageEntry] = {}
    labels: dict[str, dict[str, int]] = {}
    extra: dict[str, dict[str, str]] = {}
    notes = []
    missing = 0
    for table in tables:
        split = "test" if "test" in table.name else "train"
        frame = read_table(table, COLUMNS)
        for row in frame.to_dict("records"):
            patient = row["patient_id"]
            side = side_letter(row["left or right breast"])
            angle = row["image view"].upper()
            pathology = row["pathology"].upper()
            if side is None or angle not in ("CC", "MLO"):
                continue
            set_breast(labels, patient, side, pathology == "MALIGNANT",
                       pathology in ("BENIGN", "BENIGN_WITHOUT_CALLBACK"))
            extra.setdefault(patient, {"split": split})
            key = (patient, f"{side}-{angle}")
            if key in images:
                continue
            source = _resolve(root, row["image file path"], index)
            if source is None:
                missing += 1
                continue
            images[key] = ImageEntry(patient, key[1], source)
    if missing:
        notes.append(f"{missing} listed full mammogram(s) not found under {root}; their rows only count for labels")
    return Imported(list(images.values()), labels, extra, notes)


def _resolve(root: Path, listed: str, index: dict[str, list[Path]]) -> Path | None:
    listed = listed.strip().replace("\\", "/")
    direct = root / listed
    if direct.is_file():
        return direct
    subject = listed.split("/")[0]
    candidates = sorted(set(index.get(subject, [])))
    return candidates[0] if len(candidates) >= 1 else None
