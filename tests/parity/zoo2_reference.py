"""Reference weights for the end2end and frcnn_cad parity tests, rebuilt once per test session.

The files are regenerated deterministically by the tools shipped with the reference data
(``tools/make_h5.py`` and ``frcnn_cad/build_caffemodel.py``), imported from the reference directory at
test time; they are never stored in the repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

END2END_FILE = "ddsm_resnet50_s10_[512-512-1024]x2.h5"
FRCNN_FILE = "vgg16_frcnn_cad.caffemodel"
IMAGES = ("0_L-CC", "0_L-MLO", "0_R-CC", "0_R-MLO", "1_L_CC", "1_R_CC")
"""The reference images, in the official CSV order (exam by exam; L-CC, L-MLO, R-CC, R-MLO)."""

_BUILT: dict[tuple[str, str], Path] = {}


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_reference_dir(reference_dir: Path, model: str) -> Path:
    directory = reference_dir / model
    if not (directory / "README.md").is_file():
        pytest.skip(f"{model} reference data not found in {directory}")
    return directory


def end2end_weights(reference_dir: Path, root: Path) -> Path:
    """Directory holding the rebuilt random-weight end2end .h5 under its official name."""
    key = ("end2end", str(root))
    if key not in _BUILT:
        tool = _import(reference_dir / "tools" / "make_h5.py", "reference_make_h5")
        directory = root / "end2end_weights"
        directory.mkdir(parents=True, exist_ok=True)
        tool.build_h5(reference_dir / "end2end" / "end2end_h5_skeleton.json.gz", directory / END2END_FILE)
        _BUILT[key] = directory
    return _BUILT[key]


def frcnn_weights(reference_dir: Path, root: Path) -> Path:
    """Directory holding the rebuilt random-weight frcnn_cad caffemodel under its official name."""
    key = ("frcnn_cad", str(root))
    if key not in _BUILT:
        tool = _import(reference_dir / "frcnn_cad" / "build_caffemodel.py", "reference_build_caffemodel")
        directory = root / "frcnn_weights"
        directory.mkdir(parents=True, exist_ok=True)
        data = tool.build(str(reference_dir / "frcnn_cad" / "vgg16_frcnn_cad_test.prototxt"))
        (directory / FRCNN_FILE).write_bytes(data)
        del data
        _BUILT[key] = directory
    return _BUILT[key]
