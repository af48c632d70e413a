"""VinDr-Mammo (PhysioNet): ``breast-level_annotations.csv`` and ``images/<study_id>/<image_id>.dicom``.

Columns used: ``study_id``, ``image_id``, ``laterality``, ``view_position``, ``breast_birads``
(``BI-RADS 1`` .. ``BI-RADS 5``), ``breast_density`` (``DENSITY A`` .. ``DENSITY D``), ``split``
(``training``/``test``). An exam is a study.

Labels, per breast, from the breast's highest BI-RADS assessment (VinDr-Mammo publishes no pathology):
malignant = BI-RADS 4 or 5 (suspicious); benign = BI-RADS 2 or 3; BI-RADS 1 = negative. These are
radiologists' suspicion levels, not biopsy results.

Metadata, per image: ``density``, ``birads``, ``split`` ('train'/'test') and, when
``finding_annotations.csv`` is there, ``abnormality`` from its ``finding_categories`` ('Mass',
'Suspicious Calcification'). Age and manufacturer come from the DICOM headers (Patient's Age,
Manufacturer), read for every importer.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..metadata import MetadataValueError, combine_abnormality, normalise_abnormality
from ._common import (ImageEntry, Imported, ImporterError, MetadataReader, read_table, set_breast_from_birads,
                      side_letter)
from .inbreast import birads_rank

TABLE = "breast-level_annotations.csv"
FINDINGS = "finding_annotations.csv"
COLUMNS = ("study_id", "image_id", "laterality", "view_position", "breast_birads")
PARTS = (TABLE, "images")  # names whose presence means "this is the dataset, incomplete"
LAYOUT = f"{TABLE} and the images/ folder (PhysioNet's vindr-mammo/1.0.0/)"


def is_root(path: Path) -> bool:
    """A VinDr-Mammo release folder: the breast-level table beside images/."""
    return (path / TABLE).is_file() and (path / "images").is_dir()


def _abnormalities(root: Path) -> dict[str, str]:
    """image_id -> 'mass' / 'calcification' / 'mass+calcification' from finding_annotations.csv, if present."""
    path = root / FINDINGS
    if not path.is_file():
        return {}
    frame = read_table(path, ("image_id", "finding_categories"))
    found: dict[str, list[str]] = {}
    for row in frame.to_dict("records"):
        for category in re.findall(r"[\"']([^\"']+)[\"']", row["finding_categories"]) or [row["finding_categories"]]:
            try:
                kind = normalise_abnormality(category)
            except MetadataValueError:
                continue  # other findings (asymmetries, architectural distortion, ...) are not an abnormality type
            if kind:
                found.setdefault(row["image_id"], []).append(kind)
    return {image: combine_abnormality(*kinds) for image, kinds in found.items()}


def read(root: Path, malignant_from: float = 4.0) -> Imported:
    """Read a VinDr-Mammo download rooted at ``root``."""
    if not (root / TABLE).is_file():
        raise ImporterError(f"{root}: {TABLE} not found")
    table = read_table(root / TABLE, COLUMNS)
    values = MetadataReader(TABLE)
    notes: list[str] = []
    abnormalities = _abnormalities(root)
    images, labels = [], {}
    highest: dict[tuple[str, str], float] = {}
    missing, other_views = 0, 0
    for row in table.to_dict("records"):
        study, image_id = row["study_id"], row["image_id"]
        side = side_letter(row["laterality"])
        angle = row["view_position"].upper()
        if side is None or angle not in ("CC", "MLO"):
            other_views += 1
            continue
        rank = birads_rank(row["breast_birads"]) or 0.0
        highest[(study, side)] = max(highest.get((study, side), 0.0), rank)
        source = next((p for p in (root / "images" / study / f"{image_id}.dicom",
                                   root / "images" / study / f"{image_id}.dcm") if p.is_file()), None)
        if source is None:
            missing += 1
            continue
        images.append(ImageEntry(study, f"{side}-{angle}", source, order=image_id,
                                 metadata={"density": values("density", row, "breast_density"),
                                           "birads": values("birads", row, "breast_birads"),
                                           "split": values("split", row, "split"),
                                           "abnormality": abnormalities.get(image_id)}))
    set_breast_from_birads(labels, highest, malignant_from)
    if missing:
        notes.append(f"{missing} listed image(s) not found under {root / 'images'}")
    if other_views:
        notes.append(f"{other_views} image(s) with views other than CC/MLO left out")
    notes.extend(values.notes())
    return Imported(images, labels, {}, notes, dataset="vindr-mammo")
