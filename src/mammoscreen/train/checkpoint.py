"""Trained GMIC weights on disk: a plain state dict in the official key layout plus a JSON sidecar.

``best_model.p`` holds exactly the parameter names of the official ``sample_model_<i>.p`` files, so it
loads with ``torch.load(weights_only=True)`` like them. ``best_model.json`` beside it (same name, suffix
``.json``) records the architecture, which is how
:func:`mammoscreen.models.gmic.predictor.load_gmic` rebuilds a model that is not the published size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from ..core.files import atomic_write, write_json_atomic
from ..models.gmic.modeling import GMIC
from ..models.gmic.sidecar import SIDECAR_KEY, sidecar_path
from ..models.weights import WeightsError, load_checkpoint, load_state_dict_into
from .configs import config_name


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` that never leaves a half-written file behind."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def save_gmic_weights(model: GMIC, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Write the model's state dict (official layout, CPU tensors) and its config sidecar."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_torch_atomic(state, path)
    sidecar = {"format": "mammoscreen GMIC weights", "config_name": config_name(model.config),
               SIDECAR_KEY: model.config.to_dict(), **(extra or {})}
    write_json_atomic(sidecar_path(path), sidecar)
    return Path(path)


def load_initial_weights(model: GMIC, path: str | Path) -> None:
    """Load ``path`` into ``model`` for fine-tuning: the parameter names must be exactly the model's."""
    state = load_checkpoint(path)
    if isinstance(state, Mapping):
        expected, given = set(model.state_dict()), set(state)
        if expected != given:
            missing, extra = sorted(expected - given), sorted(given - expected)
            raise WeightsError(
                f"{path}: parameter names differ from GMIC's official layout ({len(missing)} missing, e.g. "
                f"{missing[:3]}; {len(extra)} unexpected, e.g. {extra[:3]}); --init needs a GMIC state dict such as "
                "sample_model_1.p or a best_model.p written by 'mammoscreen train'")
    load_state_dict_into(model, state, source=f"{path} (does its architecture match --config?)")
