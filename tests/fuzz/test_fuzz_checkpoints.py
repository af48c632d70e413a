"""Fuzzing checkpoints and Keras files: odd state dicts (keys of other types, NaN, wrong shapes, objects),
mutated torch archives, and generated or mutated Keras ``model_config`` JSON in real HDF5 files."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fuzzing import assert_no_canary, bounded_call
from hostile import CanaryReduce, billion_laughs, build_on_list, deep_list, huge_bytearray, memo_index
from hypothesis import given, settings
from hypothesis import strategies as st
from testutils import examples
from torch import nn

from mammoscreen.interop.keras_h5 import KerasFileError, parse_model_config, read_keras_h5
from mammoscreen.models.weights import WeightsError, load_checkpoint, load_state_dict_into

WORK = Path(tempfile.mkdtemp(prefix="mammoscreen-fuzz-ckpt-"))
CANARY_DIR = Path(tempfile.mkdtemp(prefix="mammoscreen-canary-"))
MEMORY = 256 * 2 ** 20

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # unused-parameter warnings are expected


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(4, 2)


keys = st.one_of(st.sampled_from(["conv.weight", "conv.bias", "fc.weight", "fc.bias", "extra"]), st.integers(),
                 st.tuples(st.integers(), st.integers()), st.text(max_size=10))
values = st.one_of(
    st.sampled_from(["right", "nan", "inf", "wrong_shape", "int", "scalar"]),
    st.integers(), st.floats(), st.lists(st.integers(), max_size=3), st.just("canary"))


def _value(kind, key, reference):
    if not isinstance(kind, str):
        return kind
    shape = reference[key].shape if isinstance(key, str) and key in reference else (2,)
    if kind == "right":
        return torch.randn(shape)
    if kind == "nan":
        return torch.full(shape, float("nan"))
    if kind == "inf":
        return torch.full(shape, float("inf"))
    if kind == "wrong_shape":
        return torch.zeros(7, 3)
    if kind == "int":
        return torch.ones(shape, dtype=torch.int64)
    if kind == "scalar":
        return torch.tensor(1.0)
    if kind == "canary":
        return CanaryReduce(CANARY_DIR / "ran")
    return kind


@settings(max_examples=examples(120))
@given(st.dictionaries(keys, values, max_size=6), st.booleans(), st.booleans())
def test_odd_state_dicts(entries, wrap, complete):
    model = Small()
    reference = model.state_dict()
    state = {k: torch.randn(v.shape) for k, v in reference.items()} if complete else {}
    state.update({k: _value(v, k, reference) for k, v in entries.items()})
    path = WORK / "state.pt"
    torch.save({"model": state} if wrap else state, path)

    def load():
        loaded = load_checkpoint(path)
        load_state_dict_into(model, loaded["model"] if wrap and isinstance(loaded, dict) else loaded, str(path))

    _, error, _ = bounded_call(load, (WeightsError,), MEMORY)
    assert_no_canary(CANARY_DIR)
    if error is None:  # loaded: every parameter finite and of the model's shape
        assert all(torch.isfinite(p).all() for p in model.state_dict().values())
    elif any(not isinstance(k, str) for k in state) and not any(v == "canary" for v in entries.values()):
        assert "not strings" in str(error) or "not a" in str(error) or "names" in str(error), error


def _archive() -> bytes:
    buffer = io.BytesIO()
    torch.save(Small().state_dict(), buffer)
    return buffer.getvalue()


ARCHIVE = _archive()


@settings(max_examples=examples(150))
@given(st.lists(st.tuples(st.integers(0, len(ARCHIVE) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.one_of(st.none(), st.integers(0, len(ARCHIVE))))
def test_mutated_torch_archives(flips, cut):
    data = bytearray(ARCHIVE)
    for position, byte in flips:
        data[position] = byte
    path = WORK / "mutated.pt"
    path.write_bytes(bytes(data[:cut] if cut is not None else data))
    bounded_call(lambda: load_state_dict_into(Small(), load_checkpoint(path), str(path)), (WeightsError,), MEMORY)


@settings(max_examples=examples(60))
@given(st.sampled_from(["data.pkl", "byteorder", "version", "data/0"]),
       st.one_of(st.binary(max_size=64), st.sampled_from([deep_list(50_000), billion_laughs(9, 10), build_on_list(),
                                                          memo_index(), huge_bytearray()])))
@pytest.mark.slow
def test_replaced_archive_entries(entry, content):
    path = WORK / "replaced.pt"
    with zipfile.ZipFile(io.BytesIO(ARCHIVE)) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            replaced = info.filename.endswith("/" + entry)
            target.writestr(info.filename, content if replaced else source.read(info.filename))
    bounded_call(lambda: load_state_dict_into(Small(), load_checkpoint(path), str(path)), (WeightsError,), MEMORY)


VALID_CONFIG = {"class_name": "Model", "config": {
    "name": "m", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "config": {"batch_input_shape": [None, 8, 8, 1],
                                                                   "name": "input_1"}, "inbound_nodes": []},
        {"class_name": "Conv2D", "name": "conv1", "config": {"name": "conv1", "filters": 2, "kernel_size": [3, 3],
                                                             "use_bias": True},
         "inbound_nodes": [[["input_1", 0, 0, {}]]]}],
    "input_layers": [["input_1", 0, 0]], "output_layers": [["conv1", 0, 0]]}}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                           lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=6), x, max_size=3),
                           max_leaves=15)


@settings(max_examples=examples(150))
@given(st.lists(st.tuples(st.sampled_from(["replace", "delete", "wrap"]),
                          st.lists(st.integers(0, 5), max_size=4), json_values), max_size=4),
       st.integers(0, 2000))
def test_mutated_model_configs(edits, depth):
    config = json.loads(json.dumps(VALID_CONFIG))
    for action, route, value in edits:  # walk down a path of positions, then change what is there
        node = config
        for step in route:
            children = list(node) if isinstance(node, dict) else (range(len(node)) if isinstance(node, list) else [])
            if not children:
                break
            key = list(children)[step % len(children)]
            if not isinstance(node[key], (dict, list)):
                break
            node = node[key]
        if isinstance(node, dict) and node:
            key = sorted(node)[len(route) % len(node)]
            if action == "delete":
                del node[key]
            else:
                node[key] = [node[key]] if action == "wrap" else value
    text = json.dumps(config)
    if depth > 1500:
        text = "[" * depth + text + "]" * depth
    bounded_call(lambda: parse_model_config(text, "fuzz.h5"), (KerasFileError,), MEMORY)


@settings(max_examples=examples(40))
@given(st.sampled_from(["ok", "no_weights", "wrong_shape", "text_weights", "huge_fill", "deep_config"]))
def test_keras_files(case):
    path = WORK / f"{case}.h5"
    with h5py.File(path, "w") as f:
        config = json.dumps(VALID_CONFIG) if case != "deep_config" else "[" * 5000 + "]" * 5000
        f.attrs["model_config"] = config
        weights = f.create_group("model_weights")
        if case != "no_weights":
            group = weights.create_group("conv1")
            group.attrs["weight_names"] = [b"conv1/kernel:0", b"conv1/bias:0"]
            if case == "text_weights":
                group.create_dataset("conv1/kernel:0", data=np.array([b"abc"]))
            elif case == "huge_fill":
                group.create_dataset("conv1/kernel:0", shape=(2 ** 14, 2 ** 14), dtype=np.float32)
            else:
                group.create_dataset("conv1/kernel:0", data=np.zeros((3, 3, 1, 2) if case == "ok" else (5,),
                                                                     np.float32))
            group.create_dataset("conv1/bias:0", data=np.zeros(2, np.float32))
    result, error, _ = bounded_call(lambda: read_keras_h5(path), (KerasFileError,), MEMORY)
    assert (error is None) == (case in ("ok", "wrong_shape")), error  # shapes are checked when building
