"""end2end parity with the official meta-repository code (Keras + ImageMagick) on the reference data.

Tolerances from ../shared/reference/end2end/README.md: the ImageMagick preprocessing exact (or +-1 LSB),
softmax within 1e-4 when the network sees the same preprocessed images (ours are bit-identical, checked
first), intermediates rtol 1e-3 with atol 1e-3 * max|ref|.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from zoo2_reference import END2END_FILE, IMAGES, end2end_weights, model_reference_dir

from mammoscreen.data.images import read_png
from mammoscreen.engine import PredictOptions
from mammoscreen.models.end2end.modeling import load_end2end
from mammoscreen.models.end2end.predictor import preprocess_end2end
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline
from mammoscreen.preprocess.magick import auto_level, magick_resize

pytestmark = [pytest.mark.reference, pytest.mark.slow]


@pytest.fixture(scope="module")
def ref(reference_dir):
    return model_reference_dir(reference_dir, "end2end")


@pytest.fixture(scope="module")
def weights_dir(reference_dir, ref, tmp_path_factory):
    return end2end_weights(reference_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def pipeline_run(reference_dir, weights_dir, tmp_path_factory):
    """The whole pipeline on the reference images: our ImageMagick preprocessing, the network, the CSV."""
    out = tmp_path_factory.mktemp("end2end_run")
    run_pipeline(reference_dir / "images", reference_dir / "exam_list_before_cropping.pkl", out,
                 [PredictorRequest("end2end", weights_dir)],
                 options=PredictOptions(device="cpu", save_maps=True, progress=False), log=lambda m: None)
    return out / "end2end"


@pytest.mark.parametrize("name", IMAGES)
def test_preprocessing_is_imagemagicks_bit_for_bit(reference_dir, ref, name):
    ours = magick_resize(auto_level(read_png(reference_dir / "images" / f"{name}.png")), (1152, 896))
    official = read_png(ref / "preprocessed_u16" / f"{name}.png")
    assert ours.dtype == official.dtype and np.array_equal(ours, official)


def test_network_input_is_the_official_one(reference_dir, ref):
    x, _ = preprocess_end2end(read_png(reference_dir / "images" / "0_L-CC.png"))
    assert x.dtype == np.float32 and np.array_equal(x, np.load(ref / "input_0_L-CC.npz")["x"])


def test_predictions_csv_matches_the_official_one(ref, pipeline_run):
    with open(pipeline_run / "predictions.csv", newline="") as f:
        ours = list(csv.DictReader(f))
    with open(ref / "predictions_visible.csv", newline="") as f:
        official = list(csv.DictReader(f))
    assert [r["image_index"] for r in ours] == [r["image_index"] for r in official] == list(IMAGES)
    assert [r["malignant_label"] for r in ours] == [r["malignant_label"] for r in official]
    summary = {row[0]: row for row in json.loads((ref / "summary.json").read_text())["rows"]}
    for row in ours:
        name = row["image_index"]
        softmax = np.load(pipeline_run / "maps" / f"{name}.npz")["probabilities"]
        assert np.abs(softmax - np.load(ref / f"{name}.npz")["softmax"]).max() <= 1e-4, name
        assert abs(float(row["malignant_pred"]) - summary[name][2]) <= 1e-4, name


def _stage_outputs(network):
    """Keras layer paths of the reference's intermediate outputs, found from the graph structure."""
    trunk_name = next(layer.name for layer in network.spec.layers if layer.model is not None)
    trunk = network.layers[trunk_name].spec

    def activation_after_add_of(spec, bn_name):
        add = next(layer for layer in spec.layers if layer.class_name == "Add"
                   and any(r.layer == bn_name for r in layer.inbound_nodes[0]))
        return next(layer.name for layer in spec.layers if layer.class_name == "Activation"
                    and layer.inbound_nodes[0][0].layer == add.name)

    stages = {"pool1": next(layer.name for layer in trunk.layers if layer.class_name == "MaxPooling2D")}
    for stage, block in (("res2c", "2c"), ("res3d", "3d"), ("res4f", "4f"), ("res5c", "5c")):
        stages[stage] = activation_after_add_of(trunk, f"bn{block}_branch2c")
    stages = {k: f"{trunk_name}/{v}" for k, v in stages.items()}
    top_adds = [layer for layer in network.spec.layers if layer.class_name == "Add"]
    for stage, add in (("top_stage1", top_adds[1]), ("top_stage2", top_adds[3])):
        stages[stage] = next(layer.name for layer in network.spec.layers if layer.class_name == "Activation"
                             and layer.inbound_nodes[0][0].layer == add.name)
    return stages


@pytest.fixture(scope="module")
def network(weights_dir):
    model = load_end2end(weights_dir / END2END_FILE)
    return model, _stage_outputs(model.network)


def test_network_has_the_official_size(network):
    model, _ = network
    assert sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers()) == 40_942_466


@pytest.mark.parametrize("name", IMAGES)
def test_intermediate_activations_match(reference_dir, ref, network, name):
    """Every image's trunk and top-stage activations, from the network input our preprocessing makes
    (bit-identical to the official one: test_preprocessing_is_imagemagicks_bit_for_bit and
    test_network_input_is_the_official_one)."""
    model, stages = network
    x, _ = preprocess_end2end(read_png(reference_dir / "images" / f"{name}.png"))
    if name == "0_L-CC":
        assert np.array_equal(x, np.load(ref / "input_0_L-CC.npz")["x"])
    reference = np.load(ref / f"{name}.npz")
    assert (1, *x.shape, 3) == tuple(reference["input_shape"])
    x64 = x.astype(np.float64)
    for stat in ("mean", "std", "min", "max"):
        expected = float(reference[f"input_{stat}"])
        assert float(getattr(np, stat)(x64)) == pytest.approx(expected, rel=1e-6, abs=1e-6), stat
    captured: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(x)[None], capture=set(stages.values()), captured=captured)
    assert np.abs(probabilities[0].numpy() - reference["softmax"]).max() <= 1e-4

    def close(ours, official, what):
        official = np.asarray(official, dtype=np.float64)
        atol = 1e-3 * np.abs(official).max()
        assert np.allclose(ours, official, rtol=1e-3, atol=atol), what

    for stage, path in stages.items():
        act = captured[path][0].numpy()  # (C, H, W)
        assert (1, *act.shape[1:], act.shape[0]) == tuple(reference[f"{stage}_shape"]), stage
        close(act[:16].mean(axis=(1, 2)), reference[f"{stage}_chanmean16"], f"{stage} channel means")
        close(act[:4, 0:2, 0:2].transpose(1, 2, 0), reference[f"{stage}_corner"], f"{stage} corner")
    close(captured[stages["res5c"]][0].mean(dim=(1, 2)).numpy(), reference["trunk_gap"], "trunk GAP")
    close(captured[stages["top_stage2"]][0].mean(dim=(1, 2)).numpy(), reference["top_gap"], "top GAP")
