"""Importers for public mammography datasets: published metadata -> standard exam list with labels.

Each importer reads a dataset as downloaded (its metadata files and folder layout), and
:func:`import_dataset` writes ``exam_list.pkl`` (images named ``<exam>_<view>``), ``sources.csv``
(image name -> original file) and, with ``convert=True``, the 16-bit PNGs. Each module's docstring
states the label definition it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..dicom import PixelPolicy
from . import cbis_ddsm, cmmd, inbreast, rsna, vindr
from ._common import EXAM_LIST, SOURCES, ImageEntry, Imported, ImporterError, ImportResult, build_exams, finish

IMPORTERS: dict[str, Callable[..., Imported]] = {
    "cbis-ddsm": cbis_ddsm.read,
    "inbreast": inbreast.read,
    "cmmd": cmmd.read,
    "vindr-mammo": vindr.read,
    "rsna": rsna.read,
}


def import_dataset(dataset: str, root: str | Path, output_dir: str | Path, *, convert: bool = False,
                   policy: PixelPolicy = PixelPolicy(), workers: int = 1, progress: bool = True) -> ImportResult:
    """Read ``dataset`` (a key of :data:`IMPORTERS`) at ``root`` and write its exam list to ``output_dir``."""
    if dataset not in IMPORTERS:
        raise ImporterError(f"unknown dataset {dataset!r}; choose from {', '.join(sorted(IMPORTERS))}")
    root = Path(root)
    if not root.is_dir():
        raise ImporterError(f"dataset root not found: {root}")
    imported = IMPORTERS[dataset](root)
    if not imported.images:
        raise ImporterError(f"{root}: no {dataset} images found; " + ("; ".join(imported.notes) or
                                                                     "check --root points at the download"))
    return finish(imported, Path(output_dir), convert, policy, workers, progress)


__all__ = ["IMPORTERS", "import_dataset", "ImporterError", "ImportResult", "Imported", "ImageEntry", "build_exams",
           "EXAM_LIST", "SOURCES"]
