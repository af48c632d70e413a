"""GLAM (``nyu_glam``) in the prediction engine: official checkpoints, test-time preprocessing, outputs, figure.

Per image, as the official ``run_model.py`` (the meta-repository's ``nyu_glam``): read the cropped 16-bit
PNG, mirror right-breast views so that all breasts face right, take the 2944x1920 window around
``best_center`` (zero-padded where the crop is smaller; the official code draws its window from a fresh
``RandomState(0)`` with zero noise, which we reproduce), standardise it and run the model.

The reported [benign, malignant] prediction is the *global* branch ``y_global`` - the mean of the
top-3% pooled saliency maps of three levels of the global network - not a fusion with the local
branch: the official code computes the local prediction ``y_local`` and does not use it. We report
``y_global`` too (and keep ``y_local`` in the maps), so the numbers are the published ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...core.device import batch_to_device, for_device, resolve_device
from ...core.files import sha256_file
from ...data.exams import ImageRecord
from ...preprocess.window_input import WindowInput, window_input, window_masks
from ...preprocess.windows import (
    placement_arrays,
)
from ..interfaces import ImagePrediction, Predictor
from ..options import ModelOptions
from ..preprocessing import Preprocessing
from ..registry import ModelSpec, WeightFile, register_model
from ..weights import WeightsError, load_checkpoint, load_state_dict_into
from .modeling import GLAM, UNUSED_CHECKPOINT_KEYS, GLAMConfig, high_resolution_saliency

SALIENCY_STRIDE = 4
"""The high-resolution saliency map is stored every 4th pixel (736x480): lossless for the published model."""


def load_glam(path: str | Path, config: GLAMConfig = GLAMConfig()) -> GLAM:
    """A GLAM model with weights from a checkpoint (official format: a plain state dict), in eval mode."""
    state = load_checkpoint(path)
    if isinstance(state, dict):
        state = {k: v for k, v in state.items() if k not in UNUSED_CHECKPOINT_KEYS}
    model = GLAM(config)
    try:
        load_state_dict_into(model, state, source=str(path))
    except WeightsError as e:
        raise WeightsError(f"{e}. GLAM expects the official model_joint.ckpt / model_sep.ckpt (keys "
                           "global_network.* and detection_network.*)") from None
    return model.eval()


class GLAMPredictor(Predictor):
    """Runs one GLAM checkpoint (``model_joint`` or ``model_sep``)."""

    def __init__(self, model: GLAM, weight_path: Path, variant: str, device: str | torch.device = "auto",
                 seed: int = 0):
        self.spec = GLAM_SPEC
        self.device = resolve_device(device)
        self.model = for_device(model, self.device)  # channels_last on CUDA; unchanged on the CPU
        self.config = model.config
        self.weight_path = Path(weight_path)
        self.variant = variant
        self.seed = seed
        self.with_local = True
        self._hash = sha256_file(self.weight_path)

    def configure_outputs(self, maps: bool, figures: bool) -> None:
        # Predictions alone do not need the local branch (y_global is the global branch's output).
        self.with_local = maps or figures

    def provenance(self) -> dict[str, Any]:
        return {"model": self.spec.name, "variant": self.variant, "config": self.config.to_dict(), "seed": self.seed,
                "weights": [{"path": str(self.weight_path), "sha256": self._hash}]}

    def prepare(self, record: ImageRecord, images_dir: Path) -> WindowInput:
        # The official loader seeds a fresh RandomState per image; with zero noise its draws change nothing.
        return window_input(record, images_dir, self.config.input_size, rng=np.random.RandomState(self.seed))

    @torch.inference_mode()
    def predict_batch(self, prepared: Sequence[WindowInput]) -> list[ImagePrediction]:
        cfg = self.config
        x = batch_to_device(np.stack([p.window for p in prepared])[:, None], self.device)  # pinned on CUDA
        out = self.model(x, with_local=self.with_local)
        numpy = lambda t: t.float().cpu().numpy()  # noqa: E731
        y_global = numpy(out.y_global)
        results = []
        for i, p in enumerate(prepared):
            maps = {
                "y_global": y_global[i],
                "y_cam_logits": numpy(out.y_cam_logits[:, i]),
                "x_layer1": numpy(out.level_maps[0][i]), "x_layer2": numpy(out.level_maps[1][i]),
                "x_layer3": numpy(out.level_maps[2][i]),
                "downsampled_map": numpy(out.downsampled_map[i]),
                "saliency_map_global": numpy(out.saliency_map_global[i]),
                "small_x_locations": out.small_x_locations[i].cpu().numpy().astype(np.int64),
                "patch_locations": out.patch_locations[i].cpu().numpy().astype(np.int64),
            }
            # How the window sits on the cropped image and the crop on the original image.
            maps.update(placement_arrays(p.geometry, p.cropped_shape, p.origin))
            visual = None
            if out.raw_local_cam is not None:
                final = high_resolution_saliency(out.saliency_map_global[i:i + 1], out.raw_local_cam[i:i + 1],
                                                 out.patch_locations[i:i + 1], cfg.input_size, cfg.crop_size,
                                                 SALIENCY_STRIDE)
                maps.update({"y_local": numpy(out.y_local[i]), "raw_local_CAM": numpy(out.raw_local_cam[i]),
                             "saliency_map": numpy(final[0]), "saliency_map_stride": np.int64(SALIENCY_STRIDE)})
                visual = numpy(out.patches[i])
            results.append(ImagePrediction(
                values={"benign_pred": float(y_global[i, 0]), "malignant_pred": float(y_global[i, 1])},
                maps=maps, visual=visual))
        return results

    def visualize(self, record: ImageRecord, prepared: WindowInput, prediction: ImagePrediction,
                  segmentations: Path | None, path: Path) -> None:
        from ...explain.glam_figure import glam_figure

        masks = window_masks(record, prepared, segmentations, self.config.input_size)
        v, maps = prediction.values, prediction.maps
        glam_figure(prepared.window, maps["saliency_map"], maps["patch_locations"], prediction.visual, path,
                    benign_mask=masks["benign"], malignant_mask=masks["malignant"], crop_size=self.config.crop_size,
                    title=f"{record.name}   benign {v['benign_pred']:.3f}   malignant {v['malignant_pred']:.3f}")


@dataclass(frozen=True)
class GLAMOptions(ModelOptions):
    """GLAM's options: ``seed`` of the window's random draws (as the official loader; at test time the noise is
    zero, so it does not change the result) and the checkpoint's architecture (from Python only)."""

    seed: int = 0
    config: GLAMConfig = GLAMConfig()


