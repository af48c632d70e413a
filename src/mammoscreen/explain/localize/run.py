"""The batch: every maps file of a directory against its lesion masks; writes ``localization.json`` and
``localization_per_image.csv`` (what ``mammoscreen localize`` runs)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ... import __version__
from ...core.stages import Failure, describe_error
from ...core.files import write_json_atomic, write_text_atomic
from ...data.exams import iter_images, load_exam_list
from .geometry import map_to_window, window_to_original
from .map_files import CLASSES, MASK_FRAMES, MissingPlacementError, _mask_path, _read_map_file, _read_mask
from .metrics import (THRESHOLD_GRID, _check_bootstrap, best_threshold_dice, dice_per_threshold, mean_with_interval,
                      normalize_map, pointing_game)

__all__ = ["LOCALIZATION_JSON", "PER_IMAGE_CSV", "ImageScore", "LocalizationResult", "localize_maps",
           "format_localization"]

LOCALIZATION_JSON = "localization.json"
PER_IMAGE_CSV = "localization_per_image.csv"
PER_IMAGE_COLUMNS = ("image", "class", "lesion_pixels", "threshold", "dice", "fixed_threshold", "dice_fixed",
                     "hit", "max_row", "max_col", "mask_frame")

@dataclass
class ImageScore:
    """One image's localisation of one class."""

    image: str
    kind: str  # 'benign' or 'malignant'
    lesion_pixels: int
    dice_per_threshold: np.ndarray  # over THRESHOLD_GRID
    dice_fixed: float | None
    hit: bool
    max_location: tuple[int, int]  # (row, col) of the map maximum in the original image
    mask_frame: str = "original"  # the frame the mask file was in (MASK_FRAMES); scored in the original frame


@dataclass
class LocalizationResult:
    """What :func:`localize_maps` computed and wrote."""

    summary: dict[str, Any]  # the content of localization.json
    rows: list[dict[str, Any]]  # the rows of localization_per_image.csv
    skipped: list[Failure]
    n_maps: int
    json_path: Path
    csv_path: Path
    classes: dict[str, dict[str, Any]] = field(init=False)

    def __post_init__(self) -> None:
        self.classes = self.summary["classes"]


def _score_image(path: Path, image: str, segmentation_dir: Path, image_info: Mapping[str, Any] | None,
                 threshold: float | None) -> tuple[list[ImageScore], str]:
    mask_files = {kind: _mask_path(segmentation_dir, image, kind) for kind in CLASSES}
    if not any(p.is_file() for p in mask_files.values()):
        raise ValueError(f"no mask: neither {mask_files['benign'].name} nor {mask_files['malignant'].name} "
                         f"in {segmentation_dir}")
    saliency, placement, layout = _read_map_file(path, image_info)
    scores = []
    for channel, kind in enumerate(CLASSES):
        if not mask_files[kind].is_file():
            continue  # official convention: no file = no lesion of that class
        mask, frame = _read_mask(mask_files[kind], placement)
        if not mask.any():
            continue  # an empty mask (the synthetic data writes one per class) = no lesion
        original = window_to_original(map_to_window(saliency[channel], placement), placement, mask.shape)
        normalized = normalize_map(original)
        hit, location = pointing_game(original, mask)
        dice_fixed = None
        if threshold is not None:
            dice_fixed = float(dice_per_threshold(normalized, mask, [threshold])[0])
        scores.append(ImageScore(image, kind, int(mask.sum()), dice_per_threshold(normalized, mask, THRESHOLD_GRID),
                                 dice_fixed, hit, location, frame))
    return scores, layout


