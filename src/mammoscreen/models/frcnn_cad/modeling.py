"""frcnn_cad (Ribli et al., Scientific Reports 2018): the VGG16 Faster R-CNN of py-faster-rcnn, in PyTorch.

The test network of ``vgg16_frcnn_cad_test.prototxt``, step by step as Caffe and py-faster-rcnn run it:

1. VGG16 trunk ``conv1_1`` ... ``conv5_3`` (3x3, padding 1, ReLU) with 2x2/2 max-pooling after
   ``conv1_2``, ``conv2_2``, ``conv3_3``, ``conv4_3`` - Caffe pools round the output size **up**
   (``ceil_mode``); no ``pool5``; feature stride 16.
2. RPN: ``rpn_conv/3x3`` + ReLU, ``rpn_cls_score`` (2 x 9 anchors) and ``rpn_bbox_pred`` (4 x 9).
   The foreground probability of anchor ``a`` is the softmax of channels ``(a, 9 + a)``.
3. Proposals (py-faster-rcnn ``ProposalLayer``, TEST settings): 9 anchors (base 16, ratios 0.5/1/2,
   scales 8/16/32) on every feature-map cell, deltas decoded in float32, boxes clipped to the input,
   boxes smaller than 16 px (times the image scale) dropped, the 6000 best by foreground probability,
   NMS at IoU 0.7, the first 300 kept.
4. RoI max pooling to 7x7 at scale 1/16 exactly as Caffe's ``ROIPooling``: corners rounded half away
   from zero, bins of ``size / 7`` with floor/ceil edges, empty bins 0.
5. ``fc6``, ``fc7`` (4096, ReLU; dropout is off at test time), ``cls_score`` -> softmax over
   [background, benign, malignant] and ``bbox_pred`` (4 deltas per class).

Channel widths are read from the weights, so smaller networks of the same topology load too. Ties in
the RPN scores (common in the flat background) are broken deterministically: the official
``argsort()[::-1]`` expressions are evaluated with a stable sort, where numpy's default sort leaves
their order to chance (and float noise of ~1e-7 reorders near-ties between any two implementations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

VGG16_CONVS: tuple[tuple[str, ...], ...] = (
    ("conv1_1", "conv1_2"),
    ("conv2_1", "conv2_2"),
    ("conv3_1", "conv3_2", "conv3_3"),
    ("conv4_1", "conv4_2", "conv4_3"),
    ("conv5_1", "conv5_2", "conv5_3"),
)
"""Convolutions of each VGG16 stage; stages 1-4 end with a 2x2 max-pool."""

INNER_PRODUCTS = ("fc6", "fc7", "cls_score", "bbox_pred")

CAFFE_NAMES = {"rpn_conv": "rpn_conv/3x3"}
"""Module names that differ from the Caffe layer names ('/' cannot appear in a module name)."""


@dataclass(frozen=True)
class ProposalConfig:
    """py-faster-rcnn's TEST-time proposal settings (``cfg.TEST``), as the official model runs."""

    feat_stride: int = 16
    anchor_base_size: int = 16
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    anchor_scales: tuple[float, ...] = (8.0, 16.0, 32.0)
    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_threshold: float = 0.7
    min_size: int = 16
    pooled_size: tuple[int, int] = (7, 7)
    spatial_scale: float = 1.0 / 16.0


def generate_anchors(base_size: int = 16, ratios: Sequence[float] = (0.5, 1.0, 2.0),
                     scales: Sequence[float] = (8.0, 16.0, 32.0)) -> np.ndarray:
    """The reference anchors (x1, y1, x2, y2), ratio-major, as py-faster-rcnn enumerates them.

    Each ratio keeps the base area with rounded (half-to-even) width and height; each scale then
    multiplies them, all centred on the base box's centre.
    """
    def centred(widths, heights, cx, cy):
        return np.stack([cx - 0.5 * (widths - 1), cy - 0.5 * (heights - 1),
                         cx + 0.5 * (widths - 1), cy + 0.5 * (heights - 1)], axis=1)

    w = h = float(base_size)
    cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
    ratios = np.asarray(ratios, dtype=np.float64)
    ws = np.round(np.sqrt(w * h / ratios))
    hs = np.round(ws * ratios)
    out = []
    for rw, rh in zip(ws, hs):
        scales_arr = np.asarray(scales, dtype=np.float64)
        out.append(centred(rw * scales_arr, rh * scales_arr, cx, cy))
    return np.concatenate(out, axis=0)


