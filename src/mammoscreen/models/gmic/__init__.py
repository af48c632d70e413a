"""GMIC (Shen et al., Medical Image Analysis 2021): network, configuration, predictor and weight records."""

from .modeling import GMIC, GMICConfig, GMICOutput
from .predictor import GMIC_SPEC, PERCENT_T, GMICOptions, GMICPredictor, build_gmic_predictor, load_gmic

__all__ = ["GMIC", "GMICConfig", "GMICOptions", "GMICOutput", "GMICPredictor", "GMIC_SPEC", "PERCENT_T",
           "build_gmic_predictor", "load_gmic"]
