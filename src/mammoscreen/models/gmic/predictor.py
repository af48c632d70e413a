"""GMIC in the prediction engine: official checkpoints, test-time preprocessing, outputs and figure.

Per image (as the official ``run_model.py``): read the cropped 16-bit PNG, mirror right-breast views so
that all breasts face right, take the 2944x1920 window around ``best_center`` (zero-padded where the
crop is smaller), standardise it, and run the model. ``y_fusion`` is the reported [benign, malignant]
prediction; ``ensemble`` averages the predictions of the five official checkpoints, each with its own
top-t% (the maps and figure of an ensemble come from model 1, as in the official code).
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
from .modeling import GMIC, GMICConfig
from .sidecar import read_sidecar_config, sidecar_path

ENSEMBLE = "ensemble"


def load_gmic(path: str | Path, percent_t: float | None = None, config: GMICConfig = GMICConfig()) -> GMIC:
    """A GMIC model with weights from a checkpoint (official format: a plain state dict), in eval mode.

    A checkpoint written by ``mammoscreen train`` has a sidecar ``<name>.json`` recording its architecture
    (and top-t%); when present it takes the place of ``config`` and ``percent_t``.
    """
    trained = read_sidecar_config(path)
    if trained is not None:
        config = trained
    elif percent_t is not None:
        config = config.with_percent_t(percent_t)
    model = GMIC(config)
    state = load_checkpoint(path)
    try:
        load_state_dict_into(model, state, source=str(path))
    except WeightsError as e:
        if trained is not None:
            raise
        raise WeightsError(f"{e}. {path} does not fit the GMIC architecture {config.input_size[0]}x"
                           f"{config.input_size[1]} and has no sidecar {sidecar_path(path).name} saying which "
                           "architecture it has; put the .json written with it by 'mammoscreen train' beside "
                           "it") from None
    return model.eval()


class GMICPredictor(Predictor):
    """Runs one GMIC checkpoint, or the mean of several (the official ensemble)."""

    def __init__(self, models: Sequence[GMIC], weight_paths: Sequence[Path], variant: str,
                 device: str | torch.device = "auto", spec: ModelSpec | None = None):
        self.spec = spec or GMIC_SPEC  # another registry entry (gmic_demo) may use the same predictor
        self.device = resolve_device(device)
        # channels_last on the CPU too (for_device does it on CUDA): oneDNN then keeps the global network's large
        # 16-channel activations in its own layout instead of reordering them around every convolution -
        # about 1.9x faster here, outputs within 2e-7 of the plain layout (benchmarks/bench_scale.py).
        self.models = [for_device(m, self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
                       for m in models]
        self.weight_paths = list(weight_paths)
        self.variant = variant
        self.config = self.models[0].config
        self._hashes = [sha256_file(p) for p in self.weight_paths]

    def provenance(self) -> dict[str, Any]:
        return {"model": self.spec.name, "variant": self.variant,
                "percent_t": [m.config.percent_t for m in self.models],
                "config": self.config.to_dict(),
                "weights": [{"path": str(p), "sha256": h} for p, h in zip(self.weight_paths, self._hashes)]}

    def prepare(self, record: ImageRecord, images_dir: Path) -> WindowInput:
        return window_input(record, images_dir, self.config.input_size)

    @torch.inference_mode()
    def predict_batch(self, prepared: Sequence[WindowInput]) -> list[ImagePrediction]:
        x = batch_to_device(np.stack([p.window for p in prepared])[:, None], self.device)
        outputs = [model(x) for model in self.models]
        first = outputs[0]
        fused = torch.stack([o.y_fusion for o in outputs]).float().cpu().numpy()
        prediction = np.nanmean(fused, axis=0)
        results = []
        for i, p in enumerate(prepared):
            maps = {
                "saliency_map": first.saliency_map[i].float().cpu().numpy(),
                "patch_locations": first.patch_locations[i].cpu().numpy().astype(np.int64),
                "patch_attention": first.patch_attention[i].float().cpu().numpy(),
                "y_global": first.y_global[i].float().cpu().numpy(),
                "y_local": first.y_local[i].float().cpu().numpy(),
                "y_fusion": first.y_fusion[i].float().cpu().numpy(),
            }
            # How the window sits on the cropped image and the crop on the original image.
            maps.update(placement_arrays(p.geometry, p.cropped_shape, p.origin))
            if len(self.models) > 1:
                maps["ensemble_prediction"] = prediction[i].astype(np.float32)
            results.append(ImagePrediction(
                values={"benign_pred": float(prediction[i, 0]), "malignant_pred": float(prediction[i, 1])},
                maps=maps,
                visual=first.patches[i].float().cpu().numpy()))
        return results

    def visualize(self, record: ImageRecord, prepared: WindowInput, prediction: ImagePrediction,
                  segmentations: Path | None, path: Path) -> None:
        from ...explain.visualize import gmic_figure

        masks = window_masks(record, prepared, segmentations, self.config.input_size)
        v = prediction.values
        gmic_figure(prepared.window, prediction.maps["saliency_map"], prediction.maps["patch_locations"],
                    prediction.visual, prediction.maps["patch_attention"], path,
                    benign_mask=masks["benign"], malignant_mask=masks["malignant"],
                    patch_size=self.config.patch_size,
                    title=f"{record.name}   benign {v['benign_pred']:.3f}   malignant {v['malignant_pred']:.3f}")


@dataclass(frozen=True)
class GMICOptions(ModelOptions):
    """GMIC's options: the architecture of the checkpoint (the published one by default; from Python only)."""

    config: GMICConfig = GMICConfig()