def bbox_transform_inv(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Apply (dx, dy, dw, dh) deltas to boxes, py-faster-rcnn style (widths with +1, no -1 on x2).

    ``deltas`` is (N, 4K) for K classes; returns (N, 4K) boxes. Computed in the deltas' dtype.
    """
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0] + 1.0
    heights = boxes[:, 3] - boxes[:, 1] + 1.0
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    dx, dy, dw, dh = deltas[:, 0::4], deltas[:, 1::4], deltas[:, 2::4], deltas[:, 3::4]
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    out = torch.empty_like(deltas)
    out[:, 0::4] = pred_ctr_x - 0.5 * pred_w
    out[:, 1::4] = pred_ctr_y - 0.5 * pred_h
    out[:, 2::4] = pred_ctr_x + 0.5 * pred_w
    out[:, 3::4] = pred_ctr_y + 0.5 * pred_h
    return out


def clip_boxes(boxes: torch.Tensor, height: float, width: float) -> torch.Tensor:
    """Clip (N, 4K) boxes to [0, width - 1] x [0, height - 1]."""
    out = boxes.clone()
    out[:, 0::4] = boxes[:, 0::4].clamp(0, width - 1)
    out[:, 1::4] = boxes[:, 1::4].clamp(0, height - 1)
    out[:, 2::4] = boxes[:, 2::4].clamp(0, width - 1)
    out[:, 3::4] = boxes[:, 3::4].clamp(0, height - 1)
    return out


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression as py-faster-rcnn: areas with +1, suppress IoU > ``threshold``.

    Boxes are visited in the order of the official ``scores.argsort()[::-1]`` with a stable sort
    (descending score, ties from the last to the first); returns the kept indices in that order, at
    most ``max_keep``. Runs on the CPU in float32 (a few thousand boxes; the sequential
    greedy loop is faster there than as many small device operations), on any device's tensors.
    """
    device = boxes.device
    scores_np = scores.detach().float().cpu().numpy()
    order = np.argsort(scores_np, kind="stable")[::-1]  # the official argsort()[::-1], made deterministic
    b = boxes.detach().float().cpu().numpy()[order]
    x1, y1, x2, y2 = (np.ascontiguousarray(b[:, k]) for k in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    n = len(order)
    suppressed = np.zeros(n, dtype=bool)
    keep: list[int] = []
    i = 0
    while i < n:
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = slice(i + 1, n)
        w = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1, 0)
        h = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1, 0)
        inter = w * h
        suppressed[rest] |= inter / (areas[i] + areas[rest] - inter) > threshold
        following = np.flatnonzero(~suppressed[rest])
        if following.size == 0:
            break
        i = i + 1 + int(following[0])
    return torch.from_numpy(order[np.array(keep, dtype=np.int64)]).to(device)


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    # C's round(): halves go away from zero (torch.round rounds them to even).
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def roi_pool(features: torch.Tensor, rois: torch.Tensor, pooled_size: tuple[int, int] = (7, 7),
             spatial_scale: float = 1.0 / 16.0) -> torch.Tensor:
    """Caffe's ROIPooling (max) of one image's (C, H, W) features over (R, 4) boxes -> (R, C, ph, pw)."""
    channels, height, width = features.shape
    ph, pw = pooled_size
    rois = rois.float()
    scale = torch.tensor(spatial_scale, dtype=torch.float32, device=rois.device)
    start_w = _round_half_away(rois[:, 0] * scale).long()
    start_h = _round_half_away(rois[:, 1] * scale).long()
    end_w = _round_half_away(rois[:, 2] * scale).long()
    end_h = _round_half_away(rois[:, 3] * scale).long()
    roi_h = torch.clamp(end_h - start_h + 1, min=1).float()
    roi_w = torch.clamp(end_w - start_w + 1, min=1).float()
    bin_h = roi_h / ph  # float32, as Caffe
    bin_w = roi_w / pw
    steps_h = torch.arange(ph, dtype=torch.float32, device=rois.device)
    steps_w = torch.arange(pw, dtype=torch.float32, device=rois.device)
    h0 = (torch.floor(steps_h[None] * bin_h[:, None]).long() + start_h[:, None]).clamp(0, height)
    h1 = (torch.ceil((steps_h[None] + 1) * bin_h[:, None]).long() + start_h[:, None]).clamp(0, height)
    w0 = (torch.floor(steps_w[None] * bin_w[:, None]).long() + start_w[:, None]).clamp(0, width)
    w1 = (torch.ceil((steps_w[None] + 1) * bin_w[:, None]).long() + start_w[:, None]).clamp(0, width)
    out = features.new_zeros((rois.shape[0], channels, ph, pw))
    rows_all = torch.stack([h0, h1], -1).cpu().tolist()
    cols_all = torch.stack([w0, w1], -1).cpu().tolist()
    for r, (rows, cols) in enumerate(zip(rows_all, cols_all)):
        top, bottom = rows[0][0], max(b for _, b in rows)
        left, right = cols[0][0], max(b for _, b in cols)
        if bottom <= top or right <= left:
            continue  # the whole RoI lies outside the feature map: all bins empty
        region = features[:, top:bottom, left:right]
        empty = torch.full((channels, bottom - top), float("-inf"), dtype=features.dtype, device=features.device)
        # Separable max: over each column bin, then over each row bin; empty bins become 0 below.
        column_max = torch.stack([region[:, :, a - left:b - left].amax(dim=2) if b > a else empty
                                  for a, b in cols], dim=2)  # (C, rows, pw)
        empty_rows = torch.full((channels, pw), float("-inf"), dtype=features.dtype, device=features.device)
        out[r] = torch.stack([column_max[:, c - top:d - top].amax(dim=1) if d > c else empty_rows
                              for c, d in rows], dim=1)  # (C, ph, pw)
    empty_bins = (h1 <= h0)[:, None, :, None] | (w1 <= w0)[:, None, None, :]
    return out.masked_fill_(empty_bins, 0.0)


