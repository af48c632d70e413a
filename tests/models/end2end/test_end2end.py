"""end2end: Keras .h5 reading (structure and weights by name) and the Keras-graph network, on generated files.

The network's output is checked against a direct NHWC numpy implementation of the Keras layers written
here from their definitions (TensorFlow 'same' padding, BatchNormalization with epsilon, channels-last
flatten), not against the code under test.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from zoo2_files import conv, input_layer, keras_weights, layer, model_config, node, write_keras_h5, write_tiny_end2end

from mammoscreen.interop.keras_h5 import KerasFileError, read_keras_h5
from mammoscreen.models.end2end.modeling import load_end2end

# ---------------------------------------------------------------------------------------------- numpy oracle


def np_conv(x, kernel, bias, stride, padding):
    """NHWC convolution with TensorFlow padding rules, by explicit accumulation over kernel offsets."""
    n, h, w, _ = x.shape
    kh, kw, _, cout = kernel.shape
    if padding == "same":
        out_h, out_w = -(-h // stride), -(-w // stride)
        pad_h = max((out_h - 1) * stride + kh - h, 0)
        pad_w = max((out_w - 1) * stride + kw - w, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        out_h, out_w = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, out_h, out_w, cout))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride, :]
            out += patch @ kernel[i, j].astype(np.float64)
    return out + (0 if bias is None else bias)


def np_bn(x, p, eps):
    return p["gamma"] * (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + eps) + p["beta"]


def np_tiny_forward(image, weights):
    """The tiny end2end graph of zoo2_files.tiny_end2end_config, in float64 NHWC."""
    x = np.repeat(image[..., None].astype(np.float64), 3, axis=-1)[None]
    x = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    p = weights["model_1/conv1"]
    x = np_conv(x, p["kernel"], p["bias"], 2, "valid")
    x = np.maximum(np_bn(x, weights["model_1/bn_conv1"], 1e-3), 0)
    h, w = (x.shape[1] - 3) // 2 + 1, (x.shape[2] - 3) // 2 + 1
    x = np.stack([np.stack([x[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(1, 2)) for j in range(w)], 1)
                  for i in range(h)], 1)
    a = np_conv(x, weights["conv2d_1"]["kernel"], weights["conv2d_1"]["bias"], 2, "same")
    a = np_bn(a, weights["batch_normalization_1"], 1e-3)
    b = np_conv(x, weights["conv2d_2"]["kernel"], weights["conv2d_2"]["bias"], 2, "valid")
    y = np.maximum(a + b, 0).mean(axis=(1, 2))
    logits = y @ weights["dense_1"]["kernel"] + weights["dense_1"]["bias"]
    e = np.exp(logits - logits.max())
    return (e / e.sum())[0]


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return write_tiny_end2end(tmp_path_factory.mktemp("e2e") / "tiny.h5")


# ---------------------------------------------------------------------------------------------- tests


def test_reader_finds_the_nested_graph_and_weights_by_layer(tiny_file):
    keras = read_keras_h5(tiny_file)
    assert keras.keras_version == "2.0.5" and keras.backend == "tensorflow"
    assert [layer.name for layer in keras.model.layers][:2] == ["input_2", "model_1"]
    assert keras.model.layers[1].model is not None
    assert set(keras.weights) == {"model_1/conv1", "model_1/bn_conv1", "conv2d_1", "batch_normalization_1",
                                  "conv2d_2", "dense_1"}
    with h5py.File(tiny_file) as f:
        stored = np.asarray(f["model_weights/model_1/bn_conv1/moving_variance:0"])
    assert np.array_equal(keras.weights["model_1/bn_conv1"]["moving_variance"], stored)


def test_network_matches_a_direct_numpy_implementation_of_the_keras_layers(tiny_file):
    model = load_end2end(tiny_file)
    assert model.input_channels == 3 and model.input_size == (64, 48)
    image = np.random.default_rng(1).normal(0, 30, (64, 48)).astype(np.float32)
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(image)[None])[0].numpy()
    expected = np_tiny_forward(image, read_keras_h5(tiny_file).weights)
    assert np.allclose(probabilities, expected, atol=1e-5)
    assert abs(probabilities.sum() - 1) < 1e-6


def test_batches_give_the_same_results_as_single_images(tiny_file):
    model = load_end2end(tiny_file)
    images = torch.from_numpy(np.random.default_rng(2).normal(0, 30, (3, 64, 48)).astype(np.float32))
    with torch.inference_mode():
        batch = model(images)
        single = torch.cat([model(images[i:i + 1]) for i in range(3)])
    assert torch.allclose(batch, single, atol=1e-6)


def _rewrite(path, out, groups_fn=None, config_fn=None):
    """Copy a Keras file, changing its weight groups or its config."""
    with h5py.File(path) as f:
        config = json.loads(f.attrs["model_config"])
        layer_names = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
        groups = {}
        for name in layer_names:
            g = f["model_weights"][name]
            groups[name] = [(w.decode(), np.asarray(g[w.decode()])) for w in g.attrs["weight_names"]]
    if groups_fn:
        groups = groups_fn(groups)
    if config_fn:
        config = config_fn(config)
    return write_keras_h5(out, config, groups, layer_names)


def test_weights_are_matched_by_name_whatever_their_stored_order(tiny_file, tmp_path):
    reference = load_end2end(tiny_file).state_dict()

    def shuffle(groups):
        groups["model_1"] = groups["model_1"][::-1]  # reversed storage order, names intact
        return groups

    shuffled = load_end2end(_rewrite(tiny_file, tmp_path / "shuffled.h5", shuffle)).state_dict()
    assert all(torch.equal(reference[k], shuffled[k]) for k in reference)


def test_tensorflow_uniquified_variable_names_are_matched(tiny_file, tmp_path):
    reference = load_end2end(tiny_file).state_dict()

    def uniquify(groups):
        groups["model_1"] = [(w.replace("conv1/", "conv1_1/").replace("bn_conv1/", "bn_conv1_3/"), a)
                             for w, a in groups["model_1"]][::-1]
        return groups

    loaded = load_end2end(_rewrite(tiny_file, tmp_path / "uniq.h5", uniquify)).state_dict()
    assert all(torch.equal(reference[k], loaded[k]) for k in reference)


def test_layers_renamed_after_training_fall_back_to_keras_storage_order(tiny_file, tmp_path):
    reference = load_end2end(tiny_file).state_dict()

    def rename(config):  # the file's layer names no longer match the variable names ('prt_' prefix)
        trunk = config["config"]["layers"][1]["config"]["layers"]
        for entry in trunk:
            if entry["name"] in ("conv1", "bn_conv1"):
                entry["name"] = entry["config"]["name"] = "prt_" + entry["name"]
        trunk[3]["inbound_nodes"] = node("prt_conv1")
        trunk[4]["inbound_nodes"] = node("prt_bn_conv1")
        return config

    loaded = load_end2end(_rewrite(tiny_file, tmp_path / "renamed.h5", config_fn=rename)).state_dict()
    renamed = {k.replace("prt_", ""): v for k, v in loaded.items()}
    assert all(torch.equal(reference[k], renamed[k]) for k in reference)


def test_stored_weights_that_fit_no_layer_are_an_error(tiny_file, tmp_path):
    def drop(groups):
        groups["model_1"] = groups["model_1"][:-1]
        return groups

    with pytest.raises(KerasFileError, match="stores 5 arrays .* need 6"):
        load_end2end(_rewrite(tiny_file, tmp_path / "short.h5", drop))


def test_misshapen_weights_are_an_error(tiny_file, tmp_path):
    def widen(groups):
        groups["conv2d_2"] = [(w, np.zeros(a.shape[:-1] + (7,), np.float32) if "kernel" in w else a)
                              for w, a in groups["conv2d_2"]]
        return groups

    with pytest.raises(KerasFileError, match="conv2d_2"):
        load_end2end(_rewrite(tiny_file, tmp_path / "wide.h5", widen))


def test_unsupported_layers_and_files_give_clear_errors(tmp_path):
    lam = model_config("m", [input_layer("in", (8, 8, 3)), layer("Lambda", "lambda_1", node("in"), function="...")],
                       ["in"], ["lambda_1"])
    with pytest.raises(KerasFileError, match="Lambda"):
        load_end2end(write_keras_h5(tmp_path / "lambda.h5", lam, {}, ["in", "lambda_1"]))

    first = model_config("m", [input_layer("in", (3, 8, 8)), conv("c", node("in"), 2, 1)], ["in"], ["c"])
    first["config"]["layers"][1]["config"]["data_format"] = "channels_first"
    groups = {"c": keras_weights(first["config"]["layers"][1], np.random.default_rng(0), 8)}
    with pytest.raises(KerasFileError, match="channels_first"):
        load_end2end(write_keras_h5(tmp_path / "cf.h5", first, groups, ["in", "c"]))

    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.attrs["layer_names"] = np.array([b"c"])
    with pytest.raises(KerasFileError, match="weights-only"):
        read_keras_h5(tmp_path / "weights_only.h5")

    (tmp_path / "page.h5").write_text("<html>Google Drive - virus scan warning</html>")
    with pytest.raises(KerasFileError, match="not an HDF5 file"):
        read_keras_h5(tmp_path / "page.h5")


def test_sequential_models_and_flatten_in_channels_last_order(tmp_path):
    rng = np.random.default_rng(3)
    c1 = conv("c1", [], 2, 3, padding="same", activation="relu")
    c1["config"]["batch_input_shape"] = [None, 5, 4, 1]
    dense = layer("Dense", "d", [], units=3, activation="linear", use_bias=True)
    config = {"class_name": "Sequential", "config": [c1, layer("Flatten", "f", [], data_format="channels_last"),
                                                     dense]}
    groups = {"c1": keras_weights(c1, rng, 1), "d": keras_weights(dense, rng, 5 * 4 * 2)}
    model = load_end2end(write_keras_h5(tmp_path / "seq.h5", config, groups, ["c1", "f", "d"]))
    assert model.input_channels == 1
    image = rng.normal(0, 1, (5, 4)).astype(np.float32)
    with torch.inference_mode():
        out = model(torch.from_numpy(image)[None])[0].numpy()
    hidden = np.maximum(np_conv(image[None, :, :, None].astype(np.float64), groups["c1"][0][1], groups["c1"][1][1], 1,
                                "same"), 0)
    expected = hidden.reshape(1, -1) @ groups["d"][0][1] + groups["d"][1][1]  # NHWC flatten
    assert np.allclose(out, expected[0], atol=1e-5)


def test_batchnorm_epsilon_comes_from_the_file(tiny_file, tmp_path):
    def epsilon(config):
        config["config"]["layers"][3]["config"]["epsilon"] = 0.5
        return config

    model = load_end2end(_rewrite(tiny_file, tmp_path / "eps.h5", config_fn=epsilon))
    assert model.network.layers["batch_normalization_1"].eps == 0.5
    assert load_end2end(tiny_file).network.layers["model_1"].layers["bn_conv1"].eps == 1e-3



def test_folding_batchnorm_into_convolutions_keeps_the_outputs(tiny_file):
    plain, folded = load_end2end(tiny_file), load_end2end(tiny_file, fold_batchnorm=True)
    assert isinstance(folded.network.layers["model_1"].layers["bn_conv1"], torch.nn.Identity)
    assert isinstance(folded.network.layers["batch_normalization_1"], torch.nn.Identity)
    images = torch.from_numpy(np.random.default_rng(5).normal(0, 30, (2, 64, 48)).astype(np.float32))
    with torch.inference_mode():
        assert torch.allclose(plain(images), folded(images), atol=1e-6)
