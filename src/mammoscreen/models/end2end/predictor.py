"""end2end in the prediction engine: the released Keras files, the meta-repository's preprocessing and output.

Per image, as the meta-repository's ``models/end2end`` runs it (``preprocess.py`` then
``generate_predictions.py``):

1. ImageMagick ``auto-level`` (per-image min/max stretch to 16 bits) and resize to exactly 896x1152
   (aspect ratio ignored; Lanczos) - reimplemented in :mod:`mammoscreen.preprocess.magick`;
2. ``x = float32(pixels) * 0.003891 - mean_pixel_intensity`` (0.003891 = 255/65535; the mean is the
   training/evaluation set's mean intensity on the 0-255 scale, 44.4 as the meta-repository ships it);
3. the same image in every input channel, no cropping or flipping;
4. ``malignant_pred`` = the softmax's positive class.

The original (uncropped) images are used: the model needs neither the NYU crop nor optimal centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...core.device import batch_to_device, for_device, full_fp32, resolve_device
from ...core.files import sha256_file
from ...data.exams import ImageRecord
from ...data.images import image_path, read_mammogram
from ...preprocess.magick import auto_level, magick_resize
from ..interfaces import ImagePrediction, Predictor
from ..options import ModelOptions
from ..preprocessing import Preprocessing
from ..registry import META_REPOSITORY_VIEW_ORDER, ModelSpec, WeightFile, register_model
from .modeling import End2EndClassifier, load_end2end

INPUT_SIZE = (1152, 896)
"""(rows, cols) every image is resized to."""

RESCALE_FACTOR = 0.003891
"""255 / 65535: maps 16-bit values to the 0-255 scale the models were trained on."""

MEAN_PIXEL_INTENSITY = {"ddsm": 52.18, "inbreast": 44.4, "nyu": 31.28, "cmmd": 18.01}
"""Mean pixel intensity (0-255 scale) the meta-repository gives per evaluation dataset."""

DEFAULT_MEAN_PIXEL_INTENSITY = 44.4
"""What the meta-repository's config ships (the INbreast mean, used with every model by default)."""

WEIGHTS_PAGE = "https://drive.google.com/drive/folders/0B1PVLadG_dCKV2pZem5MTjc1cHc"
WEIGHTS_LICENSE = "CC BY-NC-SA 4.0 (non-commercial use only; lishen/end2end-all-conv)"

VARIANT_FILES = {
    "ddsm_resnet50": "ddsm_resnet50_s10_[512-512-1024]x2.h5",
    "ddsm_vgg16": "ddsm_vgg16_s10_512x1.h5",
    "ddsm_vgg16_hybrid": "ddsm_vgg16_s10_[512-512-1024]x2_hybrid.h5",
    "ddsm_yaroslavnet": "ddsm_YaroslavNet_s10.h5",
    "inbreast_vgg16": "inbreast_vgg16_512x1.h5",
    "inbreast_vgg16_hybrid": "inbreast_vgg16_[512-512-1024]x2_hybrid.h5",
}
"""The six released whole-image models (short variant name -> official file name)."""


def resolve_mean_pixel_intensity(value: float | str | None) -> float:
    """A mean intensity from a number or a dataset name ('ddsm', 'inbreast', 'nyu', 'cmmd')."""
    if value is None:
        return DEFAULT_MEAN_PIXEL_INTENSITY
    if isinstance(value, str):
        key = value.strip().lower()
        if key in MEAN_PIXEL_INTENSITY:
            return MEAN_PIXEL_INTENSITY[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(f"mean pixel intensity must be a number or one of {', '.join(MEAN_PIXEL_INTENSITY)}, "
                             f"got {value!r}") from None
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"mean pixel intensity must be finite, got {value}")
    return value