def _load_glam_predictor(paths: Sequence[Path], variant: str, device: str, options: GLAMOptions) -> GLAMPredictor:
    return GLAMPredictor(load_glam(paths[0], options.config), paths[0], variant, device, seed=options.seed)


def build_glam_predictor(weights: str | Path, variant: str | None = None, device: str = "auto",
                         config: GLAMConfig = GLAMConfig(), seed: int = 0,
                         allow_download: bool = True) -> GLAMPredictor:
    """A GLAM predictor for ``variant`` 'model_joint' (default) or 'model_sep'
    (:func:`~mammoscreen.models.build_predictor`).

    ``weights`` is a checkpoint file, a directory holding ``model_joint.ckpt`` / ``model_sep.ckpt``, or
    'official'.
    """
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("nyu_glam", weights, variant, device,  # type: ignore[return-value]
                                            {"config": config, "seed": seed}, allow_download))


GLAM_WINDOW = (2944, 1920)  # rows, cols; GMIC's window, the same for every view
PREPROCESSING = Preprocessing(source="cropped", windows={"CC": GLAM_WINDOW, "MLO": GLAM_WINDOW}, flip="face right",
                              standardisation="per image")

_REPOSITORY = "https://github.com/nyukat/GLAM/raw/master/models/"
_WEIGHTS_LICENSE = ("non-commercial research use only (GLAM pretrained weights, nyukat/GLAM; "
                    "the GLAM code itself is AGPL-3.0)")

GLAM_SPEC = register_model(ModelSpec(
    name="nyu_glam",
    title="GLAM: global-local activation maps (weakly-supervised high-resolution segmentation)",
    paper=("Liu K, Shen Y, Wu N, Chledowski J, Fernandez-Granda C, Geras KJ. Weakly-supervised high-resolution "
           "segmentation of mammography images for breast cancer diagnosis. Medical Imaging with Deep Learning "
           "(MIDL) 2021. https://openreview.net/pdf?id=nBT8eNF7aXr"),
    license=_WEIGHTS_LICENSE,
    output_level="image",
    prediction_columns=("benign_pred", "malignant_pred"),
    preprocessing=PREPROCESSING,
    options=GLAMOptions,
    # The checkpoints live in the repository's models/ folder; no checksums are published, so a
    # download is not verified (the sha256 of the file used is recorded in every run's provenance).
    weights={variant: WeightFile(f"{variant}.ckpt", _REPOSITORY + f"{variant}.ckpt", None, None, _WEIGHTS_LICENSE)
             for variant in ("model_joint", "model_sep")},
    default_variant="model_joint",
    variants=("model_joint", "model_sep"),
    build=_load_glam_predictor,
    saliency_maps=True,
    extra={"saliency_size": (184, 120), "crop_size": (512, 512), "num_crops": 1, "percent_k": 0.03,
           "reported_prediction": "y_global", "saliency_map_stride": SALIENCY_STRIDE,
           "variant_notes": {"model_joint": "global and local networks trained jointly (the meta-repository default)",
                             "model_sep": "global and local networks trained separately (the GLAM repository's "
                                          "default); same architecture and inference"}},
))
