"""RSNA Screening Mammography Breast Cancer Detection: ``train.csv`` and ``train_images/<patient>/<image>.dcm``.

Columns used: ``patient_id``, ``image_id``, ``laterality``, ``view``, ``cancer``, ``biopsy``. An exam
is a patient (the competition data hold one screening exam per patient).

Labels, per breast: malignant = ``cancer`` is 1; benign = ``biopsy`` is 1 and ``cancer`` is 0 (a
biopsied finding that was not cancer). Views other than CC and MLO (AT, ML, LM, LMO) are left out.
"""

from __future__ import annotations

from pathlib import Path

from ._common import ImageEntry, Imported, find_file, read_table, set_breast, side_letter

COLUMNS = ("patient_id", "image_id", "laterality", "view", "cancer", "biopsy")


def read(root: Path) -> Imported:
    """Read the RSNA competition data rooted at ``root``."""
    table = read_table(find_file(root, ("train.csv",), "train.csv"), COLUMNS)
    images, labels, notes = [], {}, []
    missing, other_views = 0, 0
    for row in table.to_dict("records"):
        patient, image_id = row["patient_id"], row["image_id"]
        side = side_letter(row["laterality"])
        angle = row["view"].upper()
        cancer = row["cancer"] == "1"
        if side is not None:
            set_breast(labels, patient, side, cancer, row["biopsy"] == "1" and not cancer)
        if side is None or angle not in ("CC", "MLO"):
            other_views += 1
            continue
        source = root / "train_images" / patient / f"{image_id}.dcm"
        if not source.is_file():
            missing += 1
            continue
        images.append(ImageEntry(patient, f"{side}-{angle}", source, order=image_id.zfill(12)))
    if missing:
        notes.append(f"{missing} listed image(s) not found under {root / 'train_images'}")
    if other_views:
        notes.append(f"{other_views} image(s) with views other than CC/MLO left out (their labels still count)")
    return Imported(images, labels, {}, notes)
