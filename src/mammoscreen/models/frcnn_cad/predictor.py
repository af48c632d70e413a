"""frcnn_cad in the prediction engine: the official caffemodel, its preprocessing, image score and detections.

Per image, as the meta-repository's ``models/frcnn_cad/predict/generate_predictions.py`` with
py-faster-rcnn's ``im_detect`` runs it:

1. the 16-bit PNG scaled to 8 bits: ``uint8(255 * img / img.max())`` (truncated), the same grey in B, G, R;
2. float32 minus the BGR pixel means (102.9801, 115.9465, 122.7717);
3. resized with bilinear interpolation (OpenCV) by ``scale = 1700 / min(H, W)``, or ``2100 / max(H, W)``
   when the long side would exceed 2100 px;
4. the network (:mod:`mammoscreen.models.frcnn_cad.modeling`): 300 proposals with [background, benign, malignant]
   probabilities and per-class box deltas;
5. per class, the regressed boxes in original-image pixels, clipped, and non-maximum suppression at
   IoU 0.1; ``malignant_pred`` is the highest malignant probability among the detections (which is the
   highest over all 300 proposals).

The original (uncropped) images are used. ``--save-maps`` writes the malignant and benign detections
(``[x1, y1, x2, y2, score]`` in original-image pixels, strongest first), the proposals and their class
probabilities; ``--visualize`` draws the strongest detections of each class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from ...core.device import batch_to_device, for_device, full_fp32, resolve_device
from ...core.files import sha256_file
from ...core.paths import name_path
from ...data.exams import ImageRecord
from ...data.images import image_path, read_mammogram, read_png
from ..interfaces import ImagePrediction, Predictor
from ..options import ModelOptions
from ..preprocessing import Preprocessing
from ..registry import META_REPOSITORY_VIEW_ORDER, ModelSpec, WeightFile, register_model
from .modeling import FasterRCNNVGG16, bbox_transform_inv, clip_boxes, load_frcnn, nms

PIXEL_MEANS_BGR = np.array([102.9801, 115.9465, 122.7717])
"""py-faster-rcnn's ``cfg.PIXEL_MEANS`` (float64, B, G, R)."""

TEST_SCALE = 1700
"""Target length of the shorter side (``cfg.TEST.SCALES``, set by the meta-repository)."""

TEST_MAX_SIZE = 2100
"""Cap on the longer side (``cfg.TEST.MAX_SIZE``)."""

DETECTION_NMS_THRESHOLD = 0.1
"""IoU threshold of the per-class NMS in the meta-repository's ``score_im``."""

CLASSES = ("background", "benign", "malignant")

WEIGHTS_URL = "http://dkrib.web.elte.hu/cad_faster_rcnn/vgg16_frcnn_cad.caffemodel"
WEIGHTS_LICENSE = "no licence stated by the authors (riblidezso/frcnn_cad); research use"


def to_8bit_bgr(image: np.ndarray) -> np.ndarray:
    """``uint8(255 * img / img.max())`` in three identical channels (the meta-repository's ``preprocess_image``)."""
    peak = float(image.max())
    if peak <= 0:
        raise ValueError("the image is blank (maximum pixel value 0)")
    grey = (255.0 * image.astype(np.float64) / peak).astype(np.uint8)  # numpy's float -> uint8 cast truncates
    return np.repeat(grey[:, :, None], 3, axis=2)


def image_scale(shape: tuple[int, int], scale: int = TEST_SCALE, max_size: int = TEST_MAX_SIZE) -> float:
    """py-faster-rcnn's resize factor: shorter side to ``scale`` unless the longer side would exceed ``max_size``."""
    short, long = float(min(shape[:2])), float(max(shape[:2]))
    factor = float(scale) / short
    if np.round(factor * long) > max_size:
        factor = float(max_size) / long
    return factor


def network_input(bgr: np.ndarray, scale: float) -> np.ndarray:
    """Mean-subtracted, resized (3, H', W') float32 blob from an 8-bit BGR image."""
    # float32 image minus float64 means, stored back as float32 (as numpy's in-place subtraction does)
    centred = (bgr.astype(np.float32).astype(np.float64) - PIXEL_MEANS_BGR).astype(np.float32)
    resized = cv2.resize(centred, None, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized.transpose(2, 0, 1))


def detections_for_class(boxes: torch.Tensor, scores: torch.Tensor, threshold: float = DETECTION_NMS_THRESHOLD
                         ) -> np.ndarray:
    """(K, 5) ``[x1, y1, x2, y2, score]`` float32 after NMS, strongest first."""
    keep = nms(boxes, scores, threshold)
    return torch.cat([boxes[keep], scores[keep, None]], dim=1).numpy().astype(np.float32)


@dataclass
class FRCNNInput:
    """One preprocessed image."""

    blob: np.ndarray  # (3, H', W') float32 network input
    scale: float
    original_shape: tuple[int, int]
    grey: np.ndarray  # the 8-bit image (for the figure)


