"""gmic_demo: GMIC's network and predictor with small weights trained on synthetic mammograms (demo only)."""

from .predictor import DEMO_WEIGHTS, GMIC_DEMO_SPEC, build_gmic_demo_predictor, load_gmic_demo

__all__ = ["DEMO_WEIGHTS", "GMIC_DEMO_SPEC", "build_gmic_demo_predictor", "load_gmic_demo"]
