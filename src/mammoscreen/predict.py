"""The engine's former import path (documented in the README and earlier docs): use :mod:`mammoscreen.engine`
and :mod:`mammoscreen.models.interfaces`."""

from .core.device import full_fp32, resolve_device
from .engine import (
                     PredictionRun,
                     PredictOptions,
                     label_column,
                     predict_exams,
                     predict_images,
                     run_prediction,
                     write_predictions_csv,
)
from .models.interfaces import ExamPrediction, ExamPredictor, ImagePrediction, Predictor

__all__ = ["ExamPrediction", "ExamPredictor", "ImagePrediction", "PredictOptions", "PredictionRun", "Predictor",
           "full_fp32", "label_column", "predict_exams", "predict_images", "resolve_device", "run_prediction",
           "write_predictions_csv"]
