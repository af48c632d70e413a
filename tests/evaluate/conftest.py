"""Fixtures for the evaluation tests: the shared reference data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("MAMMOSCREEN_SHARED_DIR", REPO_ROOT.parent / "shared"))


def _shared_file(relative: str) -> Path:
    path = SHARED_DIR / relative
    if not path.is_file():
        pytest.skip(f"reference file {path} not found (set MAMMOSCREEN_SHARED_DIR to the shared/ folder to run "
                    "the parity tests)")
    return path


@pytest.fixture(scope="session")
def van_dyke_file() -> Path:
    """``../shared/mrmc/VanDyke.imrmc`` (skips when absent)."""
    return _shared_file("mrmc/VanDyke.imrmc")


@pytest.fixture(scope="session")
def reader_study_file() -> Path:
    """``../shared/reader_study/results.pkl`` (skips when absent)."""
    return _shared_file("reader_study/results.pkl")
