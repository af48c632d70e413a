"""Shared fixtures: the reference data beside the repository, and synthetic images made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import testutils
from testutils import REFERENCE_DIR, is_fast_loop

# Property-based tests are reproducible: a fixed derandomised seed and no example database, so CI and a
# developer's machine try the same inputs. HYPOTHESIS_PROFILE=explore searches afresh and for longer.
settings.register_profile("mammoscreen", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow])
# The quick local loop (-m "not slow" outside CI, see pytest_configure) tries fewer examples per property.
settings.register_profile("fast-loop", parent=settings.get_profile("mammoscreen"), max_examples=10)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "mammoscreen"))


def pytest_configure(config: pytest.Config) -> None:
    """Recognise the fast loop before the test modules are imported (their @settings read testutils.FAST_LOOP).

    Only ``-m`` expressions that leave out the slow tests, and never under CI=true: CI and a plain
    ``python -m pytest`` run every property with its full example count (docs/testing.md).
    """
    testutils.FAST_LOOP = is_fast_loop(config.getoption("markexpr", "") or "", os.environ.get("CI", ""))
    if testutils.FAST_LOOP and "HYPOTHESIS_PROFILE" not in os.environ:
        settings.load_profile("fast-loop")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``../shared/reference`` (or $MAMMOSCREEN_REFERENCE_DIR); skips the test when it is absent."""
    if not (REFERENCE_DIR / "README.md").is_file():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (set MAMMOSCREEN_REFERENCE_DIR to "
                    "the shared/reference folder to run the parity tests)")
    return REFERENCE_DIR


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
