"""frcnn_cad: caffemodel reading, anchors, proposals, NMS, Caffe RoI pooling and the network, on generated data.

Reference values come from the published descriptions (the anchors and feature-map sizes quoted in
the reference README) and from direct loop implementations of the Caffe/py-faster-rcnn algorithms
written here, not from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from zoo2_files import caffe_layer, field_bytes, tiny_frcnn_blobs, write_caffemodel, write_tiny_frcnn

from mammoscreen.interop.caffe import CaffeModelError, read_caffemodel
from mammoscreen.models.frcnn_cad.modeling import (
    FasterRCNNVGG16,
    bbox_transform_inv,
    clip_boxes,
    generate_anchors,
    load_frcnn,
    nms,
    roi_pool,
)
from mammoscreen.models.weights import WeightsError

# ---------------------------------------------------------------------------------------------- caffemodel


def test_caffemodel_blobs_in_all_encodings(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 3, 3, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    fc = rng.normal(size=(5, 6)).astype(np.float32)
    path = write_caffemodel(tmp_path / "m.caffemodel", [
        caffe_layer("data", "Input", []),
        caffe_layer("conv", "Convolution", [w, b]),
        caffe_layer("legacy", "Convolution", [w, b], legacy_shape=True, packed=False),
        caffe_layer("fc_v1", "InnerProduct", [fc, rng.normal(size=5)], v1=True, legacy_shape=True),
    ], name="net")
    name, layers = read_caffemodel(path)
    assert name == "net" and list(layers) == ["conv", "legacy", "fc_v1"]  # layers without blobs are skipped
    assert layers["conv"].type == "Convolution" and np.array_equal(layers["conv"].blobs[0], w)
    assert np.array_equal(layers["legacy"].blobs[0], w) and np.array_equal(layers["legacy"].blobs[1].ravel(), b)
    assert layers["fc_v1"].type == "InnerProduct" and np.array_equal(layers["fc_v1"].blobs[0].reshape(5, 6), fc)


def test_not_a_caffemodel_gives_a_clear_error(tmp_path):
    (tmp_path / "page.caffemodel").write_text("<!DOCTYPE html><html>Not found</html>")
    with pytest.raises(CaffeModelError, match="page.caffemodel"):
        read_caffemodel(tmp_path / "page.caffemodel")
    full = write_tiny_frcnn(tmp_path / "full.caffemodel").read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(full[: len(full) // 2])
    with pytest.raises(CaffeModelError, match="truncated|not a readable"):
        read_caffemodel(tmp_path / "cut.caffemodel")
    write_caffemodel(tmp_path / "other.caffemodel", [caffe_layer("conv", "Convolution", [np.zeros((2, 3, 3, 3))])])
    with pytest.raises(WeightsError, match="missing"):
        load_frcnn(tmp_path / "other.caffemodel")
    (tmp_path / "empty.caffemodel").write_bytes(field_bytes(1, b"net"))
    with pytest.raises(CaffeModelError, match="no layers with weights"):
        read_caffemodel(tmp_path / "empty.caffemodel")


# ---------------------------------------------------------------------------------------------- boxes


def test_anchors_are_py_faster_rcnns():
    # The nine anchors listed in the reference README (ratios 0.5, 1, 2 outer; scales 8, 16, 32 inner).
    expected = [[-84, -40, 99, 55], [-176, -88, 191, 103], [-360, -184, 375, 199], [-56, -56, 71, 71],
                [-120, -120, 135, 135], [-248, -248, 263, 263], [-36, -80, 51, 95], [-80, -168, 95, 183],
                [-168, -344, 183, 359]]
    assert np.array_equal(generate_anchors(), np.array(expected, dtype=np.float64))


def test_box_decoding_uses_plus_one_widths():
    boxes = torch.tensor([[10.0, 20.0, 29.0, 59.0]])  # w = 20, h = 40, centre (20, 40)
    deltas = torch.tensor([[0.1, -0.25, math.log(2.0), 0.0]])
    out = bbox_transform_inv(boxes, deltas)[0].tolist()
    # centre (22, 30), size (40, 40): x1 = 22 - 20, x2 = 22 + 20 (no -1 on the far edge)
    assert out == pytest.approx([2.0, 10.0, 42.0, 50.0], abs=1e-5)
    assert clip_boxes(torch.tensor([[-5.0, 3.0, 50.0, 99.0]]), 60, 40)[0].tolist() == [0.0, 3.0, 39.0, 59.0]


def _loop_nms(boxes, scores, threshold):
    """py_cpu_nms as described: visit by score, drop later boxes with IoU (+1 areas) above threshold."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep, dropped = [], set()
    for a, i in enumerate(order):
        if i in dropped:
            continue
        keep.append(i)
        for j in order[a + 1:]:
            w = min(boxes[i][2], boxes[j][2]) - max(boxes[i][0], boxes[j][0]) + 1
            h = min(boxes[i][3], boxes[j][3]) - max(boxes[i][1], boxes[j][1]) + 1
            inter = max(w, 0) * max(h, 0)
            area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)  # noqa: E731
            if inter / (area(boxes[i]) + area(boxes[j]) - inter) > threshold:
                dropped.add(j)
    return keep


@pytest.mark.parametrize("threshold", [0.1, 0.7])
def test_nms_matches_the_greedy_definition(threshold):
    rng = np.random.default_rng(4)
    xy = rng.uniform(0, 200, (300, 2))
    wh = rng.uniform(5, 80, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = rng.permutation(300).astype(np.float32)  # distinct scores
    kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).tolist()
    assert kept == _loop_nms(boxes.tolist(), scores.tolist(), threshold)
    assert nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold, max_keep=5).tolist() == kept[:5]


