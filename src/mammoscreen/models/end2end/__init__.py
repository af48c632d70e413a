"""end2end (Shen et al., Scientific Reports 2019): whole-image classifiers from their Keras files, predictor,
weight records."""

from .modeling import End2EndClassifier, build_end2end, load_end2end
from .predictor import END2END_SPEC, End2EndPredictor, build_end2end_predictor, mean_pixel_intensity_of

__all__ = ["END2END_SPEC", "End2EndClassifier", "End2EndPredictor", "build_end2end", "build_end2end_predictor",
           "load_end2end", "mean_pixel_intensity_of"]
