"""Fixtures for the data-in tests: small DICOM files written on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mammoscreen.data.dicom_write import mammogram_dataset, save_dicom, uid_from


def write_mammogram(path: Path, stored: np.ndarray | None = None, *, side: str = "L", view: str = "CC",
                    study: str = "study-1", compression: str | None = None, **kwargs) -> Path:
    """Write a small mammogram DICOM; ``kwargs`` go to :func:`mammogram_dataset`."""
    if stored is None:
        stored = breast_like(side)
    kwargs.setdefault("sop_uid", uid_from(study, side, view, path.name))
    ds = mammogram_dataset(np.asarray(stored, dtype=np.uint16), laterality=side, view=view,
                           study_uid=uid_from(study), patient_id=f"P-{study}", **kwargs)
    return save_dicom(ds, path, compression=compression)


def breast_like(side: str = "L", shape: tuple[int, int] = (120, 90), value: int = 3000) -> np.ndarray:
    """A blocky 'breast' against the chest wall: left breasts on the left edge, right ones on the right."""
    image = np.zeros(shape, dtype=np.uint16)
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    image[((rows - shape[0] / 2) / (shape[0] * 0.4)) ** 2 + (cols / (shape[1] * 0.6)) ** 2 <= 1] = value
    image[image > 0] += (rows[image > 0] % 7).astype(np.uint16)  # some structure
    return image if side == "L" else image[:, ::-1].copy()


@pytest.fixture
def make_dicom():
    """The :func:`write_mammogram` helper."""
    return write_mammogram


@pytest.fixture
def breast():
    """The :func:`breast_like` helper."""
    return breast_like
