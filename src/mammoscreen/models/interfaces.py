"""What a model gives the prediction engine: the :class:`Predictor` and :class:`ExamPredictor` interfaces.

This module is the bottom of the model layer and imports nothing else from mammoscreen, so that every
model, every engine (local or distributed) and every workflow can depend on it without pulling in the
rest. The types in the signatures (``ImageRecord``, ``Exam`` from :mod:`mammoscreen.data.exams`,
``ModelSpec`` from :mod:`mammoscreen.models.registry`) are imported for the type checker only, or typed Any.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # never run: the engine and the models import this module, not the other way round
    from ..data.exams import Exam, ImageRecord


@dataclass
class ImagePrediction:
    """A model's output for one image."""

    values: dict[str, float]  # prediction columns, e.g. {"benign_pred": 0.1, "malignant_pred": 0.02}
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # saved as maps/<image>.npz
    visual: Any = None  # what the predictor's visualize() needs


@dataclass
class ExamPrediction:
    """A model's output for one exam."""

    values: dict[str, float]  # prediction columns, e.g. {"left_malignant": 0.1, ...}
    maps: dict[str, np.ndarray] = field(default_factory=dict)  # saved as maps/exam_<index>.npz


class Predictor(ABC):
    """Model-specific part of image-level prediction. Built by :func:`mammoscreen.models.build_predictor`."""

    spec: Any  # the model's mammoscreen.models.registry.ModelSpec
    request: Any = None  # the PredictorRequest it was built from (set by build_predictor): how workers rebuild it

    @abstractmethod
    def prepare(self, record: "ImageRecord", images_dir: Path) -> Any:  # noqa: F821
        """Load and preprocess one image (runs in a loader thread or on a worker; raise on a bad image)."""

    @abstractmethod
    def predict_batch(self, prepared: Sequence[Any]) -> list[ImagePrediction]:
        """Run the model on a batch of prepared images."""

    def visualize(self, record: "ImageRecord", prepared: Any, prediction: ImagePrediction,  # noqa: F821
                  segmentations: Path | None, path: Path) -> None:
        """Draw the model's explanation figure for one image to ``path`` (PNG)."""
        raise NotImplementedError(f"{self.spec.name} has no visualisation")

    def provenance(self) -> dict[str, Any]:
        """What identifies this run's model: name, variant, weight files and their sha256."""
        return {"model": self.spec.name}

    def configure_outputs(self, maps: bool, figures: bool) -> None:  # noqa: B027 - an optional hook
        """Told by the engine which outputs besides the predictions are wanted.

        A predictor may skip work only the maps or figures need (GLAM skips its local branch, which
        does not affect its reported prediction). By default everything is computed.
        """

    def select_images(self, exams: Sequence["Exam"]) -> list["ImageRecord"] | None:  # noqa: F821
        """The images to predict, in output order; None (the default): every image, in the official order."""
        return None


class ExamPredictor(ABC):
    """Model-specific part of exam-level prediction (models that need several views of an exam at once).

    The engine calls :meth:`plan` once with the whole exam list, then :meth:`prepare` for each exam that
    has every view in ``required_views`` (in a loader thread or on a worker), then :meth:`predict_exam`.
    """

    spec: Any  # the model's mammoscreen.models.registry.ModelSpec
    required_views: tuple[str, ...] = ("L-CC", "R-CC", "L-MLO", "R-MLO")  # mammoscreen.data.exams.VIEWS
    request: Any = None  # the PredictorRequest it was built from (set by build_predictor): how workers rebuild it

    def plan(self, exams: Sequence["Exam"], images_dir: Path) -> None:  # noqa: F821, B027 - an optional hook
        """Run-wide preparation before any exam is prepared (e.g. laying out the official random streams)."""

    @abstractmethod
    def prepare(self, exam_index: int, exam: "Exam", images_dir: Path) -> Any:  # noqa: F821
        """Load and preprocess one exam (runs in a loader thread or on a worker; raise on bad input)."""

    @abstractmethod
    def predict_exam(self, prepared: Any) -> ExamPrediction:
        """Run the model on one prepared exam."""

    def provenance(self) -> dict[str, Any]:
        """What identifies this run's model: name, variant, weight files and their sha256."""
        return {"model": self.spec.name}
