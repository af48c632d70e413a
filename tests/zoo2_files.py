"""Writers of small model files in the released formats, for tests: Keras 2 ``.h5`` and Caffe ``.caffemodel``.

They write what Keras (``model.save``) and Caffe (``Net::ToProto``) write, from the format descriptions
(HDF5 layout of Keras 2.0.5; caffe.proto field numbers), independently of the readers under test.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# ----------------------------------------------------------------------------------------------
# Keras 2 model configs and .h5 files
# ----------------------------------------------------------------------------------------------


def node(*names: str | tuple[str, int]) -> list:
    """An inbound node: inputs given as 'layer' or ('layer', node_index)."""
    out = []
    for n in names:
        name, index = (n, 0) if isinstance(n, str) else n
        out.append([name, index, 0, {}])
    return [out]


def input_layer(name: str, shape: Sequence[int | None]) -> dict:
    return {"class_name": "InputLayer", "name": name, "inbound_nodes": [],
            "config": {"batch_input_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name}}


def layer(class_name: str, name: str, inbound: list, **config: Any) -> dict:
    return {"class_name": class_name, "name": name, "inbound_nodes": inbound,
            "config": {"name": name, "trainable": True, **config}}


def conv(name: str, inbound: list, filters: int, kernel: int, strides: int = 1, padding: str = "valid",
         activation: str = "linear", use_bias: bool = True) -> dict:
    return layer("Conv2D", name, inbound, filters=filters, kernel_size=[kernel, kernel], strides=[strides, strides],
                 padding=padding, data_format="channels_last", dilation_rate=[1, 1], activation=activation,
                 use_bias=use_bias)


def batchnorm(name: str, inbound: list, epsilon: float = 1e-3, axis: int = -1) -> dict:
    return layer("BatchNormalization", name, inbound, axis=axis, momentum=0.99, epsilon=epsilon, center=True,
                 scale=True)


def model_config(name: str, layers: list, inputs: Sequence[str], outputs: Sequence[str | tuple[str, int]],
                 class_name: str = "Model") -> dict:
    outs = [[o, 0, 0] if isinstance(o, str) else [o[0], o[1], 0] for o in outputs]
    return {"class_name": class_name, "config": {"name": name, "layers": layers,
                                                 "input_layers": [[i, 0, 0] for i in inputs], "output_layers": outs}}


def keras_weights(layer_config: dict, rng: np.random.Generator, in_channels: int) -> list[tuple[str, np.ndarray]]:
    """Random Keras-layout arrays for a Conv2D/Dense/BatchNormalization config, in Keras's order."""
    c, kind, name = layer_config["config"], layer_config["class_name"], layer_config["name"]
    if kind == "Conv2D":
        k = c["kernel_size"][0]
        out = [(f"{name}/kernel:0", rng.normal(0, np.sqrt(2 / (k * k * in_channels)),
                                               (k, k, in_channels, c["filters"])).astype(np.float32))]
        if c.get("use_bias", True):
            out.append((f"{name}/bias:0", rng.normal(0, 0.1, c["filters"]).astype(np.float32)))
        return out
    if kind == "Dense":
        return [(f"{name}/kernel:0", rng.normal(0, 0.5, (in_channels, c["units"])).astype(np.float32)),
                (f"{name}/bias:0", rng.normal(0, 0.1, c["units"]).astype(np.float32))]
    if kind == "BatchNormalization":
        return [(f"{name}/gamma:0", rng.uniform(0.5, 1.5, in_channels).astype(np.float32)),
                (f"{name}/beta:0", rng.normal(0, 0.1, in_channels).astype(np.float32)),
                (f"{name}/moving_mean:0", rng.normal(0, 0.1, in_channels).astype(np.float32)),
                (f"{name}/moving_variance:0", rng.uniform(0.5, 1.5, in_channels).astype(np.float32))]
    return []