def preprocess_end2end(image: np.ndarray, mean_pixel_intensity: float = DEFAULT_MEAN_PIXEL_INTENSITY,
                       size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(network input (rows, cols) float32, the 16-bit preprocessed image) for one mammogram."""
    if image.max() == image.min():
        raise ValueError("the image is blank (all pixels have the same value)")
    resized = magick_resize(auto_level(image), size)
    x = resized.astype(np.float32) * np.float32(RESCALE_FACTOR) - np.float32(mean_pixel_intensity)
    return x, resized


def mean_pixel_intensity_of(images: Sequence[np.ndarray], size: tuple[int, int] = INPUT_SIZE) -> float:
    """The mean intensity (0-255 scale, after auto-level and resize) of a set of images.

    For a dataset other than those in :data:`MEAN_PIXEL_INTENSITY` the meta-repository asks for this value
    computed on the training images.
    """
    total, count = 0.0, 0
    for image in images:
        resized = magick_resize(auto_level(image), size).astype(np.float32) * np.float32(RESCALE_FACTOR)
        total += float(resized.sum(dtype=np.float64))
        count += resized.size
    if count == 0:
        raise ValueError("no images given")
    return total / count


@dataclass
class End2EndInput:
    """One preprocessed image."""

    x: np.ndarray  # (rows, cols) float32 network input
    original_shape: tuple[int, int]


class End2EndPredictor(Predictor):
    """Runs one released end2end model."""

    def __init__(self, model: End2EndClassifier, weight_path: Path, variant: str, device: str | torch.device = "auto",
                 mean_pixel_intensity: float | str | None = None):
        self.spec = END2END_SPEC
        self.device = resolve_device(device)
        self.model = for_device(model, self.device)  # channels_last on CUDA; unchanged on the CPU
        self.weight_path = Path(weight_path)
        self.variant = variant
        self.mean_pixel_intensity = resolve_mean_pixel_intensity(mean_pixel_intensity)
        rows, cols = model.input_size
        self.input_size = (int(rows), int(cols)) if rows and cols else INPUT_SIZE
        self._hash = sha256_file(self.weight_path)

    def provenance(self) -> dict[str, Any]:
        return {"model": self.spec.name, "variant": self.variant, "mean_pixel_intensity": self.mean_pixel_intensity,
                "rescale_factor": RESCALE_FACTOR, "input_size": list(self.input_size),
                "weights": [{"path": str(self.weight_path), "sha256": self._hash}]}

    def prepare(self, record: ImageRecord, images_dir: Path) -> End2EndInput:
        image = read_mammogram(image_path(images_dir, record.name))
        x, _ = preprocess_end2end(image, self.mean_pixel_intensity, self.input_size)
        return End2EndInput(x, image.shape)

    @torch.inference_mode()
    def predict_batch(self, prepared: Sequence[End2EndInput]) -> list[ImagePrediction]:
        x = batch_to_device(np.stack([p.x for p in prepared]), self.device)  # pinned, non-blocking on CUDA
        with full_fp32(self.device):
            probabilities = self.model(x).float().cpu().numpy()
        if probabilities.shape[1] < 2:
            raise ValueError(f"the model returns {probabilities.shape[1]} class(es); expected [negative, positive]")
        return [ImagePrediction(values={"malignant_pred": float(p[1])},
                                maps={"probabilities": p.astype(np.float32),
                                      "original_shape": np.array(item.original_shape, dtype=np.int64)})
                for p, item in zip(probabilities, prepared)]

    def visualize(self, record: ImageRecord, prepared: End2EndInput, prediction: ImagePrediction,
                  segmentations: Path | None, path: Path) -> None:
        from ...explain.detections import input_figure

        input_figure(prepared.x, path, title=f"{record.name}   end2end ({self.variant})   "
                                             f"malignant {prediction.values['malignant_pred']:.3f}")


@dataclass(frozen=True)
class End2EndOptions(ModelOptions):
    """end2end's option: the mean pixel intensity subtracted from the input, a number or a dataset name of
    :data:`MEAN_PIXEL_INTENSITY` (default 44.4, as the meta-repository)."""

    mean_pixel_intensity: float | str | None = None

    def __post_init__(self) -> None:
        resolve_mean_pixel_intensity(self.mean_pixel_intensity)  # an unknown dataset name is an error now


def _load_end2end_predictor(paths: Sequence[Path], variant: str, device: str,
                            options: End2EndOptions) -> End2EndPredictor:
    return End2EndPredictor(load_end2end(paths[0], fold_batchnorm=True), paths[0], variant, device,
                            options.mean_pixel_intensity)


def build_end2end_predictor(weights: str | Path, variant: str | None = None, device: str = "auto",
                            mean_pixel_intensity: float | str | None = None,
                            allow_download: bool = True) -> End2EndPredictor:
    """An end2end predictor for ``variant`` (see :data:`VARIANT_FILES`; :func:`~mammoscreen.models.build_predictor`).

    ``weights`` is the ``.h5`` file, a directory holding the official file name, or 'official' (the
    cache; the files cannot be downloaded automatically from Google Drive).
    """
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("end2end", weights, variant, device,  # type: ignore[return-value]
                                            {"mean_pixel_intensity": mean_pixel_intensity}, allow_download))


PREPROCESSING = Preprocessing(source="original", auto_level=True, resize=INPUT_SIZE, resize_filter="Lanczos",
                              keep_aspect=False, channels="every channel", rescale=RESCALE_FACTOR,
                              mean=DEFAULT_MEAN_PIXEL_INTENSITY, mean_name="mean pixel intensity",
                              mean_is_default=True)

END2END_SPEC = register_model(ModelSpec(
    name="end2end",
    title="end2end: all-convolutional whole-image classifier (ResNet50/VGG16 patch classifier + top layers)",
    paper=("Shen L, Margolies LR, Rothstein JH, Fluder E, McBride R, Sieh W. Deep Learning to Improve Breast "
           "Cancer Detection on Screening Mammography. Scientific Reports 2019;9:12495."),
    license=WEIGHTS_LICENSE,
    output_level="image",
    prediction_columns=("malignant_pred",),
    preprocessing=PREPROCESSING,
    weights={v: WeightFile(f, None, None, None, WEIGHTS_LICENSE) for v, f in VARIANT_FILES.items()},
    weights_page=WEIGHTS_PAGE,
    options=End2EndOptions,
    default_variant="ddsm_resnet50",
    variants=tuple(VARIANT_FILES),
    build=_load_end2end_predictor,
    csv_view_order=META_REPOSITORY_VIEW_ORDER,
    extra={"weights_page": WEIGHTS_PAGE, "mean_pixel_intensity": dict(MEAN_PIXEL_INTENSITY),
           "default_mean_pixel_intensity": DEFAULT_MEAN_PIXEL_INTENSITY, "rescale_factor": RESCALE_FACTOR,
           "input_size": INPUT_SIZE, "verified_variants": ("ddsm_resnet50",),
           "official_seconds_per_image": (0.96, "tf_keras model.predict, 2-core CPU, warm; ImageMagick preprocessing "
                                                "adds ~0.58 s/image (reference end2end/README.md)")},
))
