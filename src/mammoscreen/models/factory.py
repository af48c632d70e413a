"""One way to build any registered model's predictor, from a small picklable description.

A :class:`PredictorRequest` names the model, its weights, variant, device and model options; it is all a
worker process or a remote machine needs to build the same predictor (:func:`build_predictor`), so a
distributed engine ships requests, never models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..core.checkpoints import WeightsError
from .interfaces import ExamPredictor, Predictor
from .registry import ModelSpec, get_model_spec
from .weights import resolve_weight_path


@dataclass(frozen=True)
class PredictorRequest:
    """What builds a predictor: model name, weights (a file, a directory or 'official'; None: bundled weights),
    variant (None: the model's default), device ('auto', 'cpu', 'cuda', 'cuda:N') and the model's options
    by name (typed values, or the CLI's strings)."""

    model: str
    weights: str | Path | None = "official"
    variant: str | None = None
    device: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)
    allow_download: bool = True  # False: 'official' weights must already be in the cache


def build_predictor(request: PredictorRequest) -> Predictor | ExamPredictor:
    """The predictor ``request`` describes, with its weights loaded; ``predictor.request`` is ``request``.

    The same steps for every model: its options parsed and checked (:class:`~mammoscreen.models.options.
    ModelOptions`), its variant resolved, the variant's weight files found (a file, a directory, 'official':
    cache or verified download, or the bundled file), then the model's own loader (``ModelSpec.build``).
    """
    spec = get_model_spec(request.model)
    if spec.build is None:
        raise ValueError(f"model {spec.name} has no predictor implemented yet")
    options = spec.options.parse(request.options, spec.name)
    variant = options.resolve_variant(spec, request.variant)
    paths = resolve_weights(spec, request.weights, variant, request.allow_download)
    predictor = spec.build(paths, variant, request.device, options)
    predictor.request = request
    return predictor


def resolve_weights(spec: ModelSpec, weights: str | Path | None, variant: str,
                    allow_download: bool = True) -> list[Path]:
    """The weight files ``variant`` loads, from ``weights`` (file, directory, 'official' or None: bundled)."""
    keys = spec.weight_keys(variant)
    if len(keys) > 1 and weights is not None and Path(weights).is_file():
        raise ValueError(f"{spec.name} {variant} needs {len(keys)} weight files ("
                         f"{', '.join(spec.weights[k].filename for k in keys)}): pass a directory holding them "
                         "(or --weights official)")
    try:
        return [resolve_weight_path(spec, weights, key, allow_download=allow_download) for key in keys]
    except WeightsError as e:
        if spec.weights_page:
            raise WeightsError(f"{e} The {spec.name} files are published at {spec.weights_page}") from None
        raise


def request_of(predictor: Predictor | ExamPredictor) -> PredictorRequest:
    """The request ``predictor`` was built from (what a distributed executor sends to its workers)."""
    request = getattr(predictor, "request", None)
    if not isinstance(request, PredictorRequest):
        raise ValueError(f"the {predictor.spec.name} predictor was not built by build_predictor, so workers cannot "
                         "build it again; build it with mammoscreen.models.build_predictor(PredictorRequest(...))")
    return request
