"""nyu_glam — GLAM (Liu et al., MIDL 2021): network, configuration, predictor and weight records."""

from .modeling import GLAM, GLAMConfig, GLAMOutput
from .predictor import GLAM_SPEC, GLAMPredictor, build_glam_predictor, load_glam

__all__ = ["GLAM", "GLAMConfig", "GLAMOutput", "GLAMPredictor", "GLAM_SPEC", "build_glam_predictor", "load_glam"]
