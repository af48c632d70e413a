"""Reading Caffe ``.caffemodel`` weights with a minimal protobuf wire-format reader - no Caffe, no protobuf.

A ``.caffemodel`` is a binary ``NetParameter`` message. Only the parts that hold weights are read:

* ``NetParameter``: ``name`` (1), ``layer`` (100, ``LayerParameter``) and the legacy ``layers`` (2,
  ``V1LayerParameter``);
* ``LayerParameter``: ``name`` (1), ``type`` (2, string), ``blobs`` (7); ``V1LayerParameter``: ``name``
  (4), ``type`` (5, enum), ``blobs`` (6);
* ``BlobProto``: ``shape`` (7, ``BlobShape`` with packed ``dim`` (1)) or the legacy ``num``/``channels``/
  ``height``/``width`` (1-4); ``data`` (5, float32, packed or not) or ``double_data`` (8).

Everything else (layer parameters, training settings) is skipped by wire type. Arrays are views into a
memory map of the file until copied, so a 550 MB model is read without holding it twice.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.checkpoints import WeightsError


class CaffeModelError(WeightsError):
    """A file is not a readable Caffe model."""


@dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise CaffeModelError("truncated varint")
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 70:
            raise CaffeModelError("malformed varint")


def iter_fields(buf: memoryview):
    """Yield (field number, wire type, value) of one message: an int for varints, a memoryview otherwise."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = _varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise CaffeModelError(f"unsupported protobuf wire type {wire} (field {number})")
        if i > n:
            raise CaffeModelError("message truncated (is the file complete?)")
        yield number, wire, value


def _packed_varints(buf: memoryview) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        value, i = _varint(buf, i)
        out.append(value)
    return out


def _read_blob(buf: memoryview, where: str) -> np.ndarray:
    shape: list[int] | None = None
    legacy = {1: 1, 2: 1, 3: 1, 4: 1}
    legacy_seen = False
    chunks: list[np.ndarray] = []
    for number, wire, value in iter_fields(buf):
        if number == 7 and wire == 2:  # BlobShape
            shape = []
            for f, w, v in iter_fields(value):
                if f == 1:
                    shape.extend(_packed_varints(v) if w == 2 else [v])
        elif number in legacy and wire == 0:
            legacy[number] = value
            legacy_seen = True
        elif number == 5:  # float data, packed (wire 2) or one value per field (wire 5)
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif number == 8:  # double_data
            chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
    if shape is None:
        shape = [legacy[1], legacy[2], legacy[3], legacy[4]] if legacy_seen else None
    data = chunks[0] if len(chunks) == 1 else (np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
    if shape is None:
        shape = [data.size]
    if int(np.prod(shape)) != data.size:
        raise CaffeModelError(f"{where}: blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


# Legacy V1LayerParameter type enum values of the layers with weights.
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


def read_caffemodel(path: str | Path) -> tuple[str, dict[str, CaffeLayer]]:
    """(net name, {layer name: CaffeLayer}) for every layer of a ``.caffemodel`` that has blobs.

    Blobs are float32 arrays in Caffe's layout (convolution OIHW, inner product (out, in)); they
    reference the file's memory map, copy them (e.g. ``torch.tensor``) to keep them.
    """
    path = Path(path)
    if not path.is_file():
        raise CaffeModelError(f"weights file not found: {path}")
    if path.stat().st_size == 0:
        raise CaffeModelError(f"{path}: empty file")
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    buf = memoryview(data)
    name = ""
    layers: dict[str, CaffeLayer] = {}
    try:
        for number, wire, value in iter_fields(buf):
            if number == 1 and wire == 2:
                name = bytes(value).decode("utf-8", "replace")
            elif number in (100, 2) and wire == 2:
                v1 = number == 2
                layer = CaffeLayer("", "")
                blob_field = 6 if v1 else 7
                for f, w, v in iter_fields(value):
                    if f == (4 if v1 else 1) and w == 2:
                        layer.name = bytes(v).decode("utf-8", "replace")
                    elif f == (5 if v1 else 2):
                        layer.type = _V1_TYPES.get(v, str(v)) if v1 and w == 0 else bytes(v).decode("utf-8", "replace")
                    elif f == blob_field and w == 2:
                        layer.blobs.append(_read_blob(v, f"{path}: layer {layer.name or '?'}"))
                if layer.blobs:
                    if layer.name in layers:
                        raise CaffeModelError(f"{path}: layer {layer.name!r} occurs twice")
                    layers[layer.name] = layer
    except CaffeModelError as e:
        raise CaffeModelError(f"{path}: not a readable .caffemodel ({e})") from None
    if not layers:
        raise CaffeModelError(f"{path}: no layers with weights found - is this a .caffemodel (binary NetParameter)?")
    return name, layers


__all__ = ["CaffeModelError", "CaffeLayer", "read_caffemodel", "iter_fields"]
