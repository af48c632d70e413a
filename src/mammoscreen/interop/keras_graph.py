"""Keras models as PyTorch modules, built from a Keras ``.h5`` file's own ``model_config``.

Rather than hard-coding one network, each Keras layer of the file becomes the PyTorch module below with
the same arguments, named after the Keras layer, and the graph is run in the file's order; the end2end
models (:mod:`mammoscreen.models.end2end`) are built this way.

Keras conventions reproduced exactly: NHWC kernels ``(kh, kw, in, out)`` (converted once at load),
TensorFlow "same" padding (asymmetric when the total is odd: the extra row/column goes at the
bottom/right), BatchNormalization with the file's epsilon (1e-3 by default), pooling without padding
unless "same", and ``Flatten`` in channels-last order. Tensors are NCHW inside.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers.padding import same_padding
from .keras_h5 import KerasFileError, KerasLayerSpec, KerasModelSpec, TensorRef

# ----------------------------------------------------------------------------------------------
# Keras layers as PyTorch modules
# ----------------------------------------------------------------------------------------------

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": lambda x: x,
    "relu": F.relu,
    "softmax": lambda x: torch.softmax(x, dim=1),  # Keras: last axis = channels
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": F.elu,
    "selu": F.selu,
    "softplus": F.softplus,
    "softsign": F.softsign,
    "hard_sigmoid": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),  # Keras 2 definition
    "relu6": F.relu6,
}


def activation_fn(name: str, where: str = "") -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise KerasFileError(f"{where}: activation {name!r} is not supported") from None


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return int(value[0]), int(value[0])
        return int(value[0]), int(value[1])
    return int(value), int(value)


class KerasConv2d(nn.Module):
    """Keras ``Conv2D`` (channels-last kernel converted to OIHW at load)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int],
                 stride: tuple[int, int] = (1, 1), padding: str = "valid", dilation: tuple[int, int] = (1, 1),
                 bias: bool = True, activation: str = "linear"):
        super().__init__()
        if padding not in ("valid", "same"):
            raise KerasFileError(f"Conv2D padding {padding!r} is not supported")
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.kernel_size, self.stride, self.dilation, self.padding = kernel_size, stride, dilation, padding
        self.activation_name = activation
        self.activation = activation_fn(activation, "Conv2D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (0, 0)
        if self.padding == "same":
            top, bottom = same_padding(x.shape[2], self.kernel_size[0], self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[3], self.kernel_size[1], self.stride[1], self.dilation[1])
            if top == bottom and left == right:
                pad = (top, left)
            else:
                x = F.pad(x, (left, right, top, bottom))
        return self.activation(F.conv2d(x, self.weight, self.bias, self.stride, pad, self.dilation))

    def keras_state(self, params: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        kernel = torch.from_numpy(np.ascontiguousarray(params["kernel"], dtype=np.float32))
        state = {"weight": kernel.permute(3, 2, 0, 1).contiguous()}
        if self.bias is not None:
            state["bias"] = torch.from_numpy(np.asarray(params["bias"], dtype=np.float32))
        return state


class KerasDense(nn.Module):
    """Keras ``Dense`` on the last (channel) axis."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.activation = activation_fn(activation, "Dense")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self.activation(F.linear(x, self.weight, self.bias))
        # Applied along channels of a feature map: move channels last and back.
        return self.activation(F.linear(x.movedim(1, -1), self.weight, self.bias)).movedim(-1, 1)

    def keras_state(self, params: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        state = {"weight": torch.from_numpy(np.ascontiguousarray(np.asarray(params["kernel"], dtype=np.float32).T))}
        if self.bias is not None:
            state["bias"] = torch.from_numpy(np.asarray(params["bias"], dtype=np.float32))
        return state


class KerasBatchNorm(nn.Module):
    """Keras ``BatchNormalization`` at inference: ``gamma * (x - mean) / sqrt(var + eps) + beta`` over channels."""

    def __init__(self, num_features: int, eps: float = 1e-3, scale: bool = True, center: bool = True, axis: int = -1):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features)) if scale else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if center else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.eps = float(eps)
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis not in (-1, x.dim() - 1):  # Keras axes are channels-last; only the channel axis is supported
            raise KerasFileError(f"BatchNormalization over axis {self.axis} of a {x.dim()}-D tensor is not supported")
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def keras_state(self, params: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
        names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
        return {names[k]: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in params.items() if k in names}


class KerasZeroPadding2D(nn.Module):
    def __init__(self, top: int, bottom: int, left: int, right: int):
        super().__init__()
        self.pad = (left, right, top, bottom)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


class KerasCropping2D(nn.Module):
    def __init__(self, top: int, bottom: int, left: int, right: int):
        super().__init__()
        self.crop = (top, bottom, left, right)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom, left, right = self.crop
        return x[:, :, top: x.shape[2] - bottom, left: x.shape[3] - right]


class KerasPool2d(nn.Module):
    """Keras ``MaxPooling2D`` / ``AveragePooling2D`` with 'valid' or TensorFlow 'same' padding."""

    def __init__(self, mode: str, pool_size: tuple[int, int], strides: tuple[int, int], padding: str = "valid"):
        super().__init__()
        if mode not in ("max", "avg") or padding not in ("valid", "same"):
            raise KerasFileError(f"pooling {mode}/{padding} is not supported")
        self.mode, self.pool_size, self.strides, self.padding = mode, pool_size, strides, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            top, bottom = same_padding(x.shape[2], self.pool_size[0], self.strides[0])
            left, right = same_padding(x.shape[3], self.pool_size[1], self.strides[1])
            if self.mode == "max":  # padded positions never win
                x = F.pad(x, (left, right, top, bottom), value=-math.inf)
                return F.max_pool2d(x, self.pool_size, self.strides)
            # TensorFlow averages over the valid positions only.
            padded = F.pad(x, (left, right, top, bottom))
            ones = F.pad(torch.ones_like(x[:1, :1]), (left, right, top, bottom))
            count = F.avg_pool2d(ones, self.pool_size, self.strides)
            return F.avg_pool2d(padded, self.pool_size, self.strides) / count
        pool = F.max_pool2d if self.mode == "max" else F.avg_pool2d
        return pool(x, self.pool_size, self.strides)


class KerasGlobalPool2d(nn.Module):
    def __init__(self, mode: str, keepdims: bool = False):
        super().__init__()
        self.mode, self.keepdims = mode, keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "avg":
            return x.mean(dim=(2, 3), keepdim=self.keepdims)
        return x.amax(dim=(2, 3), keepdim=self.keepdims)


class KerasFlatten(nn.Module):
    """Keras ``Flatten`` of a channels-last tensor: (N, C, H, W) is flattened in (H, W, C) order."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)


class KerasActivation(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.fn = activation_fn(name, "Activation")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class KerasLeakyReLU(nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.alpha)


class KerasMerge(nn.Module):
    """Keras ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum``, ``Minimum``, ``Concatenate``."""

    def __init__(self, mode: str, axis: int = -1):
        super().__init__()
        self.mode, self.axis = mode, axis

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.mode == "add":
            out = xs[0]
            for x in xs[1:]:
                out = out + x
            return out
        if self.mode == "subtract":
            return xs[0] - xs[1]
        if self.mode == "multiply":
            out = xs[0]
            for x in xs[1:]:
                out = out * x
            return out
        if self.mode == "average":
            return torch.stack(xs).mean(0)
        if self.mode == "maximum":
            return torch.stack(xs).amax(0)
        if self.mode == "minimum":
            return torch.stack(xs).amin(0)
        # concatenate: Keras axes are channels-last
        ndim = xs[0].dim()
        axis = self.axis % ndim
        torch_axis = axis if ndim == 2 else {1: 2, 2: 3, 3: 1}[axis]
        return torch.cat(xs, dim=torch_axis)


# Layers that do nothing at inference.
_IDENTITY_LAYERS = {"InputLayer", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                    "ActivityRegularization"}
_MERGE_LAYERS = {"Add": "add", "Subtract": "subtract", "Multiply": "multiply", "Average": "average",
                 "Maximum": "maximum", "Minimum": "minimum", "Concatenate": "concatenate"}


def _check_channels_last(layer: KerasLayerSpec) -> None:
    if layer.config.get("data_format", "channels_last") != "channels_last":
        raise KerasFileError(f"layer {layer.name}: data_format {layer.config.get('data_format')!r} is not supported "
                             "(the end2end models are channels_last)")


def build_layer(layer: KerasLayerSpec, params: Mapping[str, np.ndarray] | None, where: str = "") -> nn.Module:
    """The PyTorch module for one (non-model) Keras layer; ``params`` give the weight shapes."""
    c, kind = layer.config, layer.class_name
    where = f"{where}layer {layer.name} ({kind})"
    if kind in _IDENTITY_LAYERS:
        return nn.Identity()
    if kind in ("Conv2D", "Dense", "BatchNormalization") and not params:
        raise KerasFileError(f"{where}: no weights in the file")
    if kind == "Conv2D":
        _check_channels_last(layer)
        kernel = params["kernel"]
        if (kernel.ndim != 4 or tuple(kernel.shape[:2]) != _pair(c["kernel_size"])
                or kernel.shape[3] != int(c["filters"])):
            raise KerasFileError(f"{where}: kernel of shape {kernel.shape} does not fit kernel_size {c['kernel_size']} "
                                 f"and {c['filters']} filters")
        if int(c.get("groups", 1)) != 1:
            raise KerasFileError(f"{where}: grouped convolutions are not supported")
        return KerasConv2d(kernel.shape[2], kernel.shape[3], _pair(c["kernel_size"]), _pair(c.get("strides", 1)),
                           c.get("padding", "valid"), _pair(c.get("dilation_rate", 1)), bool(c.get("use_bias", True)),
                           c.get("activation", "linear"))
    if kind == "Dense":
        kernel = params["kernel"]
        if kernel.ndim != 2 or kernel.shape[1] != int(c["units"]):
            raise KerasFileError(f"{where}: kernel of shape {kernel.shape} does not fit {c['units']} units")
        return KerasDense(kernel.shape[0], kernel.shape[1], bool(c.get("use_bias", True)),
                          c.get("activation", "linear"))
    if kind == "BatchNormalization":
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
        if not isinstance(axis, int):
            raise KerasFileError(f"{where}: normalisation over axes {axis} is not supported")
        return KerasBatchNorm(params["moving_mean"].shape[0], c.get("epsilon", 1e-3), bool(c.get("scale", True)),
                              bool(c.get("center", True)), axis)
    if kind == "Activation":
        return KerasActivation(c.get("activation", "linear"))
    if kind in ("ReLU", "Softmax", "LeakyReLU"):
        if kind == "Softmax" and c.get("axis", -1) not in (-1, 3):
            raise KerasFileError(f"{where}: softmax over axis {c.get('axis')} is not supported")
        if kind == "ReLU" and (c.get("max_value") is not None or c.get("negative_slope", 0) or c.get("threshold", 0)):
            raise KerasFileError(f"{where}: ReLU with max_value/negative_slope/threshold is not supported")
        if kind == "LeakyReLU":
            return KerasLeakyReLU(c.get("alpha", 0.3))
        return KerasActivation("relu" if kind == "ReLU" else "softmax")
    if kind in ("ZeroPadding2D", "Cropping2D"):
        _check_channels_last(layer)
        raw = c.get("padding" if kind == "ZeroPadding2D" else "cropping", 1)
        if isinstance(raw, (list, tuple)) and raw and isinstance(raw[0], (list, tuple)):
            (top, bottom), (left, right) = _pair(raw[0]), _pair(raw[1])
        else:
            (top, left) = _pair(raw)
            bottom, right = top, left
        return (KerasZeroPadding2D if kind == "ZeroPadding2D" else KerasCropping2D)(top, bottom, left, right)
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        _check_channels_last(layer)
        pool = _pair(c.get("pool_size", 2))
        strides = _pair(c["strides"]) if c.get("strides") is not None else pool
        return KerasPool2d("max" if kind == "MaxPooling2D" else "avg", pool, strides, c.get("padding", "valid"))
    if kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        _check_channels_last(layer)
        return KerasGlobalPool2d("avg" if kind == "GlobalAveragePooling2D" else "max", bool(c.get("keepdims", False)))
    if kind == "Flatten":
        _check_channels_last(layer)
        return KerasFlatten()
    if kind in _MERGE_LAYERS:
        return KerasMerge(_MERGE_LAYERS[kind], int(c.get("axis", -1)))
    raise KerasFileError(f"{where}: layer type {kind} is not supported by mammoscreen's Keras loader"
                         + (" (Lambda layers hold Python code, which is never executed)" if kind == "Lambda" else ""))


def _module_key(name: str) -> str:
    # nn.Module names cannot contain '.'; Keras names are otherwise valid.
    return name.replace(".", "_")


class KerasNetwork(nn.Module):
    """A Keras functional model as a PyTorch module: one submodule per layer, run in graph order.

    Submodules are named after the Keras layers (``layers.conv1``, ``layers.model_2.layers.bn_conv1``).
    ``forward`` takes and returns NCHW tensors; intermediate outputs are freed as soon as no later layer
    needs them, which keeps memory low on whole mammograms.
    """

    def __init__(self, spec: KerasModelSpec, weights: Mapping[str, Mapping[str, np.ndarray]], prefix: str = ""):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleDict()
        for layer in spec.layers:
            key = _module_key(layer.name)
            if key in self.layers:
                raise KerasFileError(f"layer name {layer.name!r} occurs twice")
            if layer.model is not None:
                self.layers[key] = KerasNetwork(layer.model, weights, prefix + layer.name + "/")
            else:
                self.layers[key] = build_layer(layer, weights.get(prefix + layer.name), f"{prefix}")
        self._plan_execution()

    # Graph bookkeeping -------------------------------------------------------------------------
    def _node_key(self, ref: TensorRef) -> tuple[str, int]:
        """(layer, index into its serialized inbound nodes) of a reference."""
        try:
            layer = self.spec.layer(ref.layer)
        except KeyError:
            raise KerasFileError(f"model {self.spec.name}: reference to unknown layer {ref.layer!r}") from None
        count = len(layer.inbound_nodes)
        if count <= 1:
            return layer.name, 0
        index = ref.node - (1 if layer.model is not None else 0)  # a nested model's node 0 is its own definition
        if not 0 <= index < count:
            raise KerasFileError(f"model {self.spec.name}: layer {ref.layer} has no call {ref.node}")
        return layer.name, index

    def _plan_execution(self) -> None:
        steps: list[tuple[tuple[str, int], list[tuple[tuple[str, int], int]]]] = []
        done: set[tuple[str, int]] = set()
        inputs = {self._node_key(ref) for ref in self.spec.inputs}

        def visit(key: tuple[str, int], stack: tuple = ()) -> None:
            if key in done or key in inputs:
                return
            if key in stack:
                raise KerasFileError(f"model {self.spec.name}: cycle in the layer graph at {key[0]}")
            layer = self.spec.layer(key[0])
            if not layer.inbound_nodes:
                raise KerasFileError(f"model {self.spec.name}: layer {key[0]} has no inputs and is not a model input")
            args = [(self._node_key(ref), ref.tensor) for ref in layer.inbound_nodes[key[1]]]
            for arg, _ in args:
                visit(arg, stack + (key,))
            steps.append((key, args))
            done.add(key)

        for ref in self.spec.outputs:
            visit(self._node_key(ref))
        self._inputs = [self._node_key(ref) for ref in self.spec.inputs]
        self._outputs = [(self._node_key(ref), ref.tensor) for ref in self.spec.outputs]
        self._steps = steps
        # After which step each tensor is last needed (outputs are kept).
        last_use: dict[tuple[str, int], int] = {}
        for i, (_, args) in enumerate(steps):
            for arg, _ in args:
                last_use[arg] = i
        keep = {key for key, _ in self._outputs}
        self._free_after: list[list[tuple[str, int]]] = [[] for _ in steps]
        for key, i in last_use.items():
            if key not in keep:
                self._free_after[i].append(key)

    @property
    def input_shapes(self) -> list[tuple[int | None, ...]]:
        """Keras input shapes (batch, rows, cols, channels), None where unspecified."""
        shapes = []
        for ref in self.spec.inputs:
            config = self.spec.layer(ref.layer).config
            shape = config.get("batch_input_shape") or config.get("batch_shape")
            shapes.append(tuple(shape) if shape else ())
        return shapes

    def forward(self, *inputs: torch.Tensor, capture: set[str] | None = None,
                captured: dict[str, torch.Tensor] | None = None, prefix: str = "") -> Any:
        """Run the graph on NCHW ``inputs``; with ``capture``, outputs of those layer paths go to ``captured``."""
        if len(inputs) != len(self._inputs):
            raise ValueError(f"model {self.spec.name} takes {len(self._inputs)} input(s), got {len(inputs)}")
        env: dict[tuple[str, int], tuple[torch.Tensor, ...]] = {key: (x,) for key, x in zip(self._inputs, inputs)}
        for i, (key, args) in enumerate(self._steps):
            module = self.layers[_module_key(key[0])]
            xs = [env[arg][t] for arg, t in args]
            if isinstance(module, KerasNetwork):
                out = module(*xs, capture=capture, captured=captured, prefix=prefix + key[0] + "/")
            else:
                out = module(*xs)
            out = out if isinstance(out, tuple) else (out,)
            env[key] = out
            if capture and prefix + key[0] in capture and captured is not None:
                captured[prefix + key[0]] = out[0]
            for freed in self._free_after[i]:
                env.pop(freed, None)
        outputs = tuple(env[key][t] for key, t in self._outputs)
        return outputs[0] if len(outputs) == 1 else outputs

    @torch.no_grad()
    def fold_batchnorm(self) -> int:
        """Fold each BatchNormalization into the convolution feeding it (inference only); returns how many.

        A Conv2D (linear activation) whose output is used only by one BatchNormalization over channels
        gets ``w * gamma / sqrt(var + eps)`` and ``(b - mean) * gamma / sqrt(var + eps) + beta``; the
        normalisation layer then passes its input through. Saves a pass over every feature map; the
        results change only by float rounding (~1e-7 relative).
        """
        consumers: dict[tuple[str, int], list[tuple[str, int]]] = {}
        for key, args in self._steps:
            for arg, _ in args:
                consumers.setdefault(arg, []).append(key)
        outputs = {key for key, _ in self._outputs}
        folded = 0
        for key, args in self._steps:
            bn = self.layers[_module_key(key[0])]
            if not isinstance(bn, KerasBatchNorm) or len(args) != 1 or bn.axis not in (-1, 3):
                continue
            (source, _), = args
            conv = self.layers[_module_key(source[0])]
            if (not isinstance(conv, KerasConv2d) or conv.activation_name != "linear" or source in outputs
                    or consumers.get(source) != [key] or len(self.spec.layer(source[0]).inbound_nodes) != 1
                    or len(self.spec.layer(key[0]).inbound_nodes) != 1):
                continue
            scale = torch.rsqrt(bn.running_var.double() + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.double()
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            bias = (bias - bn.running_mean.double()) * scale
            if bn.bias is not None:
                bias = bias + bn.bias.double()
            conv.weight.copy_((conv.weight.double() * scale[:, None, None, None]).float())
            conv.bias = nn.Parameter(bias.float())
            self.layers[_module_key(key[0])] = nn.Identity()
            folded += 1
        for module in self.layers.values():
            if isinstance(module, KerasNetwork):
                folded += module.fold_batchnorm()
        return folded

    def keras_state_dict(self, weights: Mapping[str, Mapping[str, np.ndarray]], prefix: str = "",
                         module_prefix: str = "") -> dict[str, torch.Tensor]:
        """This network's state dict built from Keras arrays keyed by layer path."""
        state: dict[str, torch.Tensor] = {}
        for layer in self.spec.layers:
            module = self.layers[_module_key(layer.name)]
            name = f"{module_prefix}layers.{_module_key(layer.name)}."
            if isinstance(module, KerasNetwork):
                state.update(module.keras_state_dict(weights, prefix + layer.name + "/", name))
            elif hasattr(module, "keras_state"):
                for k, v in module.keras_state(weights[prefix + layer.name]).items():
                    state[name + k] = v
        return state


__all__ = ["KerasNetwork", "activation_fn", "build_layer", "same_padding"]
