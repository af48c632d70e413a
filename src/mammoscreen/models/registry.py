"""The model registry: every supported model by name, with what it needs and where its weights come from.

A :class:`ModelSpec` says everything the pipeline and the evaluator need to know about a model without
special-casing it by name: its input (windows per view, whether it needs the NYU crop and centres), its
output level (image or breast), its prediction columns, its weight files with their sha256, licence and
paper. Adding a model means adding one package under ``models/`` whose import calls :func:`register_model`.

The registry never ships third-party weights: it records where the official files are published so
that :mod:`mammoscreen.models.weights` can find, download and verify them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from .interfaces import ExamPredictor, Predictor
from .options import ModelOptions
from .preprocessing import Preprocessing


@dataclass(frozen=True)
class WeightFile:
    """One published weight file."""

    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    license: str = ""
    bundled: bool = False  # shipped inside the package (models/pretrained/), used when no weights are given
    config: Mapping[str, Any] = field(default_factory=dict)  # model configuration these weights need (percent_t)
    preprocessing: Preprocessing | None = None  # what they expect of an image (None: the model's, filled in by
    # ModelSpec, so every registered weight record carries its preprocessing)


@dataclass(frozen=True)
class ModelSpec:
    """Everything mammoscreen knows about one model (timm-style config record)."""

    name: str
    title: str
    paper: str
    license: str
    output_level: str  # "image" or "breast"
    prediction_columns: tuple[str, ...]  # e.g. ("benign_pred", "malignant_pred")
    needs_crop: bool = True  # from ``preprocessing`` when that is given
    center_windows: Mapping[str, tuple[int, int]] | None = None  # view angle -> (rows, cols); from ``preprocessing``
    weights: Mapping[str, WeightFile] = field(default_factory=dict)  # variant -> file
    default_variant: str | None = None
    variants: tuple[str, ...] = ()  # all accepted variants (may include combinations such as 'ensemble')
    intended_use: str = "Research only. Not a medical device; not for clinical use."
    # Loads a predictor: (resolved weight files of the variant, variant, device, options) -> Predictor; called by
    # mammoscreen.models.factory.build_predictor, which validates, resolves and downloads the weights first.
    build: Callable[..., Predictor | ExamPredictor] | None = None
    options: type[ModelOptions] = ModelOptions  # the model's options (none by default)
    preprocessing: Preprocessing | None = None  # what its weights expect of an image
    weights_page: str | None = None  # where the weights are published when they cannot be downloaded directly
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Row order of views within an exam in predictions.csv when the official script differs from the NYU
    # order (L-CC, R-CC, L-MLO, R-MLO), e.g. the meta-repository's end2end/frcnn_cad: L-CC, L-MLO, R-CC, R-MLO.
    csv_view_order: tuple[str, ...] | None = None
    # Its --save-maps files hold window-aligned saliency maps that 'mammoscreen localize' reads (GMIC and GLAM
    # layouts, explain/localize/): 'mammoscreen run --segmentations --save-maps' localises them.
    saliency_maps: bool = False

    def __post_init__(self) -> None:
        if self.preprocessing is not None:  # one source of truth: the pipeline's fields follow the record
            object.__setattr__(self, "needs_crop", self.preprocessing.crop)
            object.__setattr__(self, "center_windows", self.preprocessing.windows)
            object.__setattr__(self, "weights", {
                variant: wf if wf.preprocessing is not None else replace(wf, preprocessing=self.preprocessing)
                for variant, wf in self.weights.items()})

    @property
    def input_description(self) -> str:
        """What the model's weights expect of an image, in words: a rendering of its preprocessing record."""
        return self.preprocessing.describe() if self.preprocessing is not None else "not described"

    def weight_keys(self, variant: str) -> list[str]:
        """The weight files a variant loads: its own, or (a combination such as GMIC's 'ensemble') every variant's."""
        if variant in self.weights:
            return [variant]
        return [v for v in self.variants if v in self.weights]

    def weight_file(self, variant: str | None = None) -> WeightFile:
        variant = variant or self.default_variant
        try:
            return self.weights[variant]
        except KeyError:
            raise KeyError(f"model {self.name!r} has no weight file for variant {variant!r}; "
                           f"variants: {', '.join(self.weights)}") from None


META_REPOSITORY_VIEW_ORDER = ("L-CC", "L-MLO", "R-CC", "R-MLO")
"""The row order of the NYU meta-repository's image-level scripts (end2end, frcnn_cad, nyu_model_single)."""

_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add a model to the registry (its name must be new)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


# Folders of models/ that are not models.
NOT_MODELS = ("layers",)


def builtin_model_packages() -> list[str]:
    """The model packages shipped with mammoscreen: every folder of models/ but ``NOT_MODELS`` (one per model
    family; importing one registers its models)."""
    folder = Path(__file__).parent
    return [f"{__package__}.{info.name}" for info in sorted(pkgutil.iter_modules([str(folder)]), key=lambda i: i.name)
            if info.ispkg and info.name not in NOT_MODELS]


def _load_builtin_models() -> None:
    # Importing the model packages registers them; done lazily so that importing the registry is cheap.
    for package in builtin_model_packages():
        importlib.import_module(package)


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
