"""Synthetic screening mammograms: four-view exams with lesions, masks, labels and DICOM files.

Real mammograms cannot ship with mammoscreen, so its tests and offline demo generate their own:
:func:`generate_exams` writes reproducible exams (16-bit PNGs, ``<image>_benign.png`` /
``<image>_malignant.png`` masks, an exam list with ``cancer_label``, optionally DICOM files in several
encodings); :func:`render_exam` returns one exam as arrays without touching the disk.
"""

from .generate import EXAM_LIST, FORMATS, LABELS_CSV, dicom_variant, generate_exams, image_name, load_lesions
from .render import FULL_PIXEL_MM, FULL_SIZE, MAX_VALUE, SynthExam, SynthOptions, SynthView, render_exam

__all__ = [
    "EXAM_LIST", "FORMATS", "LABELS_CSV", "dicom_variant", "generate_exams", "image_name", "load_lesions",
    "FULL_PIXEL_MM", "FULL_SIZE", "MAX_VALUE", "SynthExam", "SynthOptions", "SynthView", "render_exam",
]
