"""The command line's model syntax: ``--models A,B``, ``--weights [MODEL=]PATH`` and ``--variant [MODEL=]VARIANT``
turned into one typed :class:`~mammoscreen.models.factory.PredictorRequest` per model.

The parsing lives here, in the command-line layer: the pipeline's Python API takes the requests themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..models.factory import PredictorRequest
from ..models.registry import get_model_spec, list_models


def split_model_names(values: Sequence[str]) -> list[str]:
    """'gmic,nyu_glam' (possibly given several times) -> ['gmic', 'nyu_glam'], checking each name."""
    names = [n.strip() for v in values for n in str(v).split(",") if n.strip()]
    for name in names:
        get_model_spec(name)  # KeyError listing the available models
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"model(s) listed more than once: {', '.join(repeated)}")
    return names


def _per_model(values: Sequence[str], names: Sequence[str], what: str) -> tuple[dict[str, str], str | None]:
    """Split 'MODEL=VALUE' assignments from one plain default value."""
    known = {spec.name for spec in list_models()}
    assigned: dict[str, str] = {}
    default: str | None = None
    for value in values:
        key, sep, rest = str(value).partition("=")
        if sep and key.strip() in known:
            key = key.strip()
            if key not in names:
                raise ValueError(f"--{what} given for {key}, which is not among the models to run ({', '.join(names)})")
            if key in assigned:
                raise ValueError(f"--{what} given twice for {key}")
            assigned[key] = rest
        elif default is not None:
            raise ValueError(f"--{what} has two values without a model name ({default!r}, {value!r}); "
                             f"write --{what} MODEL={value}")
        else:
            default = str(value)
    return assigned, default


def model_requests(names: Sequence[str], weights: Sequence[str] = (), variants: Sequence[str] = (),
                   options: Mapping[str, Any] | None = None) -> list[PredictorRequest]:
    """One request per model from command-line style values.

    ``weights`` entries are ``MODEL=PATH`` for one model, or one plain value for all the others: a
    directory holding the official file names of the models, 'official' (cache / download), or - with
    a single model - a checkpoint file. ``variants`` are ``MODEL=VARIANT``, or a plain value when only
    one model runs. A model left without weights gets ``weights=None`` (its bundled weights if it ships
    any; otherwise :func:`~mammoscreen.workflows.pipeline.run_pipeline` reports and skips it). ``options``
    go to every model whose options declare them (by name).
    """
    names = list(names)
    assigned_weights, default_weights = _per_model(weights, names, "weights")
    if default_weights is not None and len(names) > 1 and Path(default_weights).is_file():
        raise ValueError(f"{default_weights} is a single checkpoint file but {len(names)} models run; give each "
                         "model its own with --weights MODEL=FILE, or pass a directory holding the official files")
    assigned_variants, default_variant = _per_model(variants, names, "variant")
    if default_variant is not None and len(names) > 1:
        raise ValueError(f"--variant {default_variant} is ambiguous with several models; write --variant "
                         f"MODEL={default_variant}")
    return [PredictorRequest(name, assigned_weights.get(name, default_weights),
                             assigned_variants.get(name, default_variant),
                             options=options_taken_by(name, options or {}))
            for name in names]


def options_taken_by(model: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``model`` declares: options for other models (e.g. a heatmap setting when GMIC and a heatmap
    model run together) are not passed to it."""
    names = get_model_spec(model).options.names()
    return {k: v for k, v in options.items() if k in names}