class FRCNNPredictor(Predictor):
    """Runs the frcnn_cad Faster R-CNN, one image per forward pass."""

    def __init__(self, model: FasterRCNNVGG16, weight_path: Path, device: str | torch.device = "auto"):
        self.spec = FRCNN_SPEC
        self.device = resolve_device(device)
        self.model = for_device(model, self.device)  # channels_last on CUDA; unchanged on the CPU
        self.weight_path = Path(weight_path)
        self._hash = sha256_file(self.weight_path)

    def provenance(self) -> dict[str, Any]:
        cfg = self.model.config
        return {"model": self.spec.name, "variant": "vgg16", "test_scale": TEST_SCALE, "test_max_size": TEST_MAX_SIZE,
                "proposals": {"pre_nms_top_n": cfg.pre_nms_top_n, "post_nms_top_n": cfg.post_nms_top_n,
                              "nms_threshold": cfg.nms_threshold, "min_size": cfg.min_size},
                "detection_nms_threshold": DETECTION_NMS_THRESHOLD,
                "weights": [{"path": str(self.weight_path), "sha256": self._hash}]}

    def prepare(self, record: ImageRecord, images_dir: Path) -> FRCNNInput:
        image = read_mammogram(image_path(images_dir, record.name))
        bgr = to_8bit_bgr(image)
        scale = image_scale(image.shape)
        return FRCNNInput(network_input(bgr, scale), scale, image.shape, bgr[:, :, 0])

    @torch.inference_mode()
    def predict_one(self, item: FRCNNInput) -> ImagePrediction:
        blob = batch_to_device(item.blob[None], self.device)  # pinned, non-blocking on CUDA
        with full_fp32(self.device):
            out = self.model(blob, item.scale)
        rois = out.rois.float().cpu()
        cls_prob = out.cls_prob.float().cpu()
        deltas = out.bbox_pred.float().cpu()
        boxes = rois / item.scale  # back to original-image pixels (float32, as im_detect)
        height, width = item.original_shape
        regressed = clip_boxes(bbox_transform_inv(boxes, deltas), height, width)
        detections = {name: detections_for_class(regressed[:, 4 * c:4 * c + 4], cls_prob[:, c])
                      for c, name in enumerate(CLASSES) if c > 0}
        malignant = detections["malignant"]
        maps = {
            "malignant_detections": malignant,
            "benign_detections": detections["benign"],
            "proposals": boxes.numpy().astype(np.float32),
            "class_probabilities": cls_prob.numpy().astype(np.float32),
            "rpn_scores": out.rpn_scores.float().cpu().numpy(),
            "image_scale": np.float64(item.scale),
            "original_shape": np.array(item.original_shape, dtype=np.int64),
        }
        return ImagePrediction(values={"malignant_pred": float(malignant[:, 4].max())}, maps=maps,
                               visual=detections)

    def predict_batch(self, prepared: Sequence[FRCNNInput]) -> list[ImagePrediction]:
        return [self.predict_one(item) for item in prepared]

    def visualize(self, record: ImageRecord, prepared: FRCNNInput, prediction: ImagePrediction,
                  segmentations: Path | None, path: Path) -> None:
        from ...explain.detections import detection_figure

        masks = {}
        if segmentations is not None:
            for kind in ("benign", "malignant"):
                mask_file = name_path(segmentations, record.name, f"_{kind}.png", "image name")
                masks[kind] = read_png(mask_file) if mask_file.is_file() else None
        detection_figure(prepared.grey, prediction.visual, path, masks=masks,
                         title=f"{record.name}   frcnn_cad   malignant {prediction.values['malignant_pred']:.3f}")


def _load_frcnn_predictor(paths: Sequence[Path], variant: str, device: str, options: ModelOptions) -> FRCNNPredictor:
    return FRCNNPredictor(load_frcnn(paths[0]), paths[0], device)


def build_frcnn_predictor(weights: str | Path, variant: str | None = None, device: str = "auto",
                          allow_download: bool = True) -> FRCNNPredictor:
    """A frcnn_cad predictor; ``weights`` is the caffemodel, a directory holding it, or 'official'."""
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("frcnn_cad", weights, variant, device,  # type: ignore[return-value]
                                            allow_download=allow_download))


PREPROCESSING = Preprocessing(source="original", scale_to_8bit=True, channels="B,G,R",
                              mean=tuple(float(m) for m in PIXEL_MEANS_BGR), mean_name="VGG pixel means",
                              short_side=TEST_SCALE, max_long_side=TEST_MAX_SIZE, resize_filter="bilinear")


FRCNN_SPEC = register_model(ModelSpec(
    name="frcnn_cad",
    title="frcnn_cad: Faster R-CNN (VGG16) lesion detector; image score = highest malignant detection",
    paper=("Ribli D, Horvath A, Unger Z, Pollner P, Csabai I. Detecting and classifying lesions in mammograms "
           "with Deep Learning. Scientific Reports 2018;8:4165."),
    license=WEIGHTS_LICENSE,
    output_level="image",
    prediction_columns=("malignant_pred",),
    preprocessing=PREPROCESSING,
    weights={"vgg16": WeightFile("vgg16_frcnn_cad.caffemodel", WEIGHTS_URL, None, None, WEIGHTS_LICENSE)},
    default_variant="vgg16",
    variants=("vgg16",),
    build=_load_frcnn_predictor,
    csv_view_order=META_REPOSITORY_VIEW_ORDER,
    extra={"classes": CLASSES, "test_scale": TEST_SCALE, "test_max_size": TEST_MAX_SIZE,
           "detection_nms_threshold": DETECTION_NMS_THRESHOLD, "weights_format": "Caffe binary NetParameter",
           "maps": ("malignant_detections", "benign_detections", "proposals", "class_probabilities"),
           "official_seconds_per_image": (None, "no CPU path (Caffe on a GPU only); OpenCV DNN runs the same net in "
                                                "5.5-6 s (2100x~800) and 9-11 s (2100x1615) on the 2-core CPU "
                                                "(reference frcnn_cad/README.md)")},
))
