"""Importers for public mammography datasets: published metadata -> standard exam list with labels.

Each importer reads a dataset as downloaded (its metadata files and folder layout), and
:func:`import_dataset` writes ``exam_list.pkl`` (images named ``<exam>_<view>``), ``sources.csv``
(image name -> original file) and, with ``convert=True``, the 16-bit PNGs. Each module's docstring
states the label definition it uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..dicom import AcceptPolicy, PixelPolicy
from . import cbis_ddsm, cmmd, inbreast, rsna, vindr
from ._common import EXAM_LIST, SOURCES, ImageEntry, Imported, ImporterError, ImportResult, build_exams, finish

IMPORTERS: dict[str, Callable[..., Imported]] = {
    "cbis-ddsm": cbis_ddsm.read,
    "inbreast": inbreast.read,
    "cmmd": cmmd.read,
    "vindr-mammo": vindr.read,
    "rsna": rsna.read,
}

# How each dataset's top folder is recognised, and what it holds (for the message when it is not found).
_LAYOUTS = {"cbis-ddsm": cbis_ddsm, "inbreast": inbreast, "cmmd": cmmd, "vindr-mammo": vindr, "rsna": rsna}


def locate_root(dataset: str, root: str | Path) -> Path:
    """The dataset's top folder: ``root`` itself, or the one sub-folder of ``root`` that holds the dataset (as
    when ``root`` is the folder a release unpacks into: ``INbreast Release 1.0/``, PhysioNet's ``1.0.0/``,
    a TCIA manifest folder). ImporterError naming what was looked for, and the candidates, otherwise."""
    layout = _LAYOUTS[dataset]
    root = Path(root)
    if layout.is_root(root):
        return root
    children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [child for child in children if layout.is_root(child)]
    if len(found) == 1:
        return found[0]
    if not found and any((root / name).exists() for name in layout.PARTS):
        return root  # the dataset, incomplete: its reader names exactly what is missing
    if len(found) > 1:
        raise ImporterError(f"{root}: several folders hold a {dataset} layout ({', '.join(p.name for p in found)}); "
                            "pass the one to import with --root")
    hint = f" (sub-folders: {', '.join(p.name for p in children[:5])}{', ...' if len(children) > 5 else ''})" \
        if children else ""
    raise ImporterError(f"{root}: no {dataset} layout here or in its sub-folders{hint}; expected {layout.LAYOUT} - "
                        "pass --root the folder that holds them")


def import_dataset(dataset: str, root: str | Path, output_dir: str | Path, *, convert: bool = False,
                   policy: PixelPolicy = PixelPolicy(), accept: AcceptPolicy = AcceptPolicy(), workers: int = 1,
                   progress: bool = True) -> ImportResult:
    """Read ``dataset`` (a key of :data:`IMPORTERS`) at ``root`` and write its exam list to ``output_dir``.

    ``root`` may also be the folder just above the dataset's top folder (found automatically and noted).
    Every image's DICOM header is read: objects ``accept`` does not allow (For Processing images by default)
    are refused and counted, unreadable files reported, and the header's manufacturer, model, age and implant
    added to the exam metadata. ``convert`` also writes the PNGs.
    """
    if dataset not in IMPORTERS:
        raise ImporterError(f"unknown dataset {dataset!r}; choose from {', '.join(sorted(IMPORTERS))}")
    root = Path(root)
    if not root.is_dir():
        raise ImporterError(f"dataset root not found: {root}")
    top = locate_root(dataset, root)
    imported = IMPORTERS[dataset](top)
    if top != root:
        imported.notes.insert(0, f"dataset found in {top} (below the --root given)")
    if not imported.images:
        raise ImporterError(f"{top}: no {dataset} images found; " + ("; ".join(imported.notes) or
                                                                    "check --root points at the download"))
    return finish(imported, Path(output_dir), convert, policy, workers, progress, accept)


__all__ = ["IMPORTERS", "import_dataset", "locate_root", "ImporterError", "ImportResult", "Imported", "ImageEntry",
           "build_exams", "EXAM_LIST", "SOURCES"]