def _class_summary(scores: list[ImageScore], n_bootstrap: int, seed: int,
                   threshold: float | None) -> tuple[dict[str, Any], float | None]:
    if not scores:
        empty = {"value": None, "ci_low": None, "ci_high": None}
        return {"n_images": 0, "threshold": None, "dice": dict(empty), "pointing_game": dict(empty),
                "dice_at_fixed_threshold": None if threshold is None else {"threshold": threshold, **empty}}, None
    table = np.stack([s.dice_per_threshold for s in scores])
    best, dice, dice_low, dice_high = best_threshold_dice(table, THRESHOLD_GRID, n_bootstrap, seed)
    hits, hit_low, hit_high = mean_with_interval([float(s.hit) for s in scores], n_bootstrap, seed)
    summary = {"n_images": len(scores), "threshold": best,
               "dice": {"value": dice, "ci_low": dice_low, "ci_high": dice_high},
               "pointing_game": {"value": hits, "ci_low": hit_low, "ci_high": hit_high},
               "dice_at_fixed_threshold": None}
    if threshold is not None:
        value, low, high = mean_with_interval([s.dice_fixed for s in scores], n_bootstrap, seed)
        summary["dice_at_fixed_threshold"] = {"threshold": threshold, "value": value, "ci_low": low, "ci_high": high}
    return summary, best


