"""RSNA Screening Mammography Breast Cancer Detection: ``train.csv`` and ``train_images/<patient>/<image>.dcm``.

Columns used: ``patient_id``, ``image_id``, ``laterality``, ``view``, ``cancer``, ``biopsy``. An exam
is a patient (the competition data hold one screening exam per patient).

Labels, per breast: malignant = ``cancer`` is 1; benign = ``biopsy`` is 1 and ``cancer`` is 0 (a
biopsied finding that was not cancer). Views other than CC and MLO (AT, ML, LM, LMO) are left out.

Metadata, per exam: ``age`` (``age``, e.g. 61.0 -> 61), ``site`` (``site_id``), ``machine_id``,
``implant`` (0/1 -> False/True); per image: ``density`` (``density`` A-D, blank -> None) and
``birads`` (``BIRADS`` 0-2, blank -> None).
"""

from __future__ import annotations

from pathlib import Path

from ._common import ImageEntry, Imported, MetadataReader, find_file, read_table, set_breast, side_letter

COLUMNS = ("patient_id", "image_id", "laterality", "view", "cancer", "biopsy")
PARTS = ("train.csv", "train_images")  # names whose presence means "this is the dataset, incomplete"
LAYOUT = "train.csv and the train_images/ folder"
EXAM_COLUMNS = {"age": "age", "site": "site_id", "machine_id": "machine_id", "implant": "implant"}


def is_root(path: Path) -> bool:
    """The competition's data folder: train.csv beside train_images/."""
    return (path / "train.csv").is_file() and (path / "train_images").is_dir()


def read(root: Path) -> Imported:
    """Read the RSNA competition data rooted at ``root``."""
    table = read_table(find_file(root, ("train.csv",), "train.csv"), COLUMNS)
    values = MetadataReader("train.csv")
    images, labels, notes, metadata = [], {}, [], {}
    missing, other_views = 0, 0
    for row in table.to_dict("records"):
        patient, image_id = row["patient_id"], row["image_id"]
        side = side_letter(row["laterality"])
        angle = row["view"].upper()
        cancer = row["cancer"] == "1"
        if side is not None:
            set_breast(labels, patient, side, cancer, row["biopsy"] == "1" and not cancer)
        known = metadata.setdefault(patient, {})
        for key, column in EXAM_COLUMNS.items():
            value = values(key, row, column)
            if value is not None:  # one value per patient; rows that disagree leave it empty
                known[key] = value if known.get(key, value) == value else None
        if side is None or angle not in ("CC", "MLO"):
            other_views += 1
            continue
        source = root / "train_images" / patient / f"{image_id}.dcm"
        if not source.is_file():
            missing += 1
            continue
        images.append(ImageEntry(patient, f"{side}-{angle}", source, order=image_id.zfill(12),
                                 metadata={"density": values("density", row, "density"),
                                           "birads": values("birads", row, "BIRADS")}))
    if missing:
        notes.append(f"{missing} listed image(s) not found under {root / 'train_images'}")
    if other_views:
        notes.append(f"{other_views} image(s) with views other than CC/MLO left out (their labels still count)")
    notes.extend(values.notes())
    return Imported(images, labels, {}, notes, metadata, dataset="rsna")
