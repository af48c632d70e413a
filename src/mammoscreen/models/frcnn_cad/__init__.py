"""frcnn_cad — Faster R-CNN (VGG16) CAD of Ribli et al. (Scientific Reports 2018): network, predictor, weights."""

from .modeling import FasterRCNNVGG16, load_frcnn
from .predictor import FRCNN_SPEC, FRCNNPredictor, build_frcnn_predictor

__all__ = ["FRCNN_SPEC", "FRCNNPredictor", "FasterRCNNVGG16", "build_frcnn_predictor", "load_frcnn"]