def _csv_text(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=PER_IMAGE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return out.getvalue()


def _exam_list_index(exam_list: str | Path) -> dict[str, dict[str, Any]]:
    index = {}
    for record in iter_images(load_exam_list(exam_list)):
        info = {"view": record.view, "horizontal_flip": record.horizontal_flip}
        for key in ("window_location", "original_shape"):  # absent before cropping / from older crops
            if key in record.metadata:
                info[key] = record.metadata[key]
        index[record.name] = info
    return index


def localize_maps(maps_dir: str | Path, segmentation_dir: str | Path, output_dir: str | Path, *,
                  exam_list: str | Path | None = None, n_bootstrap: int = 2000, seed: int = 0,
                  threshold: float | None = None, log: Callable[[str], None] | None = print) -> LocalizationResult:
    """Dice and pointing game of every map in ``maps_dir`` against its masks; writes localization.json and
    localization_per_image.csv to ``output_dir``.

    Parameters
    ----------
    maps_dir : the ``maps/`` directory of ``predict --save-maps`` (``<image>.npz``) of one model: GMIC
        (``gmic``, ``gmic_demo``) or GLAM (``nyu_glam``) layout, told apart by their keys (:func:`map_layout`).
    segmentation_dir : lesion masks ``<image>_benign.png`` / ``<image>_malignant.png`` (non-zero = lesion) in
        the frame of the original image, of the cropped image or of the model window (:func:`mask_frame`, tried
        in that order); a missing or empty mask means no lesion of that class.
    output_dir : where the two output files go (atomically).
    exam_list : the cropped exam list, needed only for maps files without ``view``/``window_location``
        (it also supplies ``original_shape`` to files without it, when the exam list records it).
    n_bootstrap : bootstrap replicates for the 95% CIs (0: none).
    seed : seed of the bootstrap; each class is resampled with its own generator seeded with it.
    threshold : optional fixed threshold in [0, 1] on the normalised map, reported besides the best one.
    log : receives one line per skipped file (None: silent).

    A mask whose size is none of the recorded ``original_shape``, ``cropped_shape`` and the window's is refused;
    without a recorded ``original_shape`` (older files) a mask of neither the cropped nor the window size is
    taken as an original-frame mask when it contains the crop box.
    ``map_layouts`` in localization.json counts the files of each layout that were read, ``mask_frames`` the
    scored masks per frame; the per-image CSV gives each mask's frame (``mask_frame``).
    A file that cannot be used (no mask, unreadable, wrong size, another layout than the directory's
    first readable file...) is skipped and listed with its reason
    in ``LocalizationResult.skipped`` and in localization.json; it never stops the batch.
    """
    maps_dir, segmentation_dir, output_dir = Path(maps_dir), Path(segmentation_dir), Path(output_dir)
    _check_bootstrap(n_bootstrap, seed)
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a number in [0, 1] (on the min-max normalised map), got {threshold!r}")
        threshold = float(threshold)
    if not maps_dir.is_dir():
        raise FileNotFoundError(f"maps directory not found: {maps_dir} (the maps/ folder written by "
                                "'mammoscreen predict --save-maps')")
    if not segmentation_dir.is_dir():
        raise FileNotFoundError(f"segmentation directory not found: {segmentation_dir}")
    map_files = sorted(maps_dir.rglob("*.npz"))
    if not map_files:
        raise FileNotFoundError(f"no .npz maps in {maps_dir}: run 'mammoscreen predict --save-maps' first")
    image_infos = _exam_list_index(exam_list) if exam_list is not None else None
    say = log or (lambda message: None)

    scores: list[ImageScore] = []
    skipped: list[Failure] = []
    layouts: dict[str, int] = {}
    for path in map_files:
        image = path.relative_to(maps_dir).with_suffix("").as_posix()
        info = None if image_infos is None else image_infos.get(image)
        try:
            try:
                found, layout = _score_image(path, image, segmentation_dir, info, threshold)
                if layouts and layout not in layouts:
                    raise ValueError(f"{path}: a {layout.upper()} maps file among {'/'.join(layouts).upper()} maps; "
                                     "one model's maps per directory (localise each model's maps/ separately)")
                layouts[layout] = layouts.get(layout, 0) + 1
                scores.extend(found)
            except MissingPlacementError:
                if image_infos is None:
                    raise
                raise ValueError(f"{path}: the file has no view/window_location and image {image!r} is not in the "
                                 f"exam list {exam_list}") from None
        except Exception as e:  # one bad file never stops the batch; it is reported with its reason
            failure = Failure(image, describe_error(e))
            skipped.append(failure)
            say(f"skipped {failure}")

    classes, rows = {}, []
    for kind in CLASSES:
        of_class = [s for s in scores if s.kind == kind]
        classes[kind], best = _class_summary(of_class, n_bootstrap, seed, threshold)
        for s in of_class:
            best_index = THRESHOLD_GRID.index(best)
            rows.append({"image": s.image, "class": kind, "lesion_pixels": s.lesion_pixels, "threshold": best,
                         "dice": float(s.dice_per_threshold[best_index]), "fixed_threshold": threshold,
                         "dice_fixed": s.dice_fixed, "hit": int(s.hit), "max_row": s.max_location[0],
                         "max_col": s.max_location[1], "mask_frame": s.mask_frame})
    summary = {
        "tool": "mammoscreen localize", "version": __version__,
        "maps_dir": str(maps_dir), "segmentation_dir": str(segmentation_dir),
        "n_bootstrap": n_bootstrap, "seed": seed,
        "map_layouts": layouts,
        "mask_frames": {frame: sum(s.mask_frame == frame for s in scores) for frame in MASK_FRAMES},
        "normalization": "min-max per image over the pixels the window covers",
        "threshold_grid": list(THRESHOLD_GRID),
        "classes": classes,
        "n_maps": len(map_files), "n_skipped": len(skipped),
        "skipped": [{"image": f.name, "reason": f.reason} for f in skipped],
    }
    json_path, csv_path = output_dir / LOCALIZATION_JSON, output_dir / PER_IMAGE_CSV
    write_json_atomic(json_path, summary)
    write_text_atomic(csv_path, _csv_text(rows))
    return LocalizationResult(summary, rows, skipped, len(map_files), json_path, csv_path)


def format_localization(result: LocalizationResult) -> str:
    """A small text table of the per-class results (what ``mammoscreen localize`` prints)."""

    def cell(metric: Mapping[str, Any] | None) -> str:
        if metric is None or metric["value"] is None:
            return "-"
        if metric["ci_low"] is None:
            return f"{metric['value']:.3f}"
        return f"{metric['value']:.3f} ({metric['ci_low']:.3f}-{metric['ci_high']:.3f})"

    fixed = any(c["dice_at_fixed_threshold"] is not None for c in result.classes.values())
    header = ["class", "images", "threshold", "Dice (95% CI)", "pointing game (95% CI)"]
    if fixed:
        header.append("Dice at fixed threshold")
    lines = [header]
    for kind in CLASSES:
        c = result.classes[kind]
        row = [kind, str(c["n_images"]), "-" if c["threshold"] is None else f"{c['threshold']:.2f}",
               cell(c["dice"]), cell(c["pointing_game"])]
        if fixed:
            f = c["dice_at_fixed_threshold"]
            row.append(f"{cell(f)} at {f['threshold']:.2f}")
        lines.append(row)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines) + "\n"
    text += f"{result.n_maps} maps, {len(result.skipped)} skipped\n"
    return text