class FRCNNOutput(NamedTuple):
    """Outputs for one image; boxes in network-input pixels (x1, y1, x2, y2)."""

    rois: torch.Tensor  # (R, 4) proposals, in proposal order
    rpn_scores: torch.Tensor  # (R,) foreground probability of each proposal
    cls_prob: torch.Tensor  # (R, 3) [background, benign, malignant]
    bbox_pred: torch.Tensor  # (R, 12) per-class box deltas


class FasterRCNNVGG16(nn.Module):
    """The frcnn_cad test network. ``forward(image (1, 3, H, W), im_scale)`` -> :class:`FRCNNOutput`.

    ``channels`` are the output widths of the 13 trunk convolutions (VGG16: 64, 64, 128, 128, 256 x3,
    512 x6), ``rpn_channels`` of ``rpn_conv/3x3``, ``fc_channels`` of fc6/fc7, ``num_classes``
    including background.
    """

    def __init__(self, channels: Sequence[int] = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512),
                 rpn_channels: int = 512, fc_channels: int = 4096, num_classes: int = 3,
                 config: ProposalConfig = ProposalConfig()):
        super().__init__()
        names = [n for stage in VGG16_CONVS for n in stage]
        if len(channels) != len(names):
            raise ValueError(f"expected {len(names)} trunk widths, got {len(channels)}")
        self.config = config
        in_ch = 3
        for name, ch in zip(names, channels):
            setattr(self, name, nn.Conv2d(in_ch, ch, kernel_size=3, padding=1))
            in_ch = ch
        self.num_anchors = len(config.anchor_ratios) * len(config.anchor_scales)
        self.rpn_conv = nn.Conv2d(in_ch, rpn_channels, kernel_size=3, padding=1)
        self.rpn_cls_score = nn.Conv2d(rpn_channels, 2 * self.num_anchors, kernel_size=1)
        self.rpn_bbox_pred = nn.Conv2d(rpn_channels, 4 * self.num_anchors, kernel_size=1)
        ph, pw = config.pooled_size
        self.fc6 = nn.Linear(in_ch * ph * pw, fc_channels)
        self.fc7 = nn.Linear(fc_channels, fc_channels)
        self.cls_score = nn.Linear(fc_channels, num_classes)
        self.bbox_pred = nn.Linear(fc_channels, 4 * num_classes)
        self.register_buffer("anchors", torch.from_numpy(generate_anchors(
            config.anchor_base_size, config.anchor_ratios, config.anchor_scales)).float(), persistent=False)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """conv5_3 features (after ReLU), stride 16."""
        # Channels-last feature maps: oneDNN and cuDNN convolve them without reordering every layer.
        x = x.contiguous(memory_format=torch.channels_last)
        for i, stage in enumerate(VGG16_CONVS):
            for name in stage:
                x = F.relu(getattr(self, name)(x), inplace=True)
            if i < len(VGG16_CONVS) - 1:
                x = F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)  # Caffe rounds up
        return x

    def rpn(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(foreground probabilities (1, A, H, W), box deltas (1, 4A, H, W))."""
        h = F.relu(self.rpn_conv(features), inplace=True)
        scores = self.rpn_cls_score(h)
        a = self.num_anchors
        # Caffe reshapes to (1, 2, A*H, W) and soft-maxes over the 2: channels a (bg) and a + A (fg).
        probabilities = torch.softmax(torch.stack([scores[:, :a], scores[:, a:]], dim=1), dim=1)[:, 1]
        return probabilities, self.rpn_bbox_pred(h)

    def proposals(self, fg: torch.Tensor, deltas: torch.Tensor, input_hw: tuple[int, int],
                  im_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """py-faster-rcnn's TEST ProposalLayer: (rois (R, 4), scores (R,)) in network-input pixels."""
        cfg = self.config
        _, a, h, w = fg.shape
        device = fg.device
        shift_x = torch.arange(w, device=device, dtype=torch.float32) * cfg.feat_stride
        shift_y = torch.arange(h, device=device, dtype=torch.float32) * cfg.feat_stride
        sy, sx = torch.meshgrid(shift_y, shift_x, indexing="ij")
        shifts = torch.stack([sx.reshape(-1), sy.reshape(-1), sx.reshape(-1), sy.reshape(-1)], dim=1)
        anchors = (self.anchors[None, :, :] + shifts[:, None, :]).reshape(-1, 4)  # (H*W*A, 4), order (h, w, a)
        scores = fg.permute(0, 2, 3, 1).reshape(-1)
        box_deltas = deltas.permute(0, 2, 3, 1).reshape(-1, 4)
        boxes = clip_boxes(bbox_transform_inv(anchors, box_deltas.float()), input_hw[0], input_hw[1])
        min_size = np.float32(cfg.min_size) * np.float32(im_scale)
        widths = boxes[:, 2] - boxes[:, 0] + 1
        heights = boxes[:, 3] - boxes[:, 1] + 1
        keep = torch.nonzero((widths >= float(min_size)) & (heights >= float(min_size))).squeeze(1)
        boxes, scores = boxes[keep], scores[keep]
        # The official scores.argsort()[::-1] with a stable sort: ties in the flat background go by anchor order.
        order = torch.sort(scores, stable=True).indices.flip(0)[: cfg.pre_nms_top_n]
        boxes, scores = boxes[order], scores[order]
        kept = nms(boxes, scores, cfg.nms_threshold, cfg.post_nms_top_n)
        return boxes[kept], scores[kept]

    def head(self, features: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(class probabilities (R, classes), box deltas (R, 4 * classes)) of RoIs on one image's features."""
        pooled = roi_pool(features[0], rois, self.config.pooled_size, self.config.spatial_scale)
        x = F.relu(self.fc6(pooled.flatten(1)), inplace=True)  # C-major flattening, as Caffe
        x = F.relu(self.fc7(x), inplace=True)
        return torch.softmax(self.cls_score(x), dim=1), self.bbox_pred(x)

    def forward(self, image: torch.Tensor, im_scale: float) -> FRCNNOutput:
        if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(f"expected one (1, 3, H, W) image blob, got shape {tuple(image.shape)}")
        features = self.trunk(image)
        fg, deltas = self.rpn(features)
        rois, rpn_scores = self.proposals(fg, deltas, (image.shape[2], image.shape[3]), im_scale)
        if rois.shape[0] == 0:
            raise ValueError("the region proposal network returned no boxes (image too small?)")
        cls_prob, bbox_pred = self.head(features, rois)
        return FRCNNOutput(rois, rpn_scores, cls_prob, bbox_pred)


def frcnn_from_caffe(layers: dict, config: ProposalConfig = ProposalConfig(),
                     source: str = "caffemodel") -> FasterRCNNVGG16:
    """A :class:`FasterRCNNVGG16` with the weights of a parsed caffemodel (``{name: CaffeLayer}``), in eval mode."""
    from ..weights import WeightsError, load_state_dict_into

    names = [n for stage in VGG16_CONVS for n in stage]
    module_names = names + ["rpn_conv", "rpn_cls_score", "rpn_bbox_pred", "fc6", "fc7", "cls_score", "bbox_pred"]
    missing = [CAFFE_NAMES.get(n, n) for n in module_names if CAFFE_NAMES.get(n, n) not in layers]
    if missing:
        raise WeightsError(f"{source}: layers {', '.join(missing)} are missing; is this the frcnn_cad VGG16 model?")
    for n in module_names:
        blobs = layers[CAFFE_NAMES.get(n, n)].blobs
        if len(blobs) != 2:
            raise WeightsError(f"{source}: layer {CAFFE_NAMES.get(n, n)} has {len(blobs)} blobs, "
                               "expected weight and bias")

    def outputs(n: str) -> int:
        # Legacy blobs store an InnerProduct weight as (1, 1, out, in); others put the outputs first.
        shape = layers[CAFFE_NAMES.get(n, n)].blobs[0].shape
        return int(shape[-2] if len(shape) == 4 and shape[:2] == (1, 1) and n in INNER_PRODUCTS else shape[0])

    channels = [outputs(n) for n in names]
    model = FasterRCNNVGG16(channels, outputs("rpn_conv"), outputs("fc6"), outputs("cls_score"), config)
    state = {}
    expected = model.state_dict()
    for n in module_names:
        w, b = layers[CAFFE_NAMES.get(n, n)].blobs
        target = expected[f"{n}.weight"].shape
        if int(np.prod(w.shape)) != int(np.prod(target)):
            raise WeightsError(f"{source}: layer {CAFFE_NAMES.get(n, n)} has weights of shape {tuple(w.shape)}, "
                               f"the network expects {tuple(target)}")
        # Copy out of the file's memory map; InnerProduct blobs may be stored as (1, 1, out, in).
        state[f"{n}.weight"] = torch.from_numpy(np.array(w, dtype=np.float32)).reshape(target)
        state[f"{n}.bias"] = torch.from_numpy(np.array(b, dtype=np.float32)).reshape(-1)
    load_state_dict_into(model, state, source=source)
    return model.to(memory_format=torch.channels_last).eval()


def load_frcnn(path, config: ProposalConfig = ProposalConfig()) -> FasterRCNNVGG16:
    """Load the official ``vgg16_frcnn_cad.caffemodel`` (or one of the same topology)."""
    from ...interop.caffe import read_caffemodel

    _, layers = read_caffemodel(path)
    return frcnn_from_caffe(layers, config, str(path))


__all__ = ["FasterRCNNVGG16", "ProposalConfig", "FRCNNOutput", "generate_anchors", "bbox_transform_inv",
           "clip_boxes", "nms", "roi_pool", "frcnn_from_caffe", "load_frcnn"]
