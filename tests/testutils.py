"""Helpers shared by the tests (import them as ``from testutils import ...``; conftest modules are not importable
by name, since pytest loads several of them)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))

FAST_LOOP = False
"""True in the quick local loop (``-m "not slow"`` outside CI); set by conftest.pytest_configure before collection."""


def is_fast_loop(markexpr: str, ci: str) -> bool:
    """Whether a run with this ``-m`` expression and $CI value is the fast loop: slow tests left out, not CI."""
    return "not slow" in " ".join(markexpr.split()) and ci.strip().lower() not in ("true", "1", "yes")


def examples(n: int) -> int:
    """A property's Hypothesis example count: ``n`` in CI and in a plain run, a tenth (at least 10) in the fast loop.

    Use it as ``@settings(max_examples=examples(300))``: the full count stays the one CI runs.
    """
    return max(10, n // 10) if FAST_LOOP else n


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


def split_original_shape(exam_dicts):
    """An exam list (list of dicts) as the official code writes it, and mammoscreen's ``original_shape``.

    mammoscreen's crop stage adds the per-image ``original_shape`` beside the official keys; comparisons
    with the official pickles compare the rest exactly and check the shapes separately.
    Returns (official dicts, {image name: (rows, cols)}).
    """
    official, shapes = [], {}
    for exam in exam_dicts:
        exam = dict(exam)
        per_view = exam.pop("original_shape", {})
        for view, values in per_view.items():
            for name, shape in zip(exam[view], values):
                shapes[name] = tuple(shape)
        official.append(exam)
    return official, shapes


def lesion_images(segmentation: Path) -> dict[str, set[str]]:
    """Images with a non-empty mask per class, from ``<image>_<class>.png`` files (as the synthetic data writes)."""
    from mammoscreen.data.images import read_png

    found = {"benign": set(), "malignant": set()}
    for path in segmentation.glob("*.png"):
        image, kind = path.stem.rsplit("_", 1)
        if read_png(path).any():
            found[kind].add(image)
    return found


CHROMIUM_UNAVAILABLE = REPO_ROOT / ".ci" / "chromium-unavailable"
"""Written by .ci/run with the reason when it cannot install Chromium."""


def chromium_decision(chromium: str | None, ci: bool, recorded_reason: str | None) -> tuple[str, str]:
    """('run' | 'skip' | 'fail', why): in CI a missing Chromium is a failure unless .ci/run said why."""
    if chromium is not None:
        return "run", chromium
    if not ci:
        return "skip", ("Chromium is not installed (Debian package 'chromium', which .ci/run installs): the browser "
                        "test is skipped")
    if recorded_reason:
        return "skip", f"Chromium could not be installed in CI: {recorded_reason}"
    return "fail", (f"Chromium is missing in CI and .ci/run recorded no reason in {CHROMIUM_UNAVAILABLE}: the "
                    "browser test must not disappear silently")


def require_chromium() -> str:
    """The Chromium executable for a browser test; skips or fails the test as :func:`chromium_decision` says."""
    import shutil

    import pytest

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    recorded = (CHROMIUM_UNAVAILABLE.read_text(encoding="utf-8").strip()
                if CHROMIUM_UNAVAILABLE.is_file() else None)
    decision, why = chromium_decision(found, os.environ.get("CI", "").lower() == "true", recorded)
    if decision == "skip":
        pytest.skip(why)
    if decision == "fail":
        pytest.fail(why)
    return why
