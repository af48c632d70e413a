"""Training data: image-level labels from ``cancer_label``, and GMIC inputs with the official augmentation.

Exam lists given to training are cropped exam lists with ``best_center`` for the model's window
(``mammoscreen crop`` then ``mammoscreen centers``, or :func:`mammoscreen.workflows.pipeline.run_pipeline`).

Training inputs follow the official data pipeline: mirror the image so the breast faces right, take
the window around ``best_center`` with random position and size noise (resized back to the input
size), and standardise it. Validation inputs use the same steps without noise, exactly as
:class:`~mammoscreen.models.gmic.predictor.GMICPredictor` prepares them.

The noise of image ``i`` in epoch ``e`` is drawn from its own generator seeded with (seed, epoch, i),
so it does not depend on the batch order, the number of loader workers, or where a run was resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.exams import Exam, ExamListError, ImageRecord, iter_images
from ..data.images import image_path, read_mammogram
from ..preprocess.windows import extract_window, flip_to_face_right, standardize, window_geometry


@dataclass(frozen=True)
class LabelledImage:
    """One training image: its exam-list record and its (benign, malignant) label."""

    record: ImageRecord
    labels: tuple[int, int]

    @property
    def exam_index(self) -> int:
        return self.record.exam_index


def image_labels(exam: Exam, view: str) -> tuple[int, int]:
    """(benign, malignant) of the breast shown by ``view``, from the exam's ``cancer_label``.

    An image of a breast with a malignant finding is malignant-positive; likewise benign.
    """
    side = "left" if view.startswith("L") else "right"
    labels = exam.cancer_label or {}
    values = []
    for kind in ("benign", "malignant"):
        value = labels.get(f"{side}_{kind}")
        if value is None:
            raise ExamListError(f"no '{side}_{kind}' in cancer_label")
        values.append(int(value))
    return values[0], values[1]


def labelled_images(exams: Sequence[Exam], source: str) -> list[LabelledImage]:
    """Every image of ``exams`` with its labels, checking what training needs.

    Raises :class:`ExamListError` naming ``source`` (the exam-list file) and the exam when an exam has
    no ``cancer_label`` or an image has no ``best_center``.
    """
    out = []
    for record in iter_images(exams):
        exam = exams[record.exam_index]
        if exam.cancer_label is None:
            raise ExamListError(f"{source}: exam {record.exam_index} has no 'cancer_label'; training needs the "
                                "breast-level labels (left/right_benign, left/right_malignant) of every exam")
        try:
            labels = image_labels(exam, record.view)
        except ExamListError as e:
            raise ExamListError(f"{source}: exam {record.exam_index}: {e}; every exam needs left_benign, "
                                "right_benign, left_malignant and right_malignant") from None
        if "best_center" not in record.metadata:
            raise ExamListError(f"{source}: image {record.name!r} (exam {record.exam_index}) has no 'best_center'; "
                                "training needs the cropped exam list with window centres: run 'mammoscreen crop' "
                                "and then 'mammoscreen centers' with the model's window")
        out.append(LabelledImage(record, labels))
    if not out:
        raise ExamListError(f"{source}: the exam list has no images")
    return out


def gmic_input(image: np.ndarray, record: ImageRecord, window: tuple[int, int],
               rng: np.random.RandomState | None = None, noise: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The standardised model input (float32, window-sized) of one cropped image.

    Without ``rng`` this is the deterministic test-time input; with it, the window is moved by up to
    ``noise[0]`` pixels in each direction and each border by up to ``noise[1]`` pixels.
    """
    flipped = flip_to_face_right(image.astype(np.float32), record.view, record.horizontal_flip)
    if rng is None:
        geometry = window_geometry(flipped.shape, window, record.metadata["best_center"], record.view)
    else:
        geometry = window_geometry(flipped.shape, window, record.metadata["best_center"], record.view, rng=rng,
                                   max_crop_noise=(noise[0], noise[0]), max_crop_size_noise=noise[1])
    return standardize(extract_window(flipped, geometry, window))


class GMICImages(Dataset):
    """Model inputs and labels of a list of images: ``(input (1, H, W), labels (2,), index)``.

    ``augment`` turns on the training noise; :meth:`set_epoch` must be called before each epoch so that
    every epoch sees different windows.
    """

    def __init__(self, images: Sequence[LabelledImage], images_dir: str | Path, window: tuple[int, int],
                 augment: bool = False, noise: tuple[int, int] = (0, 0), seed: int = 0):
        self.images = list(images)
        self.images_dir = Path(images_dir)
        self.window = tuple(window)
        self.augment = augment
        self.noise = noise
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        item = self.images[index]
        image = read_mammogram(image_path(self.images_dir, item.record.name))
        rng = np.random.RandomState([self.seed, self.epoch, index]) if self.augment else None
        x = gmic_input(image, item.record, self.window, rng, self.noise)
        return torch.from_numpy(x)[None], torch.tensor(item.labels, dtype=torch.float32), index
