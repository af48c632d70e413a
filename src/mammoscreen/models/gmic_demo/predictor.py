"""``gmic_demo``: a small GMIC trained by mammoscreen on its own synthetic mammograms, shipped in the package.

It exists so that the whole system can be shown offline on a fresh machine (official GMIC weights are
licensed separately and large). **Synthetic data only - not for clinical use.** The weights
(``pretrained/gmic_demo_synthetic.pt``) and their model card (``gmic_demo_synthetic.json`` / ``.md``: sha256,
training command, generator seeds, data sizes, metrics) were made by ``tools/train_demo_model.py``.

The predictor is GMIC's (same preprocessing, outputs and figure); only the architecture (``gmic-demo``
in :mod:`mammoscreen.train.configs`: a 736x480 window, 46x30 saliency map) and the weights differ. The
architecture is read from the model card, which doubles as the weights' sidecar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..gmic.predictor import GMICPredictor, load_gmic
from ..options import ModelOptions
from ..preprocessing import Preprocessing
from ..registry import ModelSpec, WeightFile, register_model

DEMO_WEIGHTS = "gmic_demo_synthetic.pt"
DEMO_SHA256 = "18005dbccd4e62b3d58c399698d1cc9f17b5f7bd6873cac8bea0c70f3c17a14a"
DEMO_SIZE = 2559635
DEMO_VARIANT = "demo"
DEMO_WINDOW = (736, 480)  # the input size of the gmic-demo config
INTENDED_USE = "Demonstration on synthetic data only - not for clinical use."
PREPROCESSING = Preprocessing(source="cropped", windows={"CC": DEMO_WINDOW, "MLO": DEMO_WINDOW}, flip="face right",
                              standardisation="per image")


def _load_gmic_demo_predictor(paths: Sequence[Path], variant: str, device: str,
                              options: ModelOptions) -> GMICPredictor:
    # The architecture comes from the model card beside the weights (it doubles as their sidecar).
    return GMICPredictor([load_gmic(paths[0])], paths, variant, device, spec=GMIC_DEMO_SPEC)


def build_gmic_demo_predictor(weights: str | Path | None = None, variant: str | None = None,
                              device: str = "auto") -> GMICPredictor:
    """The demo model's predictor. ``weights`` None or 'official' means the bundled file (sha256-verified);
    a path loads another checkpoint of the same architecture (with its sidecar)."""
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("gmic_demo", weights, variant, device))  # type: ignore[return-value]


def load_gmic_demo(device: str = "cpu"):
    """The demo :class:`~mammoscreen.models.gmic.GMIC` module with its bundled weights, in eval mode."""
    return build_gmic_demo_predictor(device=device).models[0]


GMIC_DEMO_SPEC = register_model(ModelSpec(
    name="gmic_demo",
    title="GMIC (small gmic-demo config) trained on mammoscreen's synthetic mammograms - demo only",
    paper=("Architecture: Shen Y, Wu N, Phang J, et al. Medical Image Analysis 2021;68:101908. Weights: trained by "
           "the mammoscreen project on synthetic data (see models/pretrained/gmic_demo_synthetic.md)."),
    license="MIT",
    output_level="image",
    prediction_columns=("benign_pred", "malignant_pred"),
    preprocessing=PREPROCESSING,
    weights={DEMO_VARIANT: WeightFile(DEMO_WEIGHTS, None, DEMO_SHA256, DEMO_SIZE, "MIT", bundled=True)},
    default_variant=DEMO_VARIANT,
    variants=(DEMO_VARIANT,),
    intended_use=INTENDED_USE,
    build=_load_gmic_demo_predictor,
    saliency_maps=True,
    extra={"config_name": "gmic-demo", "model_card": "gmic_demo_synthetic.json", "synthetic_data_only": True},
))