def _loop_roi_pool(features, roi, pooled=7, scale=1 / 16):
    """Caffe ROIPoolingLayer::Forward_cpu for one RoI, written out with loops."""
    c, height, width = features.shape
    rnd = lambda v: math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)  # noqa: E731  (C round)
    x1, y1, x2, y2 = (rnd(float(np.float32(v) * np.float32(scale))) for v in roi)
    roi_h, roi_w = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
    bin_h, bin_w = np.float32(roi_h) / np.float32(pooled), np.float32(roi_w) / np.float32(pooled)
    out = np.zeros((c, pooled, pooled), np.float32)
    for ph in range(pooled):
        for pw in range(pooled):
            hs = min(max(int(math.floor(np.float32(ph) * bin_h)) + y1, 0), height)
            he = min(max(int(math.ceil(np.float32(ph + 1) * bin_h)) + y1, 0), height)
            ws = min(max(int(math.floor(np.float32(pw) * bin_w)) + x1, 0), width)
            we = min(max(int(math.ceil(np.float32(pw + 1) * bin_w)) + x1, 0), width)
            if he > hs and we > ws:
                out[:, ph, pw] = features[:, hs:he, ws:we].max(axis=(1, 2))
    return out


def test_roi_pooling_is_caffes():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(6, 20, 15)).astype(np.float32)
    rois = [[0, 0, 239, 319],  # the whole map
            [8, 8, 8, 8],  # one pixel: half-way rounding (8/16 = 0.5 -> 1)
            [100, 40, 180, 120], [-50, -30, 60, 20],  # partly outside
            [230, 300, 400, 500],  # mostly outside: empty bins
            [24.0, 40.0, 135.9, 71.99], [33, 17, 34, 300]]
    out = roi_pool(torch.from_numpy(features), torch.tensor(rois, dtype=torch.float32)).numpy()
    for i, roi in enumerate(rois):
        assert np.array_equal(out[i], _loop_roi_pool(features, roi)), roi


# ---------------------------------------------------------------------------------------------- network


def test_caffe_ceil_pooling_sizes():
    model = FasterRCNNVGG16(channels=[2] * 13, rpn_channels=2, fc_channels=4).eval()
    with torch.inference_mode():
        assert tuple(model.trunk(torch.zeros(1, 3, 53, 37)).shape[2:]) == (4, 3)  # README: 53x37 -> 4x3
        assert tuple(model.trunk(torch.zeros(1, 3, 2100, 1615)).shape[2:]) == (132, 101)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return load_frcnn(write_tiny_frcnn(tmp_path_factory.mktemp("frcnn") / "tiny.caffemodel"))


def test_tiny_network_loads_caffe_weights_by_layer_name(tiny_model):
    blobs = tiny_frcnn_blobs()
    assert torch.equal(tiny_model.rpn_conv.weight, torch.from_numpy(blobs["rpn_conv/3x3"][0]))
    assert torch.equal(tiny_model.fc6.weight, torch.from_numpy(blobs["fc6"][0]))
    assert tiny_model.conv5_3.weight.shape == (4, 4, 3, 3) and tiny_model.cls_score.out_features == 3


def test_legacy_blob_shapes_load_the_same_network(tiny_model, tmp_path):
    legacy = load_frcnn(write_tiny_frcnn(tmp_path / "legacy.caffemodel", legacy_shape=True, packed=False))
    reference = tiny_model.state_dict()
    assert all(torch.equal(reference[k], v) for k, v in legacy.state_dict().items())


def _manual_rpn_foreground(model, features):
    """Caffe: reshape (1, 18, H, W) -> (1, 2, 9H, W), softmax over the 2, reshape back, take channels 9..17."""
    h = torch.relu(model.rpn_conv(features))
    s = model.rpn_cls_score(h)
    _, _, height, width = s.shape
    reshaped = torch.softmax(s.reshape(1, 2, 9 * height, width), dim=1)
    return reshaped.reshape(1, 18, height, width)[:, 9:]


def test_rpn_foreground_follows_caffes_reshape_softmax(tiny_model):
    features = torch.relu(torch.randn(1, 4, 6, 5, generator=torch.Generator().manual_seed(0)))
    with torch.inference_mode():
        fg, _ = tiny_model.rpn(features)
        assert torch.allclose(fg, _manual_rpn_foreground(tiny_model, features), atol=1e-6)


def test_tiny_network_end_to_end(tiny_model):
    rng = np.random.default_rng(6)
    image = torch.from_numpy(rng.normal(0, 50, (1, 3, 160, 120)).astype(np.float32))
    with torch.inference_mode():
        out = tiny_model(image, 1.0)
    n = out.rois.shape[0]
    assert 0 < n <= 300 and out.cls_prob.shape == (n, 3) and out.bbox_pred.shape == (n, 12)
    assert torch.allclose(out.cls_prob.sum(1), torch.ones(n), atol=1e-5)
    assert (out.rois[:, 0] >= 0).all() and (out.rois[:, 2] <= 119).all() and (out.rois[:, 3] <= 159).all()
    assert (out.rpn_scores[:-1] >= out.rpn_scores[1:]).all()  # proposals come strongest first
    widths = out.rois[:, 2] - out.rois[:, 0] + 1
    assert (widths >= 16).all()  # min_size at scale 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (marked cuda; docs/testing.md)")
def test_gpu_matches_cpu(tiny_model):
    image = torch.randn(1, 3, 160, 120, generator=torch.Generator().manual_seed(1)) * 50
    with torch.inference_mode():
        cpu = tiny_model(image, 1.0)
        gpu = tiny_model.cuda()(image.cuda(), 1.0)
    tiny_model.cpu()
    assert torch.allclose(cpu.cls_prob, gpu.cls_prob.cpu(), atol=1e-4)
