"""The sidecar ``<weights>.json`` beside a GMIC checkpoint that mammoscreen trained: the architecture it has.

Written by :func:`mammoscreen.train.checkpoint.save_gmic_weights`; read here when the checkpoint is loaded,
so that a checkpoint of another input size than the published one rebuilds the right network.
"""

from __future__ import annotations

from pathlib import Path

from ...core.checkpoints import WeightsError
from ...core.safejson import JSONInputError, load_json
from ..config_checks import ConfigError
from .modeling import GMICConfig

SIDECAR_KEY = "gmic_config"


def sidecar_path(weights: str | Path) -> Path:
    """``OUT/best_model.p`` -> ``OUT/best_model.json``."""
    return Path(weights).with_suffix(".json")


def read_sidecar_config(weights: str | Path) -> GMICConfig | None:
    """The architecture recorded beside a weights file, or None if there is no sidecar."""
    path = sidecar_path(weights)
    if not path.is_file():
        return None
    try:
        data = load_json(path)
    except JSONInputError as e:
        raise WeightsError(f"{e}; the sidecar beside the weights must hold '{SIDECAR_KEY}' with the architecture "
                           "the weights were trained with") from None
    if not isinstance(data, dict) or not isinstance(data.get(SIDECAR_KEY), dict):
        raise WeightsError(f"{path}: not a GMIC config sidecar; it must hold '{SIDECAR_KEY}' with the architecture "
                           "the weights were trained with")
    try:
        return GMICConfig.from_dict(data[SIDECAR_KEY])
    except ConfigError as e:
        raise WeightsError(f"{path}: {SIDECAR_KEY}: {e}") from None
    except TypeError as e:  # a field of the wrong kind that the range checks do not reach
        raise WeightsError(f"{path}: {SIDECAR_KEY} is not a valid GMIC config ({e})") from None
