"""frcnn_cad parity with the official pipeline (py-faster-rcnn + meta-repository driver) on the reference data.

Tolerances from ../shared/reference/frcnn_cad/README.md: input blob bitwise; image score atol 1e-4;
300 proposals; proposals as a set (>= 80 % within 0.05 px - RPN scores tie in the flat background and
the official unstable sort decides among them); top-10 malignant RoIs: probabilities atol 1e-4, boxes
0.05 px; the classification head on the official RoIs atol 1e-4 for all 300; debug crops rtol 1e-3 /
atol 1e-2. Where RPN scores tie, see test_proposals_match_as_a_set.
"""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import torch
from zoo2_reference import FRCNN_FILE, IMAGES, frcnn_weights, model_reference_dir

from mammoscreen.data.images import read_png
from mammoscreen.engine import PredictOptions
from mammoscreen.models.frcnn_cad.modeling import FasterRCNNVGG16, load_frcnn
from mammoscreen.models.frcnn_cad.predictor import image_scale, network_input, to_8bit_bgr
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline

pytestmark = [pytest.mark.reference, pytest.mark.slow]

RPN_TOL = 5e-5  # measured: <= 7.2e-6 (probabilities) and 3.1e-6 (deltas) on 0_L-CC


@pytest.fixture(scope="module")
def ref(reference_dir):
    return model_reference_dir(reference_dir, "frcnn_cad")


@pytest.fixture(scope="module")
def weights_dir(reference_dir, ref, tmp_path_factory):
    return frcnn_weights(reference_dir, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def pipeline_run(reference_dir, weights_dir, tmp_path_factory):
    """The whole pipeline on the reference images; the trunk and RPN outputs it computes for each image are
    kept (keyed by the sha256 of the input blob) for the head and debug-crop tests, so that the six
    full-size VGG16 trunks run once."""
    out = tmp_path_factory.mktemp("frcnn_run")
    captured = {}
    trunk, rpn = FasterRCNNVGG16.trunk, FasterRCNNVGG16.rpn

    def capturing_trunk(self, x):
        features = trunk(self, x)
        captured[hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()] = {
            "features": features.detach().clone()}
        self._captured_key = next(reversed(captured))
        return features

    def capturing_rpn(self, features):
        fg, deltas = rpn(self, features)
        captured[self._captured_key].update(fg=fg.detach().clone(), deltas=deltas.detach().clone())
        return fg, deltas

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FasterRCNNVGG16, "trunk", capturing_trunk)
        patch.setattr(FasterRCNNVGG16, "rpn", capturing_rpn)
        run_pipeline(reference_dir / "images", reference_dir / "exam_list_before_cropping.pkl", out,
                     [PredictorRequest("frcnn_cad", weights_dir)],
                     options=PredictOptions(device="cpu", save_maps=True, progress=False), log=lambda m: None)
    assert len(captured) == len(IMAGES)
    return out / "frcnn_cad", captured


def test_network_input_is_the_official_blob(reference_dir, ref):
    image = read_png(reference_dir / "images" / "0_L-CC.png")
    official = np.load(ref / "input_0_L-CC.npz")
    bgr = to_8bit_bgr(image)
    assert np.array_equal(bgr[:, :, 0], official["preprocessed_uint8"]) and (bgr == bgr[:, :, :1]).all()
    scale = image_scale(image.shape)
    assert np.float32(scale) == official["im_info"][0, 2]
    blob = network_input(bgr, scale)
    assert blob.dtype == np.float32 and np.array_equal(blob, official["data"][0])


def test_scores_and_csv_match_the_official_ones(ref, pipeline_run):
    pipeline_run = pipeline_run[0]
    with open(pipeline_run / "predictions.csv", newline="") as f:
        ours = list(csv.DictReader(f))
    with open(ref / "predictions.csv", newline="") as f:
        official = list(csv.DictReader(f))
    assert [r["image_index"] for r in ours] == [r["image_index"] for r in official] == list(IMAGES)
    assert [r["malignant_label"] for r in ours] == [r["malignant_label"] for r in official]
    for row, expected in zip(ours, official):
        reference = np.load(ref / f"{row['image_index']}.npz")
        assert abs(float(row["malignant_pred"]) - float(reference["score"])) <= 1e-4, row["image_index"]
        assert abs(float(row["malignant_pred"]) - float(expected["malignant_pred"])) <= 1e-4


def _input_pixels(maps) -> np.ndarray:
    return maps["proposals"] * np.float32(maps["image_scale"])


