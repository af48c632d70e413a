"""Writing mammography DICOM files: used by the synthetic generator and to build test inputs.

:func:`mammogram_dataset` builds a minimal but standard Digital Mammography X-Ray Image (For
Presentation unless told otherwise) from stored pixel values and the attributes the converter reads;
:func:`save_dicom` writes it atomically, optionally compressed with one of pydicom's encoders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    generate_uid,
)

from ..core.files import atomic_write

MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
MG_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.2.1"

# (code value, coding scheme, meaning) of the standard views (CID 4014, SNOMED CT).
VIEW_CODES = {
    "CC": ("399162004", "SCT", "cranio-caudal"),
    "MLO": ("399368009", "SCT", "medio-lateral oblique"),
    "ML": ("399260004", "SCT", "medio-lateral"),
    "LM": ("399352003", "SCT", "latero-medial"),
}

# Patient Orientation (row direction, column direction) of a view displayed the standard way:
# left breasts with the nipple pointing right (rows run anterior), right breasts mirrored.
STANDARD_ORIENTATION = {
    ("L", "CC"): ("A", "R"), ("R", "CC"): ("P", "L"),
    ("L", "MLO"): ("A", "F"), ("R", "MLO"): ("P", "F"),
}

COMPRESSIONS = {"jpeg2000": JPEG2000Lossless, "rle": RLELossless}


def uid_from(*parts: Any) -> str:
    """A deterministic DICOM UID derived from ``parts`` (same parts, same UID)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def mammogram_dataset(stored: np.ndarray, *, laterality: str, view: str, study_uid: str, patient_id: str,
                      sop_uid: str | None = None, series_uid: str | None = None,
                      photometric: str = "MONOCHROME2", bits_stored: int = 12,
                      rescale: tuple[float, float] | None = None,
                      window: tuple[float | Sequence[float], float | Sequence[float]] | None = None,
                      voi_lut: tuple[Sequence[int], np.ndarray] | None = None,
                      patient_orientation: Sequence[str] | None = None, pixel_spacing_mm: float = 0.07,
                      sop_class_uid: str = MG_FOR_PRESENTATION, presentation_intent: str | None = None,
                      view_code: bool = True, extra: dict[str, Any] | None = None) -> Dataset:
    """A Digital Mammography X-Ray Image dataset holding ``stored`` (2-D unsigned integers).

    Parameters
    ----------
    stored : stored pixel values (before any LUT); must fit ``bits_stored``.
    laterality, view : 'L'/'R' and 'CC'/'MLO'/... (Image Laterality, View Position, View Code Sequence).
    photometric : MONOCHROME1 or MONOCHROME2.
    rescale : (slope, intercept) for Rescale Slope/Intercept, or None to omit them.
    window : (center, width) for Window Center/Width (numbers or lists of numbers).
    voi_lut : (descriptor [entries, first mapped, bits], LUT data) for a VOI LUT Sequence item.
    patient_orientation : two values; default: the standard orientation of this view.
    presentation_intent : 'FOR PRESENTATION' / 'FOR PROCESSING'; default follows the SOP class.
    view_code : include the View Code Sequence (SNOMED CT code of the view).
    extra : further attributes by keyword (e.g. {'NumberOfFrames': 2}).
    """
    stored = np.asarray(stored)
    if stored.ndim != 2 or stored.dtype.kind != "u":
        raise ValueError(f"stored pixels must be a 2-D unsigned integer array, got {stored.dtype} {stored.shape}")
    if stored.size and int(stored.max()) >= 1 << bits_stored:
        raise ValueError(f"stored values up to {int(stored.max())} do not fit BitsStored {bits_stored}")
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid or uid_from(study_uid, laterality, view, "image")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid or uid_from(study_uid, "series")
    ds.Modality = "MG"
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if presentation_intent is None:
        presentation_intent = "FOR PROCESSING" if sop_class_uid == MG_FOR_PROCESSING else "FOR PRESENTATION"
    ds.PresentationIntentType = presentation_intent
    ds.ImageLaterality = laterality
    ds.Laterality = laterality
    ds.ViewPosition = view
    if view_code and view in VIEW_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = VIEW_CODES[view]
        ds.ViewCodeSequence = DicomSequence([item])
    orientation = patient_orientation or STANDARD_ORIENTATION.get((laterality, view))
    if orientation:
        ds.PatientOrientation = list(orientation)
    ds.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    ds.ImagerPixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        descriptor, data = voi_lut
        item = Dataset()
        item.LUTDescriptor = list(descriptor)
        item.add_new(0x00283006, "OW", np.asarray(data, dtype="<u2").tobytes())  # LUT Data
        item.LUTExplanation = "synthetic"
        ds.VOILUTSequence = DicomSequence([item])
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(stored, dtype="<u2").tobytes()

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def save_dicom(ds: Dataset, path: str | Path, compression: str | None = None) -> Path:
    """Write ``ds`` as a DICOM file (with preamble) atomically; ``compression``: None, 'jpeg2000' or 'rle'.

    Compression uses pydicom's encoders (JPEG 2000 needs pylibjpeg-openjpeg: the ``dicom`` extra).
    """
    path = Path(path)
    if compression is not None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {compression!r}; choose from {sorted(COMPRESSIONS)}")
        ds.compress(COMPRESSIONS[compression])
    with atomic_write(path, "wb") as f:
        ds.save_as(f, enforce_file_format=True)
    return path
