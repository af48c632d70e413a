"""The model registry: every supported model by name, with what it needs and where its weights come from.

A :class:`ModelSpec` says everything the pipeline and the evaluator need to know about a model without
special-casing it by name: its input (windows per view, whether it needs the NYU crop and centres), its
output level (image or breast), its prediction columns, its weight files with their sha256, licence and
paper. Adding a model means adding one module with an ``nn.Module`` and one :func:`register_model` call.

The registry never ships third-party weights: it records where the official files are published so
that :mod:`mammoscreen.models.weights` can find, download and verify them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .interfaces import ExamPredictor, Predictor


@dataclass(frozen=True)
class WeightFile:
    """One published weight file."""

    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str = ""
    bundled: bool = False  # shipped inside the package (models/pretrained/), used when no weights are given


@dataclass(frozen=True)
class ModelSpec:
    """Everything mammoscreen knows about one model (timm-style config record)."""

    name: str
    title: str
    paper: str
    license: str
    output_level: str  # "image" or "breast"
    prediction_columns: tuple[str, ...]  # e.g. ("benign_pred", "malignant_pred")
    input_description: str
    needs_crop: bool = True
    center_windows: Mapping[str, tuple[int, int]] | None = None  # view angle -> (rows, cols)
    weights: Mapping[str, WeightFile] = field(default_factory=dict)  # variant -> file
    default_variant: str | None = None
    variants: tuple[str, ...] = ()  # all accepted variants (may include combinations such as 'ensemble')
    intended_use: str = "Research only. Not a medical device; not for clinical use."
    # Builds a predictor: (weights path or directory, variant, device, options) -> Predictor.
    build: Callable[..., Predictor | ExamPredictor] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Row order of views within an exam in predictions.csv when the official script differs from the NYU
    # order (L-CC, R-CC, L-MLO, R-MLO), e.g. the meta-repository's end2end/frcnn_cad: L-CC, L-MLO, R-CC, R-MLO.
    csv_view_order: tuple[str, ...] | None = None
    # Its --save-maps files hold window-aligned saliency maps that 'mammoscreen localize' reads (GMIC and GLAM
    # layouts, explain/localize.py): 'mammoscreen run --segmentations --save-maps' localises them.
    saliency_maps: bool = False

    def weight_file(self, variant: str | None = None) -> WeightFile:
        variant = variant or self.default_variant
        try:
            return self.weights[variant]
        except KeyError:
            raise KeyError(f"model {self.name!r} has no weight file for variant {variant!r}; "
                           f"variants: {', '.join(self.weights)}") from None


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (its name must be new)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


# Modules whose import registers the built-in models (one per model family).
BUILTIN_MODEL_MODULES = [
    "mammoscreen.models.gmic_predictor",
    "mammoscreen.models.gmic_demo",
    "mammoscreen.models.end2end_predictor",
    "mammoscreen.models.frcnn_predictor",
    "mammoscreen.models.glam_predictor",
    "mammoscreen.models.dmv_predictor",
]


def _load_builtin_models() -> None:
    # Importing the model modules registers them; done lazily so that importing the registry is cheap.
    for module in BUILTIN_MODEL_MODULES:
        importlib.import_module(module)


def get_model_spec(name: str) -> ModelSpec:
    """The registered model called ``name``."""
    _load_builtin_models()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}") from None


def list_models() -> list[ModelSpec]:
    """All registered models, by name."""
    _load_builtin_models()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
