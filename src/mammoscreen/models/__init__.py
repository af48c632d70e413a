"""The models: one registry of them, one factory for their predictors, the interfaces the engine runs."""

from .factory import PredictorRequest, build_predictor, request_of
from .interfaces import ExamPrediction, ExamPredictor, ImagePrediction, Predictor
from .registry import ModelSpec, WeightFile, get_model_spec, list_models, register_model

__all__ = ["ExamPrediction", "ExamPredictor", "ImagePrediction", "ModelSpec", "Predictor", "PredictorRequest",
           "WeightFile", "build_predictor", "get_model_spec", "list_models", "register_model", "request_of"]
