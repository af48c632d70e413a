"""Synthetic data for the demo model, and a held-out check of its classification and localisation.

:func:`synthetic_split` generates exams with the project's generator, crops them and adds the window
centres of a GMIC config; :func:`heldout_metrics` runs a predictor on such a split and reports the image-level
malignant AUROC and the pointing game on malignant lesions: the maximum of the malignant saliency map,
mapped back to the original image, must fall inside a malignant lesion mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.paths import name_path
from ..data.exams import Exam, iter_images
from ..data.images import read_png
from ..evaluate.metrics import roc_auc
from ..models.gmic.modeling import GMICConfig

SYNTH_SCALE = 0.25
"""Image scale of the demo data: 832x640 images (the smallest the crop handles well)."""


@dataclass
class SyntheticSplit:
    root: Path  # generator output: images/, segmentation/, exam_list.pkl
    cropped_dir: Path
    exams: list[Exam]  # cropped, with best_center for the config's window

    @property
    def segmentation_dir(self) -> Path:
        return self.root / "segmentation"


def synthetic_split(root: str | Path, n_exams: int, seed: int, config: GMICConfig, *, workers: int = 1,
                    progress: bool = False, p_benign: float = 0.3, p_malignant: float = 0.3) -> SyntheticSplit:
    """Generate ``n_exams`` synthetic exams (seed ``seed``), crop them and add centres for ``config``."""
    from ..data.synth import SynthOptions, generate_exams
    from ..preprocess.centers import centers_dataset
    from ..preprocess.crop import crop_dataset

    root = Path(root)
    options = SynthOptions(scale=SYNTH_SCALE, p_benign=p_benign, p_malignant=p_malignant)
    exams = generate_exams(n_exams, root, seed=seed, options=options, workers=workers, progress=progress)
    cropped, failures = crop_dataset(root / "images", exams, root / "cropped", workers=workers, progress=progress)
    if failures:
        raise RuntimeError("synthetic images failed to crop: " + "; ".join(map(str, failures)))
    window = tuple(config.input_size)
    centred, failures = centers_dataset(root / "cropped", cropped, root / "data.pkl",
                                        windows={"CC": window, "MLO": window}, workers=workers, progress=progress)
    if failures:
        raise RuntimeError("synthetic images failed in the centre stage: " + "; ".join(map(str, failures)))
    return SyntheticSplit(root, root / "cropped", centred)


def saliency_peak_in_original(saliency: np.ndarray, window_borders: np.ndarray, window_padding: np.ndarray,
                              cropped_shape: tuple[int, int], window: tuple[int, int], flipped: bool,
                              window_location: tuple[int, int, int, int]) -> tuple[float, float]:
    """(row, col) in the original image of the saliency maximum.

    The map is upsampled bilinearly to the window (as ``mammoscreen localize`` does), its maximum taken
    (first in row-major order on ties), and that window pixel mapped back through the window placement,
    the mirroring and the crop box.
    """
    import cv2

    from ..preprocess.windows import WindowGeometry

    upsampled = cv2.resize(np.asarray(saliency, dtype=np.float32), (window[1], window[0]),
                           interpolation=cv2.INTER_LINEAR)
    r, c = np.unravel_index(int(np.argmax(upsampled)), upsampled.shape)
    top, bottom, left, right = (int(v) for v in window_borders)
    pad_top, pad_bottom, pad_right = (int(v) for v in window_padding)
    geometry = WindowGeometry(pad_top, pad_bottom, pad_right, top, bottom, left, right)
    row, col = geometry.to_image(np.array(r), np.array(c), window)
    if flipped:
        col = cropped_shape[1] - 1 - col
    return float(row) + window_location[0], float(col) + window_location[2]


def heldout_metrics(predictor: Any, split: SyntheticSplit, batch_size: int = 4) -> dict[str, Any]:
    """Malignant (and benign) image-level AUROC and the malignant pointing game of a GMIC predictor."""
    records = list(iter_images(split.exams))
    scores, labels, hits = [], [], []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        prepared = [predictor.prepare(r, split.cropped_dir) for r in chunk]
        for record, p, prediction in zip(chunk, prepared, predictor.predict_batch(prepared)):
            scores.append((prediction.values["benign_pred"], prediction.values["malignant_pred"]))
            labels.append((record.benign_label, record.malignant_label))
            mask = read_png(name_path(split.segmentation_dir, record.name, "_malignant.png", "image name")) > 0
            if not mask.any():
                continue
            row, col = saliency_peak_in_original(
                prediction.maps["saliency_map"][1], prediction.maps["window_borders"],
                prediction.maps["window_padding"], p.cropped_shape, predictor.config.input_size, record.flip,
                record.metadata["window_location"])
            r, c = int(round(row)), int(round(col))
            inside = 0 <= r < mask.shape[0] and 0 <= c < mask.shape[1] and bool(mask[r, c])
            hits.append(inside)
    s, t = np.array(scores), np.array(labels)
    return {"images": len(records), "malignant_images": int(t[:, 1].sum()), "benign_images": int(t[:, 0].sum()),
            "malignant_auroc": float(roc_auc(t[:, 1], s[:, 1])) if 0 < t[:, 1].sum() < len(t) else None,
            "benign_auroc": float(roc_auc(t[:, 0], s[:, 0])) if 0 < t[:, 0].sum() < len(t) else None,
            "pointing_game_malignant": float(np.mean(hits)) if hits else None,
            "pointing_game_lesion_images": len(hits)}
