"""A DICOM header declaring more pixels than the limit is refused before pydicom decodes the pixel data."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.core.limits import limits_override
from mammoscreen.data.dicom import DicomFileError, png_pixels
from mammoscreen.data.dicom_write import mammogram_dataset


def test_rows_and_columns_are_checked_first():
    ds = mammogram_dataset(np.full((64, 48), 100, np.uint16), laterality="L", view="CC", study_uid="1.2.3",
                           patient_id="p")
    assert png_pixels(ds)[0].shape == (64, 48)
    ds.Rows, ds.Columns = 19000, 19000  # a header claiming 361 MP over 6 kB of pixel data
    with pytest.raises(DicomFileError, match="bomb.dcm: the image declares 19000 x 19000 pixels.*before decoding"):
        png_pixels(ds, path="bomb.dcm")
    ds.Rows, ds.Columns = 64, 48
    with limits_override(max_pixels=1000):
        with pytest.raises(DicomFileError, match="48 x 64 pixels"):
            png_pixels(ds, path="small.dcm")