def _load_gmic_predictor(paths: Sequence[Path], variant: str, device: str, options: GMICOptions) -> GMICPredictor:
    # Each official checkpoint has its own top-t% (its weight record's configuration).
    keys = GMIC_SPEC.weight_keys(variant)
    models = [load_gmic(p, GMIC_SPEC.weights[k].config["percent_t"], options.config) for p, k in zip(paths, keys)]
    return GMICPredictor(models, paths, variant, device)


def build_gmic_predictor(weights: str | Path, variant: str | None = None, device: str = "auto",
                         config: GMICConfig = GMICConfig(), allow_download: bool = True) -> GMICPredictor:
    """A GMIC predictor for ``variant`` '1'-'5' or 'ensemble' (:func:`~mammoscreen.models.build_predictor`).

    ``weights`` is a checkpoint file, a directory holding ``sample_model_<i>.p``, or 'official'.
    ``config`` is the architecture of the checkpoint (the published one by default); the top-t% of the
    official variants comes from their weight records.
    """
    from ..factory import PredictorRequest, build_predictor

    return build_predictor(PredictorRequest("gmic", weights, variant, device, {"config": config},  # type: ignore
                                            allow_download))


_LFS = "https://github.com/nyukat/GMIC/raw/master/models/"
_SHA256 = {
    1: "3b792e6de22fdccd34a43b4c1cc87a94f5f4fa8aed42722dce4e4badac347991",
    2: "b09da8d5c128f42f2a2589bfec5ffa28b16cb3d00fbc5d45913cbb402d05754e",
    3: "07800b83f06eea69c6afe05ecd83523026c391762fb6593538623acd9e715bbd",
    4: "775b3e29301fdf7d33f16f4ee5f5a5338a23d858572c66cb0097f678cd2cb4c1",
    5: "8209bef18775419e6d5575ae73a761458382aa342809fc3ff83b73e6c1fcf585",
}
_WEIGHTS_LICENSE = "AGPL-3.0 (released in the nyukat/GMIC repository)"

PERCENT_T = {1: 0.02, 2: 0.03, 3: 0.03, 4: 0.05, 5: 0.10}  # top-t% of each official checkpoint sample_model_<i>.p

GMIC_WINDOW = (2944, 1920)  # rows, cols; the same for every view
PREPROCESSING = Preprocessing(source="cropped", windows={"CC": GMIC_WINDOW, "MLO": GMIC_WINDOW}, flip="face right",
                              standardisation="per image")

GMIC_SPEC = register_model(ModelSpec(
    name="gmic",
    title="GMIC-ResNet-18: globally-aware multiple instance classifier",
    paper=("Shen Y, Wu N, Phang J, et al. An interpretable classifier for high-resolution breast cancer screening "
           "images utilizing weakly supervised localization. Medical Image Analysis 2021;68:101908."),
    license=_WEIGHTS_LICENSE,
    output_level="image",
    prediction_columns=("benign_pred", "malignant_pred"),
    preprocessing=PREPROCESSING,
    weights={str(i): WeightFile(f"sample_model_{i}.p", _LFS + f"sample_model_{i}.p", _SHA256[i], 60740040,
                                _WEIGHTS_LICENSE, config={"percent_t": PERCENT_T[i]})
             for i in range(1, 6)},
    default_variant="1",
    variants=("1", "2", "3", "4", "5", ENSEMBLE),
    build=_load_gmic_predictor,
    options=GMICOptions,
    saliency_maps=True,
    extra={"percent_t": dict(PERCENT_T), "saliency_size": (46, 30), "num_patches": 6, "patch_size": (256, 256)},
))