def write_keras_h5(path: Path, config: dict, groups: dict[str, list[tuple[str, np.ndarray]]],
                   layer_names: Sequence[str], keras_version: str = "2.0.5") -> Path:
    """A Keras 2 full-model file: ``model_config`` and ``model_weights/<group>/<weight name>`` datasets."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = keras_version.encode()
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
        for name in layer_names:
            g = weights.create_group(name)
            stored = groups.get(name, [])
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in stored])
            for weight_name, array in stored:
                g.create_dataset(weight_name, data=array)
    return path


# ----------------------------------------------------------------------------------------------
# Protobuf wire format and Caffe NetParameter
# ----------------------------------------------------------------------------------------------

def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def blob(array: np.ndarray, legacy_shape: bool = False, packed: bool = True) -> bytes:
    """A BlobProto: shape (7) or legacy num/channels/height/width (1-4), data (5) packed or not."""
    array = np.asarray(array, dtype="<f4")
    if legacy_shape:
        dims = [1] * (4 - array.ndim) + list(array.shape)
        head = b"".join(field_varint(i + 1, d) for i, d in enumerate(dims))
    else:
        head = field_bytes(7, field_bytes(1, b"".join(varint(int(d)) for d in array.shape)))
    if packed:
        data = field_bytes(5, array.tobytes())
    else:
        data = b"".join(varint(5 << 3 | 5) + struct.pack("<f", float(v)) for v in array.ravel())
    return head + data


def caffe_layer(name: str, type_: str, blobs: Sequence[np.ndarray], v1: bool = False, **blob_options: Any) -> bytes:
    """A LayerParameter (NetParameter field 100), or a V1LayerParameter (field 2) with ``v1``."""
    if v1:
        v1_types = {"Convolution": 4, "InnerProduct": 14}
        body = field_bytes(4, name.encode()) + field_varint(5, v1_types[type_])
        body += b"".join(field_bytes(6, blob(b, **blob_options)) for b in blobs)
        return field_bytes(2, body)
    body = field_bytes(1, name.encode()) + field_bytes(2, type_.encode())
    body += field_bytes(3, b"data") + field_bytes(4, name.encode())  # bottom/top, skipped by readers
    body += b"".join(field_bytes(7, blob(b, **blob_options)) for b in blobs)
    return field_bytes(100, body)


def write_caffemodel(path: Path, layers: Sequence[bytes], name: str = "VGG_ILSVRC_16_layers") -> Path:
    path.write_bytes(field_bytes(1, name.encode()) + b"".join(layers))
    return path


FRCNN_CONVS = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1", "conv4_2",
               "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def tiny_frcnn_blobs(seed: int = 0, width: int = 4, fc: int = 16) -> dict[str, list[np.ndarray]]:
    """Weights of a narrow frcnn_cad network (same topology, ``width`` channels, ``fc`` hidden units)."""
    rng = np.random.default_rng(seed)
    blobs: dict[str, list[np.ndarray]] = {}
    cin = 3
    for name in FRCNN_CONVS:
        blobs[name] = [rng.normal(0, np.sqrt(2 / (9 * cin)), (width, cin, 3, 3)), rng.normal(0, 0.01, width)]
        cin = width
    blobs["rpn_conv/3x3"] = [rng.normal(0, np.sqrt(2 / (9 * width)), (width, width, 3, 3)), rng.normal(0, 0.01, width)]
    blobs["rpn_cls_score"] = [rng.normal(0, 0.3, (18, width, 1, 1)), rng.normal(0, 0.1, 18)]
    blobs["rpn_bbox_pred"] = [rng.normal(0, 0.02, (36, width, 1, 1)), rng.normal(0, 0.01, 36)]
    blobs["fc6"] = [rng.normal(0, np.sqrt(2 / (49 * width)), (fc, 49 * width)), rng.normal(0, 0.01, fc)]
    blobs["fc7"] = [rng.normal(0, np.sqrt(2 / fc), (fc, fc)), rng.normal(0, 0.01, fc)]
    blobs["cls_score"] = [rng.normal(0, 0.3, (3, fc)), rng.normal(0, 0.3, 3)]
    blobs["bbox_pred"] = [rng.normal(0, 0.01, (12, fc)), rng.normal(0, 0.01, 12)]
    return {k: [np.asarray(b, dtype=np.float32) for b in v] for k, v in blobs.items()}


def write_tiny_frcnn(path: Path, seed: int = 0, **options: Any) -> Path:
    blobs = tiny_frcnn_blobs(seed)
    types = {name: ("InnerProduct" if name in ("fc6", "fc7", "cls_score", "bbox_pred") else "Convolution")
             for name in blobs}
    layers = [caffe_layer("data", "Input", [])]  # a layer without blobs, as in real files
    layers += [caffe_layer(name, types[name], b, **options) for name, b in blobs.items()]
    return write_caffemodel(path, layers)


def tiny_end2end_config() -> tuple[dict, list[str]]:
    """An end2end-shaped model: input -> nested trunk (conv/bn/relu/pool) -> top conv block -> GAP -> softmax."""
    trunk_layers = [
        input_layer("input_1", (None, None, 3)),
        layer("ZeroPadding2D", "zero_padding2d_1", node("input_1"), padding=[[1, 1], [1, 1]],
              data_format="channels_last"),
        conv("conv1", node("zero_padding2d_1"), 4, 3, strides=2),
        batchnorm("bn_conv1", node("conv1")),
        layer("Activation", "activation_1", node("bn_conv1"), activation="relu"),
        layer("MaxPooling2D", "max_pooling2d_1", node("activation_1"), pool_size=[3, 3], strides=[2, 2],
              padding="valid", data_format="channels_last"),
    ]
    trunk = model_config("model_1", trunk_layers, ["input_1"], ["max_pooling2d_1"])
    outer = [
        input_layer("input_2", (64, 48, 3)),
        {"class_name": "Model", "name": "model_1", "config": trunk["config"], "inbound_nodes": node("input_2")},
        conv("conv2d_1", node(("model_1", 1)), 6, 3, strides=2, padding="same"),
        batchnorm("batch_normalization_1", node("conv2d_1")),
        conv("conv2d_2", node(("model_1", 1)), 6, 1, strides=2, padding="valid"),
        layer("Add", "add_1", node("batch_normalization_1", "conv2d_2")),
        layer("Activation", "activation_2", node("add_1"), activation="relu"),
        layer("Dropout", "dropout_1", node("activation_2"), rate=0.0),
        layer("GlobalAveragePooling2D", "global_average_pooling2d_1", node("dropout_1"), data_format="channels_last"),
        layer("Dense", "dense_1", node("global_average_pooling2d_1"), units=2, activation="softmax", use_bias=True),
    ]
    config = model_config("model_2", outer, ["input_2"], ["dense_1"])
    return config, [entry["name"] for entry in outer]


def write_tiny_end2end(path: Path, seed: int = 0) -> Path:
    """A small Keras 2.0.5-style end2end file with random weights, nested trunk weights in one group."""
    config, layer_names = tiny_end2end_config()
    rng = np.random.default_rng(seed)
    trunk = config["config"]["layers"][1]["config"]["layers"]
    trunk_weights = keras_weights(trunk[2], rng, 3) + keras_weights(trunk[3], rng, 4)
    # Keras stores a nested model's trainable arrays first, then the non-trainable ones.
    trainable = [w for w in trunk_weights if "moving" not in w[0]]
    groups = {"model_1": trainable + [w for w in trunk_weights if "moving" in w[0]]}
    outer = {entry["name"]: entry for entry in config["config"]["layers"]}
    groups["conv2d_1"] = keras_weights(outer["conv2d_1"], rng, 4)
    groups["batch_normalization_1"] = keras_weights(outer["batch_normalization_1"], rng, 6)
    groups["conv2d_2"] = keras_weights(outer["conv2d_2"], rng, 4)
    groups["dense_1"] = keras_weights(outer["dense_1"], rng, 6)
    return write_keras_h5(path, config, groups, layer_names)
