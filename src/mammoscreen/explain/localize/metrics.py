"""Localisation metrics: Dice per threshold and the pointing game on one image, and their means over images
with percentile bootstrap 95% CIs (the best-threshold Dice chooses its threshold again in every replicate)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ...evaluate.bootstrap import bootstrap_counts, percentile_interval

__all__ = ["THRESHOLD_GRID", "normalize_map", "dice_score", "dice_per_threshold", "pointing_game",
           "mean_with_interval", "best_threshold_dice"]

THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Thresholds tried on the min-max normalised map: 0.05, 0.10, ..., 0.95."""
MIN_IMAGES_FOR_CI = 2  # a bootstrap of one image only ever redraws that image


def normalize_map(saliency: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] over the values present (NaN stays NaN); a constant map gives zeros.

    Parameters
    ----------
    saliency : array of map values, NaN where there is no value.
    """
    values = np.asarray(saliency, dtype=np.float32)
    present = ~np.isnan(values)
    if not present.any():
        raise ValueError("the saliency map has no value inside the image (the window does not overlap the crop)")
    low, high = float(values[present].min()), float(values[present].max())
    if high <= low:
        return np.where(present, np.float32(0), np.float32(np.nan))
    return (values - np.float32(low)) / np.float32(high - low)


def _as_mask(mask: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {mask.shape}")
    return mask.astype(bool, copy=False) if mask.dtype != bool else mask


def dice_score(predicted: np.ndarray, target: np.ndarray) -> float:
    """Dice similarity coefficient 2|P & G| / (|P| + |G|) of two binary masks (1.0 when both are empty).

    Parameters
    ----------
    predicted : binary mask (non-zero = lesion).
    target : binary mask of the same shape.
    """
    predicted, target = _as_mask(predicted, "predicted"), _as_mask(target, "target")
    if predicted.shape != target.shape:
        raise ValueError(f"predicted mask {predicted.shape} and target mask {target.shape} differ in shape")
    total = int(predicted.sum()) + int(target.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, target).sum()) / total


def dice_per_threshold(normalized: np.ndarray, target: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Dice of ``normalized >= t`` against ``target`` for every threshold ``t`` (NaN pixels never predicted).

    Parameters
    ----------
    normalized : map with values in [0, 1] (see :func:`normalize_map`), NaN where there is no value.
    target : binary lesion mask of the same shape.
    thresholds : thresholds in [0, 1].
    """
    normalized = np.asarray(normalized, dtype=np.float32)
    target = _as_mask(target, "target")
    if normalized.shape != target.shape:
        raise ValueError(f"map {normalized.shape} and mask {target.shape} differ in shape")
    thresholds = _check_thresholds(thresholds)
    # Sorting once gives |P| and |P & G| for every threshold by binary search instead of one pass each.
    values = np.where(np.isnan(normalized), -np.inf, normalized).ravel()
    all_sorted, in_lesion = np.sort(values), np.sort(values[target.ravel()])
    t = thresholds.astype(np.float32)
    predicted = all_sorted.size - np.searchsorted(all_sorted, t, side="left")
    overlap = in_lesion.size - np.searchsorted(in_lesion, t, side="left")
    total = predicted + in_lesion.size
    return np.where(total > 0, 2.0 * overlap / np.maximum(total, 1), 1.0)


def pointing_game(saliency: np.ndarray, target: np.ndarray) -> tuple[bool, tuple[int, int]]:
    """Whether the map's maximum lies inside the lesion mask, and its (row, col).

    Ties go to the first maximum in row-major order; NaN pixels are ignored.

    Parameters
    ----------
    saliency : map in the frame of ``target``, NaN where there is no value.
    target : binary lesion mask of the same shape.
    """
    saliency = np.asarray(saliency, dtype=np.float32)
    target = _as_mask(target, "target")
    if saliency.shape != target.shape:
        raise ValueError(f"map {saliency.shape} and mask {target.shape} differ in shape")
    if np.isnan(saliency).all():
        raise ValueError("the saliency map has no value inside the image (the window does not overlap the crop)")
    row, col = np.unravel_index(int(np.nanargmax(saliency)), saliency.shape)
    return bool(target[row, col]), (int(row), int(col))


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or np.isnan(t).any() or (t < 0).any() or (t > 1).any():
        raise ValueError(f"thresholds must be a non-empty list of numbers in [0, 1], got {list(thresholds)}")
    return t


# ----------------------------------------------------------------------------------------------
# Over images: means, best threshold, bootstrap intervals
# ----------------------------------------------------------------------------------------------

def _replicate_means(values: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of the column means of ``values`` (n_images, k): shape (n_bootstrap, k)."""
    n = values.shape[0]
    blocks = [counts @ values / n for counts in bootstrap_counts(n, n_bootstrap, np.random.RandomState(seed))]
    return np.concatenate(blocks, axis=0)


def _interval(replicates: np.ndarray | None) -> tuple[float | None, float | None]:
    if replicates is None:
        return None, None
    return percentile_interval(replicates, 0.95)


def _check_bootstrap(n_bootstrap: int, seed: int) -> None:
    for name, value in (("n_bootstrap", n_bootstrap), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def mean_with_interval(values: Sequence[float], n_bootstrap: int = 2000,
                       seed: int = 0) -> tuple[float, float | None, float | None]:
    """Mean over images with a percentile bootstrap 95% CI (None without replicates or with < 2 images).

    Parameters
    ----------
    values : one value per image.
    n_bootstrap : replicates (0: no interval).
    seed : seed of the resampling (``numpy.random.RandomState``).
    """
    _check_bootstrap(n_bootstrap, seed)
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or np.isnan(v).any():
        raise ValueError("mean_with_interval needs at least one value and no NaN")
    if n_bootstrap == 0 or v.size < MIN_IMAGES_FOR_CI:
        return float(v.mean()), None, None
    low, high = _interval(_replicate_means(v[:, None], n_bootstrap, seed)[:, 0])
    return float(v.mean()), low, high


def best_threshold_dice(dice_table: np.ndarray, thresholds: Sequence[float], n_bootstrap: int = 2000,
                        seed: int = 0) -> tuple[float, float, float | None, float | None]:
    """The threshold with the highest mean Dice, that mean, and its bootstrap 95% CI.

    The threshold is chosen again in every replicate (the interval covers that choice). Ties go to the
    lowest threshold.

    Parameters
    ----------
    dice_table : (n_images, n_thresholds) Dice of each image at each threshold.
    thresholds : the thresholds of the columns.
    n_bootstrap : replicates (0: no interval).
    seed : seed of the resampling.
    """
    _check_bootstrap(n_bootstrap, seed)
    table = np.asarray(dice_table, dtype=np.float64)
    t = _check_thresholds(thresholds)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] != t.size:
        raise ValueError(f"dice_table must have shape (n_images >= 1, {t.size}), got {table.shape}")
    means = table.mean(axis=0)
    best = int(np.argmax(means))
    if n_bootstrap == 0 or table.shape[0] < MIN_IMAGES_FOR_CI:
        return float(t[best]), float(means[best]), None, None
    low, high = _interval(_replicate_means(table, n_bootstrap, seed).max(axis=1))
    return float(t[best]), float(means[best]), low, high
