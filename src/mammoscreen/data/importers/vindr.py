"""VinDr-Mammo (PhysioNet): ``breast-level_annotations.csv`` and ``images/<study_id>/<image_id>.dicom``.

Columns used: ``study_id``, ``image_id``, ``laterality``, ``view_position``, ``breast_birads``
(``BI-RADS 1`` .. ``BI-RADS 5``), ``split``. An exam is a study.

Labels, per breast, from the breast-level BI-RADS assessment (VinDr-Mammo publishes no pathology):
malignant = BI-RADS 4 or 5 (suspicious); benign = BI-RADS 2 or 3; BI-RADS 1 = negative. These are
radiologists' suspicion levels, not biopsy results. ``split`` is kept in each exam.
"""

from __future__ import annotations

from pathlib import Path

from ._common import ImageEntry, Imported, find_file, read_table, set_breast, side_letter
from .inbreast import birads_rank

COLUMNS = ("study_id", "image_id", "laterality", "view_position", "breast_birads")


def read(root: Path, malignant_from: float = 4.0) -> Imported:
    """Read a VinDr-Mammo download rooted at ``root``."""
    table = read_table(find_file(root, ("breast-level_annotations.csv",), "breast-level_annotations.csv"), COLUMNS)
    images, labels, extra, notes = [], {}, {}, []
    missing, other_views = 0, 0
    for row in table.to_dict("records"):
        study, image_id = row["study_id"], row["image_id"]
        side = side_letter(row["laterality"])
        angle = row["view_position"].upper()
        if side is None or angle not in ("CC", "MLO"):
            other_views += 1
            continue
        rank = birads_rank(row["breast_birads"]) or 0.0
        set_breast(labels, study, side, rank >= malignant_from, 2 <= rank < malignant_from)
        if row.get("split"):
            extra.setdefault(study, {"split": row["split"]})
        source = next((p for p in (root / "images" / study / f"{image_id}.dicom",
                                   root / "images" / study / f"{image_id}.dcm") if p.is_file()), None)
        if source is None:
            missing += 1
            continue
        images.append(ImageEntry(study, f"{side}-{angle}", source, order=image_id))
    if missing:
        notes.append(f"{missing} listed image(s) not found under {root / 'images'}")
    if other_views:
        notes.append(f"{other_views} image(s) with views other than CC/MLO left out")
    return Imported(images, labels, extra, notes)
