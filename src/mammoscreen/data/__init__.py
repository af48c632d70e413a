"""Data in: exam lists (the NYU format), mammogram image files."""

from .exams import (
    VIEWS,
    Exam,
    ExamListError,
    ImageRecord,
    add_image_metadata,
    exams_from_data,
    exams_to_data,
    iter_images,
    load_exam_list,
    save_exam_list,
)
from .images import ImageFileError, image_path, read_mammogram, read_png, write_png
from .safepickle import UnsafePickleError, safe_load, safe_loads

__all__ = [
    "VIEWS", "Exam", "ExamListError", "ImageRecord", "add_image_metadata", "exams_from_data",
    "exams_to_data", "iter_images", "load_exam_list", "save_exam_list", "ImageFileError", "image_path",
    "read_mammogram", "read_png", "write_png", "UnsafePickleError", "safe_load", "safe_loads",
]
