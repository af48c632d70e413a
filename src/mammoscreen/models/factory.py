"""One way to build any registered model's predictor, from a small picklable description.

A :class:`PredictorRequest` names the model, its weights, variant, device and model options; it is all a
worker process or a remote machine needs to build the same predictor (:func:`build_predictor`), so a
distributed engine ships requests, never models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .interfaces import ExamPredictor, Predictor
from .registry import get_model_spec


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


def build_predictor(request: PredictorRequest) -> Predictor | ExamPredictor:
    """The predictor ``request`` describes, with its weights loaded; ``predictor.request`` is ``request``."""
    spec = get_model_spec(request.model)
    if spec.build is None:
        raise ValueError(f"model {spec.name} has no predictor implemented yet")
    predictor = spec.build(request.weights, request.variant, device=request.device, **dict(request.options))
    predictor.request = request
    return predictor


def request_of(predictor: Predictor | ExamPredictor) -> PredictorRequest:
    """The request ``predictor`` was built from (what a distributed executor sends to its workers)."""
    request = getattr(predictor, "request", None)
    if not isinstance(request, PredictorRequest):
        raise ValueError(f"the {predictor.spec.name} predictor was not built by build_predictor, so workers cannot "
                         "build it again; build it with mammoscreen.models.build_predictor(PredictorRequest(...))")
    return request
