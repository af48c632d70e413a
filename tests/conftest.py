"""Shared fixtures: the reference data beside the repository, and synthetic images made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (or $MAMMOSCREEN_REFERENCE_DIR); skips the test when it is absent."""
    if not (REFERENCE_DIR / "README.md").is_file():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set MAMMOSCREEN_REFERENCE_DIR to "
                    "the shared/reference folder to run the parity tests)")
    return REFERENCE_DIR


def synthetic_breast(shape=(600, 400), facing="right", seed=0, value_range=(200, 4000), noise_line=True):
    """A crude mammogram: a half-ellipse of textured tissue against the chest wall, zero background.

    ``facing='right'`` puts the chest wall on the left edge and the nipple towards the right.
    A thin bright line in the background (like a burnt-in marker) exercises the erosion step.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    cy, ry, rx = h * 0.5, h * 0.38, w * 0.6
    inside = ((rows - cy) / ry) ** 2 + (cols / rx) ** 2 <= 1.0
    image = np.zeros(shape, dtype=np.uint16)
    lo, hi = value_range
    image[inside] = rng.integers(lo, hi, size=int(inside.sum()), dtype=np.uint16)
    if noise_line:
        image[5:8, w // 2: w - 5] = hi  # thin structure, removed by erosion
    if facing == "left":
        image = image[:, ::-1].copy()
    return image


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """A small synthetic dataset made once per session by ``mammoscreen.data.synth``.

    Four exams at scale 0.25 (832 x 640, 12-bit values), seed 0, with lesion masks: ``images/``,
    ``segmentation/``, ``exam_list.pkl``, ``lesions.json``. Treat it as read-only.
    """
    from mammoscreen.data.synth import SynthOptions, generate_exams

    root = tmp_path_factory.mktemp("synthetic_dataset")
    generate_exams(4, root, seed=0, options=SynthOptions(scale=0.25, p_benign=0.5, p_malignant=0.5),
                   progress=False)
    return root