@pytest.mark.parametrize("name", IMAGES)
def test_proposals_and_top_detections_match(ref, pipeline_run, name):
    maps = np.load(pipeline_run[0] / "maps" / f"{name}.npz")
    reference = np.load(ref / f"{name}.npz")
    assert float(maps["image_scale"]) == pytest.approx(float(reference["im_scale"]), rel=1e-12)
    proposals, scores = _input_pixels(maps), maps["rpn_scores"]
    assert len(proposals) == int(reference["n_proposals"]) == 300
    # Up to the first near-tie of RPN scores (|difference| < 5e-6, a few float32 steps) the proposal order
    # is decided by the scores alone: there every proposal must be the official one, at the same rank.
    near_tie = np.abs(np.diff(scores)) < 5e-6
    prefix = int(np.argmax(near_tie)) if near_tie.any() else len(scores)
    assert prefix >= 30
    assert np.abs(proposals[:prefix] - reference["rois"][:prefix, 1:]).max() < 0.05
    assert np.abs(scores[:prefix] - reference["rpn_scores"][:prefix]).max() < 1e-5
    # the ten RoIs with the highest malignant probability
    probabilities = maps["class_probabilities"]
    top = np.argsort(-probabilities[:, 2], kind="stable")[:10]
    assert np.abs(probabilities[top] - reference["top10_cls_prob"]).max() <= 1e-4
    assert np.abs(maps["proposals"][top] - reference["top10_boxes_orig"]).max() <= 0.05
    # the malignant detections (after the score's NMS at 0.1) that come from those ten RoIs; weaker ones
    # may come from background RoIs that differ with the tie order
    ours, official = maps["malignant_detections"], reference["dets_after_nms01"]
    k = int((official[:, 4] >= reference["top10_cls_prob"][-1, 2] - 1e-6).sum())
    assert k >= 1 and len(ours) >= k
    assert np.abs(ours[:k, 4] - official[:k, 4]).max() <= 1e-4
    assert np.abs(ours[:k, :4] - official[:k, :4]).max() <= 0.05


def test_proposals_match_as_a_set(ref, pipeline_run):
    """README: >= 80 % of the 300 RoIs within 0.05 px, as a set.

    Beyond the first near-tie, which background boxes survive depends on how ties are ordered; the
    official code leaves that to numpy's unstable sort. Over random tie orders the overlap with the
    reference varies between 71 % (1_R_CC) and 96 % (0_L-MLO), so 80 % is required of the six images
    together and 75 % of each.
    """
    matched = {}
    for name in IMAGES:
        maps = np.load(pipeline_run[0] / "maps" / f"{name}.npz")
        official = np.load(ref / f"{name}.npz")["rois"][:, 1:]
        distance = np.abs(_input_pixels(maps)[:, None, :] - official[None]).max(-1).min(1)
        matched[name] = float((distance < 0.05).mean())
    assert min(matched.values()) >= 0.75, matched
    assert np.mean(list(matched.values())) >= 0.8, matched


@pytest.mark.parametrize("name", IMAGES)
def test_head_on_the_official_rois_and_debug_crops(reference_dir, ref, weights_dir, pipeline_run, name):
    """The run's own conv5_3 features and RPN outputs for the image, and the classification head on the
    official RoIs (the README's exact RoI comparison: all 300 rows)."""
    reference = np.load(ref / f"{name}.npz")
    image = read_png(reference_dir / "images" / f"{name}.png")
    blob = network_input(to_8bit_bgr(image), image_scale(image.shape))
    if name == "0_L-CC":
        assert np.array_equal(blob, np.load(ref / "input_0_L-CC.npz")["data"][0])
    assert tuple(blob.shape[1:]) == tuple(reference["input_hw"])
    run = pipeline_run[1][hashlib.sha256(np.ascontiguousarray(blob[None]).tobytes()).hexdigest()]
    features, fg, deltas = run["features"], run["fg"], run["deltas"]
    assert tuple(features.shape[2:]) == tuple(reference["conv5_hw"])
    y, x = reference["conv5_3_crop_origin_yx"]
    crop = features[0, :, y:y + 8, x:x + 8].numpy()
    assert np.allclose(crop, reference["conv5_3_crop"], rtol=1e-3, atol=1e-2)
    assert np.allclose(features[0].mean(dim=(1, 2)).numpy(), reference["conv5_3_channel_mean"], rtol=1e-3, atol=1e-2)
    y, x = reference["rpn_crop_origin_yx"]
    h, w = reference["rpn_bbox_pred_crop"].shape[1:]
    # The README's debug-crop tolerance (rtol 1e-3 / atol 1e-2) is set for conv5 activations of O(50).
    # RPN probabilities lie in [0, 1] and the deltas are O(0.1): measured |differences| are <= RPN_TOL.
    assert np.abs(fg[0, :, y:y + h, x:x + w].numpy() - reference["rpn_cls_prob_reshape_crop"][9:]).max() <= RPN_TOL
    assert np.abs(deltas[0, :, y:y + h, x:x + w].numpy() - reference["rpn_bbox_pred_crop"]).max() <= RPN_TOL
    model = load_frcnn(weights_dir / FRCNN_FILE)
    with torch.inference_mode():
        cls_prob, bbox_pred = model.head(features, torch.from_numpy(reference["rois"][:, 1:]))
    assert np.abs(cls_prob.numpy() - reference["cls_prob"]).max() <= 1e-4
    assert np.abs(bbox_pred.numpy() - reference["bbox_pred"]).max() <= 1e-4
