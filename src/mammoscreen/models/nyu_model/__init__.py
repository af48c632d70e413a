"""nyu_model and nyu_model_single — the DMV-CNN of Wu et al. (IEEE TMI 2020): the view-wise and image-wise
networks, the patch classifier heatmaps, their predictors and weight records."""

from .modeling import ImageWiseDMV, ViewWiseDMV
from .patch_heatmaps import PatchClassifier
from .predictor import (
                        NYU_MODEL_SINGLE_SPEC,
                        NYU_MODEL_SPEC,
                        ImageWiseDMVPredictor,
                        ViewWiseDMVPredictor,
                        build_nyu_model,
                        build_nyu_model_single,
)

__all__ = ["ImageWiseDMV", "ImageWiseDMVPredictor", "NYU_MODEL_SINGLE_SPEC", "NYU_MODEL_SPEC", "PatchClassifier",
           "ViewWiseDMV", "ViewWiseDMVPredictor", "build_nyu_model", "build_nyu_model_single"]
