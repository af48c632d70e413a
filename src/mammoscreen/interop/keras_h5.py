"""Reading Keras full-model HDF5 files (``model.save('x.h5')``) with h5py alone - no TensorFlow.

A Keras 2 ``.h5`` file holds the model's architecture as JSON (root attribute ``model_config``) and its
weights under ``model_weights/<layer>/<weight name>``. This module turns both into plain Python:

* :func:`read_keras_h5` returns a :class:`KerasFile`: the layer graph (:class:`KerasModelSpec`, nested
  models included) and every layer's weight arrays keyed by parameter (``kernel``, ``bias``, ``gamma``,
  ``beta``, ``moving_mean``, ``moving_variance``).

Weights are matched to layers **by name**: auto-generated layer names (``conv2d_7``, ``model_2``) differ
between files, so the layers come from the file's own ``model_config``, and each weight is found under
its layer's name (TensorFlow may have uniquified a variable's scope, e.g. ``conv1_1/kernel:0`` for
layer ``conv1``). Only where names cannot be matched (a layer renamed after its variables were
created) is Keras's own storage order used, and then every stored name's parameter and shape is
checked against the layer it is assigned to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..core.checkpoints import WeightsError
from ..core.hdf5 import H5Reader, HDF5InputError
from ..core.limits import InputLimitError
from ..core.safejson import JSONInputError, loads_json

MODEL_CLASSES = ("Model", "Functional", "Sequential")


class KerasFileError(WeightsError):
    """A file is not a loadable Keras full-model HDF5 file."""


@dataclass(frozen=True)
class TensorRef:
    """Output ``tensor`` of call ``node`` of ``layer`` (Keras's ``[name, node_index, tensor_index]``)."""

    layer: str
    node: int = 0
    tensor: int = 0


@dataclass(frozen=True)
class KerasLayerSpec:
    """One layer of a Keras model config."""

    class_name: str
    name: str
    config: Mapping[str, Any]
    inbound_nodes: tuple[tuple[TensorRef, ...], ...] = ()  # one tuple of inputs per call of the layer
    model: "KerasModelSpec | None" = None  # for a nested model

    @property
    def trainable(self) -> bool:
        return bool(self.config.get("trainable", True))


@dataclass(frozen=True)
class KerasModelSpec:
    """A (possibly nested) Keras functional model: layers in config order, its inputs and outputs."""

    name: str
    layers: tuple[KerasLayerSpec, ...]
    inputs: tuple[TensorRef, ...]
    outputs: tuple[TensorRef, ...]

    def layer(self, name: str) -> KerasLayerSpec:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def leaf_layers(self, prefix: str = "") -> list[tuple[str, KerasLayerSpec]]:
        """All non-model layers with their paths ('model_2/conv1'), nested models expanded in place."""
        out = []
        for layer in self.layers:
            path = prefix + layer.name
            out.extend(layer.model.leaf_layers(path + "/") if layer.model is not None else [(path, layer)])
        return out


@dataclass
class KerasFile:
    """What :func:`read_keras_h5` found in a file."""

    path: Path
    keras_version: str
    backend: str
    model: KerasModelSpec
    # layer path ('dense_2', or 'model_2/conv1' inside a nested model) -> {param: array}
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# model_config -> KerasModelSpec
# ----------------------------------------------------------------------------------------------

def _refs(raw: Any, where: str) -> tuple[TensorRef, ...]:
    """A node's inputs: ``[[name, node, tensor, kwargs], ...]`` (or a single such list)."""
    if isinstance(raw, dict):  # Keras 3 style {"args": ..., "kwargs": ...}: not a Keras 2 file
        raise KerasFileError(f"{where}: unsupported inbound node format (Keras 3 file?)")
    if raw and isinstance(raw[0], str):
        raw = [raw]
    refs = []
    for item in raw:
        if not isinstance(item, (list, tuple)) or len(item) < 3 or not isinstance(item[0], str):
            raise KerasFileError(f"{where}: cannot read inbound node {item!r}")
        refs.append(TensorRef(item[0], int(item[1]), int(item[2])))
    return tuple(refs)


def _layer_spec(raw: Mapping[str, Any], where: str) -> KerasLayerSpec:
    try:
        class_name = raw["class_name"]
        config = raw["config"]
    except (KeyError, TypeError):
        raise KerasFileError(f"{where}: layer entry without class_name/config: {str(raw)[:200]}") from None
    name = raw.get("name") or (config.get("name") if isinstance(config, Mapping) else None)
    if not name:
        raise KerasFileError(f"{where}: a {class_name} layer has no name")
    nodes = tuple(_refs(node, f"{where}, layer {name}") for node in raw.get("inbound_nodes", []))
    model = _model_spec(class_name, config, f"{where} > {name}", name) if class_name in MODEL_CLASSES else None
    return KerasLayerSpec(class_name, name, config if not isinstance(config, list) else {"layers": config},
                          nodes, model)


def _model_spec(class_name: str, config: Any, where: str, name: str | None = None) -> KerasModelSpec:
    if class_name == "Sequential":
        return _sequential_spec(config, where, name)
    if class_name not in ("Model", "Functional"):
        raise KerasFileError(f"{where}: model class {class_name!r} is not supported")
    try:
        layers = tuple(_layer_spec(layer, where) for layer in config["layers"])
        inputs = _refs(config["input_layers"], f"{where} inputs")
        outputs = _refs(config["output_layers"], f"{where} outputs")
    except (KeyError, TypeError) as e:
        raise KerasFileError(f"{where}: incomplete model config ({e})") from None
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise KerasFileError(f"{where}: duplicate layer names in the model config")
    return KerasModelSpec(config.get("name") or name or "model", layers, inputs, outputs)


def _sequential_spec(config: Any, where: str, name: str | None) -> KerasModelSpec:
    """A Sequential model as the equivalent functional graph (each layer consumes the previous one)."""
    raw_layers = config["layers"] if isinstance(config, Mapping) else config
    model_name = (config.get("name") if isinstance(config, Mapping) else None) or name or "sequential"
    layers: list[KerasLayerSpec] = []
    previous: TensorRef | None = None
    for raw in raw_layers:
        spec = _layer_spec({**raw, "inbound_nodes": []}, where)
        if spec.class_name == "InputLayer":
            layers.append(spec)
            previous = TensorRef(spec.name)
            continue
        if previous is None:  # implicit input described by the first layer's batch_input_shape
            shape = spec.config.get("batch_input_shape")
            if shape is None:
                raise KerasFileError(f"{where}: Sequential model without an input shape")
            input_name = f"{model_name}_input"
            layers.append(KerasLayerSpec("InputLayer", input_name, {"batch_input_shape": shape, "name": input_name}))
            previous = TensorRef(input_name)
        node = 1 if spec.model is not None else 0  # a nested model's own first node is its definition
        layers.append(KerasLayerSpec(spec.class_name, spec.name, spec.config, ((previous,),), spec.model))
        previous = TensorRef(spec.name, node)
    if previous is None:
        raise KerasFileError(f"{where}: empty Sequential model")
    return KerasModelSpec(model_name, tuple(layers), (TensorRef(layers[0].name),), (previous,))


def parse_model_config(text: str | bytes, source: str = "model_config") -> KerasModelSpec:
    """The layer graph described by a Keras ``model_config`` JSON string."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise KerasFileError(f"{source}: model_config is not UTF-8 text ({e})") from None
    try:
        raw = loads_json(text, f"{source}: model_config")
    except JSONInputError as e:
        raise KerasFileError(str(e)) from None
    if not isinstance(raw, Mapping) or "class_name" not in raw:
        raise KerasFileError(f"{source}: model_config has no class_name")
    try:
        return _model_spec(raw["class_name"], raw.get("config"), source)
    except KerasFileError:
        raise
    except (AttributeError, TypeError, ValueError, KeyError, IndexError) as e:  # a malformed layer description
        raise KerasFileError(f"{source}: model_config is not a Keras 2 model description ({type(e).__name__}: "
                             f"{str(e)[:200]})") from None


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------

def expected_params(layer: KerasLayerSpec) -> tuple[list[str], list[str]]:
    """(trainable, non-trainable) parameter names a layer stores, in Keras's order."""
    c = layer.config
    kind = layer.class_name
    if kind in ("Conv2D", "Dense"):
        trainable = ["kernel"] + (["bias"] if c.get("use_bias", True) else [])
        return trainable, []
    if kind == "BatchNormalization":
        trainable = (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else [])
        return trainable, ["moving_mean", "moving_variance"]
    return [], []


def _param_of(weight_name: str) -> tuple[str, str]:
    """'model_2/conv1_1/kernel:0' -> ('conv1_1', 'kernel')."""
    parts = weight_name.split(":")[0].split("/")
    return (parts[-2] if len(parts) >= 2 else ""), parts[-1]


def _match_group(group: str, stored: list[tuple[str, np.ndarray]], layers: list[KerasLayerSpec],
                 source: str) -> dict[str, dict[str, np.ndarray]]:
    """Assign the arrays stored in one HDF5 layer group to the layers they belong to.

    A plain layer's group holds its own weights; a nested model's group holds the weights of all its
    layers, named ``<layer>/<param>:0``.
    """
    wanted = [(layer.name, param) for layer in layers for param in sum(expected_params(layer), [])]
    single = len(layers) == 1
    assignment: dict[tuple[str, str], int] = {}
    used: set[int] = set()
    # 1. By name; a second pass allows TensorFlow's uniquifying suffix ('conv1_1/kernel:0' for layer conv1).
    for exact in (True, False):
        for layer_name, param in wanted:
            if (layer_name, param) in assignment:
                continue
            suffixed = re.compile(re.escape(layer_name) + r"_\d+")
            hits = []
            for i, (name, _) in enumerate(stored):
                scope, p = _param_of(name)
                if i in used or p != param:
                    continue
                if single or scope == layer_name or (not exact and suffixed.fullmatch(scope)):
                    hits.append(i)
            if len(hits) == 1:
                assignment[(layer_name, param)] = hits[0]
                used.add(hits[0])
    result: dict[str, dict[str, np.ndarray]] = {layer.name: {} for layer in layers}
    if len(assignment) == len(wanted) == len(stored):
        for (layer_name, param), i in assignment.items():
            result[layer_name][param] = stored[i][1]
        return result

    # 2. Keras's storage order (names renamed after the weights were created): the trainable weights of
    #    all layers, then the non-trainable ones; every stored name must still carry the expected parameter.
    order = [(layer.name, p) for layer in layers for p in (expected_params(layer)[0] if layer.trainable else [])]
    order += [(layer.name, p) for layer in layers
              for p in (expected_params(layer)[1] if layer.trainable else sum(expected_params(layer), []))]
    if len(order) != len(stored):
        names = ", ".join(n for n, _ in stored[:4])
        raise KerasFileError(
            f"{source}: layer group {group!r} stores {len(stored)} arrays ({names}, ...) but its layers need "
            f"{len(order)}; the weights do not match the file's own model_config")
    for (layer_name, param), (name, array) in zip(order, stored):
        if _param_of(name)[1] != param:
            raise KerasFileError(f"{source}: cannot match weight {name!r} of group {group!r} to a layer: no layer "
                                 f"of that name, and in storage order it would be {layer_name}/{param}")
        result[layer_name][param] = array
    return result


def _attr_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _attr_text(value.item())
    return str(value)


def _attr_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [_attr_text(v) for v in np.asarray(value).ravel()]


def read_keras_h5(path: str | Path) -> KerasFile:
    """Read a Keras 2 full-model ``.h5`` file: its layer graph and every layer's weights.

    The file is read through :class:`mammoscreen.core.hdf5.H5Reader`: every array's size is checked before
    it is read, and nothing outside the file (external links or storage) is followed.
    """
    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"weights file not found: {path}")
    try:
        reader = H5Reader(path)
    except HDF5InputError as e:
        raise KerasFileError(f"{e}; expected a Keras .h5 model file") from None
    try:
        with reader:
            return _read_keras(reader, path)
    except (HDF5InputError, InputLimitError) as e:
        raise KerasFileError(str(e)) from None


