"""CBIS-DDSM (TCIA): the case-description CSVs and the full-mammogram DICOM folders.

Files read: ``mass_case_description_{train,test}_set.csv`` and ``calc_case_description_{train,test}_set.csv``
(columns ``patient_id``, ``left or right breast``, ``image view``, ``pathology``, ``image file path``).
The full mammogram of a row is the DICOM file under the folder named by the first component of
``image file path`` (e.g. ``Mass-Training_P_00001_LEFT_CC``); the CSV's own sub-path is used when it
exists, since TCIA downloads name the sub-folders and files differently.

Labels, per breast: malignant = any abnormality of the breast has pathology MALIGNANT; benign = any
has BENIGN or BENIGN_WITHOUT_CALLBACK. An exam is a patient (``patient_id``); the same image listed
in both the mass and the calcification tables is used once. CBIS-DDSM holds only breasts with
abnormalities; the other breast, when absent, has no images and negative labels.

Metadata, per image (its abnormalities' rows): ``density`` from ``breast_density`` (mass tables) or
``breast density`` (calcification tables), 1-4 -> A-D; ``birads`` the highest ``assessment``;
``abnormality`` from ``abnormality type``; ``split`` ('train'/'test') from the table the image's
abnormalities are listed in. The split belongs to the abnormality, not the patient: the official tables
list some patients in both (31), and such a patient's images keep their own splits (an image listed in
both is left without one); the overlap is reported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..metadata import combine_abnormality
from ._common import ImageEntry, Imported, ImporterError, MetadataReader, read_table, set_breast, side_letter
from .inbreast import birads_rank

TABLES = ("mass_case_description_train_set.csv", "mass_case_description_test_set.csv",
          "calc_case_description_train_set.csv", "calc_case_description_test_set.csv")
COLUMNS = ("patient_id", "left or right breast", "image view", "pathology", "image file path")
DENSITY_COLUMNS = ("breast_density", "breast density")  # the mass and calcification tables spell it differently
PARTS = TABLES  # names whose presence means "this is the dataset, incomplete"
LAYOUT = "the case-description CSVs (mass_/calc_case_description_{train,test}_set.csv) and the DICOM folders"


def is_root(path: Path) -> bool:
    """A CBIS-DDSM top folder: a case-description CSV in it or one level down (the DICOMs anywhere below)."""
    return any(p.is_file() for name in TABLES for p in [path / name, *path.glob(f"*/{name}")])


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


class _ImageFacts:
    """What the rows of one full mammogram say about it."""

    def __init__(self) -> None:
        self.splits: set[str] = set()
        self.densities: set[str] = set()
        self.birads: list[str] = []
        self.abnormalities: list[str | None] = []

    def metadata(self) -> dict:
        ranked = [(birads_rank(b) or 0.0, b) for b in self.birads]
        return {"density": next(iter(self.densities)) if len(self.densities) == 1 else None,
                "birads": max(ranked)[1] if ranked else None,
                "abnormality": combine_abnormality(*self.abnormalities),
                "split": next(iter(self.splits)) if len(self.splits) == 1 else None}


def read(root: Path) -> Imported:
    """Read a CBIS-DDSM download rooted at ``root``."""
    tables = _find_tables(root)
    index = _dicom_index(root)
    images: dict[tuple[str, str], ImageEntry] = {}
    facts: dict[tuple[str, str], _ImageFacts] = {}
    labels: dict[str, dict[str, int]] = {}
    patient_splits: dict[str, set[str]] = {}
    notes: list[str] = []
    missing = 0
    for table in tables:
        split = "test" if "test" in table.name else "train"
        frame = read_table(table, COLUMNS)
        values = MetadataReader(table.name)
        density_column = next((c for c in DENSITY_COLUMNS if c in frame.columns), "")
        for row in frame.to_dict("records"):
            patient = row["patient_id"]
            side = side_letter(row["left or right breast"])
            angle = row["image view"].upper()
            pathology = row["pathology"].upper()
            if side is None or angle not in ("CC", "MLO"):
                continue
            set_breast(labels, patient, side, pathology == "MALIGNANT",
                       pathology in ("BENIGN", "BENIGN_WITHOUT_CALLBACK"))
            patient_splits.setdefault(patient, set()).add(split)
            key = (patient, f"{side}-{angle}")
            fact = facts.setdefault(key, _ImageFacts())
            fact.splits.add(split)
            density = values("density", row, density_column)
            if density:
                fact.densities.add(density)
            birads = values("birads", row, "assessment")
            if birads:
                fact.birads.append(birads)
            fact.abnormalities.append(values("abnormality", row, "abnormality type"))
            if key in images:
                continue
            source = _resolve(root, row["image file path"], index)
            if source is None:
                missing += 1
                continue
            images[key] = ImageEntry(patient, key[1], source)
        notes.extend(values.notes())
    entries = [ImageEntry(e.exam_id, e.view, e.source, e.order, facts[key].metadata()) for key, e in images.items()]
    if missing:
        notes.append(f"{missing} listed full mammogram(s) not found under {root}; their rows only count for labels")
    notes.extend(_overlap_notes(patient_splits, facts))
    return Imported(entries, labels, {}, notes, dataset="cbis-ddsm")


def _overlap_notes(patient_splits: dict[str, set[str]], facts: dict[tuple[str, str], _ImageFacts]) -> list[str]:
    both = sorted(p for p, splits in patient_splits.items() if len(splits) > 1)
    if not both:
        return []
    mixed = sorted(f"{p}_{view}" for (p, view), fact in facts.items() if len(fact.splits) > 1)
    note = (f"{len(both)} patient(s) appear in both the training and the test tables (e.g. {both[0]}); each image "
            "keeps the split of the abnormalities listed for it (metadata 'split') - split by image, not by patient")
    if mixed:
        note += f"; {len(mixed)} image(s) are listed in both (e.g. {mixed[0]}) and have no split"
    return [note]


def _resolve(root: Path, listed: str, index: dict[str, list[Path]]) -> Path | None:
    listed = listed.strip().replace("\\", "/")
    direct = root / listed
    if direct.is_file():
        return direct
    subject = listed.split("/")[0]
    candidates = sorted(set(index.get(subject, [])))
    return candidates[0] if len(candidates) >= 1 else None