def _read_keras(f: H5Reader, path: Path) -> KerasFile:
    if not f.has_attr("/", "model_config"):
        weights_only = f.has_attr("/", "layer_names")
        kind = "a weights-only file (model.save_weights)" if weights_only else "not a Keras model file"
        raise KerasFileError(f"{path}: no model_config attribute - {kind}; the full model file "
                             "(model.save) is needed, because the architecture is read from it")
    model = parse_model_config(_attr_text(f.attr("/", "model_config")), str(path))
    keras_version = _attr_text(f.attr("/", "keras_version", "unknown"))
    backend = _attr_text(f.attr("/", "backend", "unknown"))
    if not f.contains("model_weights"):
        raise KerasFileError(f"{path}: no model_weights group")
    weights: dict[str, dict[str, np.ndarray]] = {}
    for layer in model.layers:
        inner = layer.model.leaf_layers(layer.name + "/") if layer.model is not None else [(layer.name, layer)]
        inner = [(p, x) for p, x in inner if sum(expected_params(x), [])]
        if not inner:
            continue
        group = f"model_weights/{layer.name}"
        if "/" in layer.name or not f.contains(group):
            raise KerasFileError(f"{path}: no weights stored for layer {layer.name!r}")
        names = _attr_list(f.attr(group, "weight_names"))
        try:
            stored = [(name, f.read(f"{group}/{name}")) for name in names]
        except KeyError as e:
            raise KerasFileError(f"{path}: weight {e} listed for layer {layer.name!r} is missing") from None
        if any(n.startswith("param_") for n, _ in stored):
            raise KerasFileError(f"{path}: weights of {layer.name!r} are unnamed (param_N, a Theano-saved "
                                 "file?); only TensorFlow-saved Keras files are supported")
        matched = _match_group(layer.name, stored, [x for _, x in inner], str(path))
        weights.update({p: matched[x.name] for p, x in inner})
    return KerasFile(path, keras_version, backend, model, weights)


__all__ = ["KerasFileError", "TensorRef", "KerasLayerSpec", "KerasModelSpec", "KerasFile", "parse_model_config",
           "read_keras_h5", "expected_params"]
