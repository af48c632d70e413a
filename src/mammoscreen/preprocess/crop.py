"""Cropping a mammogram around the breast, exactly as the official NYU/GMIC preprocessing does.

The official algorithm: take the non-zero mask, erode it 100 times with the 4-connected cross (which
removes thin lines and burnt-in labels), keep the largest 4-connected component, dilate it back 100
times, and take its bounding box plus a 50-pixel buffer on both vertical sides and on the nipple side
only. It also records points later used to place the model's input window.

Running 200 binary erosion/dilation iterations at full resolution is the slow part of the official
crop. Both are equivalent to thresholding a city-block (taxicab) distance transform, which OpenCV
computes exactly (3x3 chamfer mask with weights 1 and 2 gives the exact L1 distance) in one pass:

* ``n`` erosions by the cross keep exactly the pixels whose taxicab distance to the nearest zero pixel,
  counting the area outside the image as zero (scipy's ``border_value=0``), is greater than ``n``;
* ``n`` dilations by the cross add exactly the pixels within taxicab distance ``n`` of the set (a
  monotone path between two pixels of a rectangle stays inside it, so the image border does not
  lengthen any distance).

The tests check this equivalence against scipy's iterated morphology on random masks.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Sequence

import cv2
import numpy as np

from ..core.journal import Journal
from ..core.lock import output_lock
from ..core.parallel_map import map_images
from ..core.paths import ensure_output_dir, output_path
from ..core.stages import Failure, InputWarning, StageReport
from ..data.exams import Exam, add_image_metadata, iter_images, needs_flip, save_exam_list_if_changed
from ..data.images import image_path, read_png, write_png
from .plausibility import plausibility_warnings

Facing = Literal["left", "right"]


class CropError(ValueError):
    """The image has no breast region that survives the erosion (e.g. it is all zero)."""


@dataclass(frozen=True)
class CropInfo:
    """Where the crop is and the points the window search needs, as the official exam list stores them."""

    window_location: tuple[int, int, int, int]  # (top, bottom, left, right) in the original image
    rightmost_points: tuple[tuple[int, int], int]  # ((y_start, y_end), x), cropped + flipped image
    bottommost_points: tuple[int, tuple[int, int]]  # (y, (x_start, x_end)), cropped + flipped image
    distance_from_starting_side: int

    def as_metadata(self) -> dict[str, object]:
        return {
            "window_location": self.window_location,
            "rightmost_points": self.rightmost_points,
            "bottommost_points": self.bottommost_points,
            "distance_from_starting_side": self.distance_from_starting_side,
        }


def breast_facing(view: str, horizontal_flip: str) -> Facing:
    """Direction the breast (nipple) points in the stored image: 'left' or 'right'."""
    return "left" if needs_flip(view, horizontal_flip) else "right"


def _l1_distance_to_zero(mask: np.ndarray) -> np.ndarray:
    """Taxicab distance of every pixel to the nearest zero pixel of ``mask`` (0 on zero pixels)."""
    return cv2.distanceTransform(np.ascontiguousarray(mask, dtype=bool).view(np.uint8), cv2.DIST_L1,
                                 cv2.DIST_MASK_3)


def erode(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, iterations=n)`` (cross, zero border) via a distance transform."""
    padded = np.pad(mask.astype(bool), 1, constant_values=False)
    return _l1_distance_to_zero(padded)[1:-1, 1:-1] > iterations


def dilate(mask: np.ndarray, iterations: int) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, iterations=n)`` (cross) via a distance transform."""
    mask = mask.astype(bool)
    if not mask.any():
        return mask.copy()
    return _l1_distance_to_zero(~mask) <= iterations


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Mask of the largest 4-connected component; the lowest label wins ties, as in the official code.

    OpenCV numbers components in raster order of their first pixel, as ``scipy.ndimage.label`` does,
    so "lowest label" means the same component in both.
    """
    binary = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4, ltype=cv2.CV_32S)
    if count <= 1:
        raise CropError("no non-zero region is left after erosion (is the image empty or very small?)")
    sizes = stats[1:, cv2.CC_STAT_AREA]
    return labels == 1 + int(np.argmax(sizes))


def _first_last(indicator: np.ndarray) -> tuple[int, int]:
    """Index of the first True and one past the last True of a 1-D boolean array."""
    idx = np.flatnonzero(indicator)
    return int(idx[0]), int(idx[-1]) + 1


def crop_info(image: np.ndarray, facing: Facing, iterations: int = 100, buffer_size: int = 50,
              rightmost_search_start: float = 1 / 3) -> CropInfo:
    """Compute the official crop window and landmark points for one mammogram.

    Parameters
    ----------
    image : 2-D array, the mammogram as stored (background zero).
    facing : direction the breast points in the stored image (:func:`breast_facing`).
    iterations : erosion/dilation iterations used to drop thin structures (official: 100).
    buffer_size : margin kept around the breast vertically and on the nipple side (official: 50).
    rightmost_search_start : fraction of the cropped height skipped from the top when searching for
        the rightmost (nipple-side) breast pixels (official: 1/3).
    """
    if facing not in ("left", "right"):
        raise ValueError(f"facing must be 'left' or 'right', got {facing!r}")
    if image.ndim != 2:
        raise CropError(f"expected a 2-D image, got shape {image.shape}")
    height, width = image.shape

    mask = image > 0
    if iterations > 0:
        mask = erode(mask, iterations)
    breast = largest_component(mask)
    if iterations > 0:
        breast = dilate(breast, iterations)

    top, bottom = _first_last(breast.any(axis=1))
    left, right = _first_last(breast.any(axis=0))

    # Bottom-most breast pixels, before any buffer is added.
    bottom_y = bottom - 1
    bottom_xs = np.flatnonzero(breast[bottom_y])

    top -= min(top, buffer_size)
    bottom += min(height - bottom, buffer_size)

    # Columns between the image edge on the chest-wall side and the breast: should be zero.
    distance_from_starting_side = width - right if facing == "left" else left

    # The horizontal buffer goes on the nipple side only.
    if facing == "left":
        left -= min(left, buffer_size)
    else:
        right += min(width - right, buffer_size)

    # Express the bottom-most points in the cropped image, mirrored when the breast faces left.
    bottom_y -= top
    if facing == "left":
        bottom_xs = (right - bottom_xs)[::-1]
    else:
        bottom_xs = bottom_xs - left

    # Right-most (nipple-side) breast pixels, ignoring the top third of the cropped image.
    cropped = breast[top:bottom, left:right]
    skip = int(cropped.shape[0] * rightmost_search_start)
    search = cropped[skip:]
    columns = np.flatnonzero(search.any(axis=0))
    nipple_x = int(columns[-1] if facing == "right" else columns[0])
    nipple_ys = np.flatnonzero(search[:, nipple_x]) + skip
    if facing == "left":
        nipple_x = cropped.shape[1] - nipple_x

    return CropInfo(
        window_location=(int(top), int(bottom), int(left), int(right)),
        rightmost_points=((int(nipple_ys[0]), int(nipple_ys[-1])), int(nipple_x)),
        bottommost_points=(int(bottom_y), (int(bottom_xs[0]), int(bottom_xs[-1]))),
        distance_from_starting_side=int(distance_from_starting_side),
    )


def apply_crop(image: np.ndarray, info: CropInfo) -> np.ndarray:
    """The cropped image (pixel values unchanged, original orientation)."""
    top, bottom, left, right = info.window_location
    return image[top:bottom, left:right]


# ----------------------------------------------------------------------------------------------
# The crop stage over a dataset
# ----------------------------------------------------------------------------------------------

CROPPED_EXAM_LIST = "cropped_exam_list.pkl"

ORIGINAL_SHAPE = "original_shape"
"""Exam-list key, per image, of the original (uncropped) image's (rows, cols). Not part of the official
format: mammoscreen's crop stage adds it beside the official keys, which it leaves unchanged, so that the
maps can be checked against masks of the original image (``mammoscreen localize``). Older exam lists do
not have it."""


def _crop_file(item: tuple[str, str, str], images_dir: str, output_dir: str, iterations: int,
               buffer_size: int) -> dict:
    name, view, horizontal_flip = item
    image = read_png(image_path(images_dir, name))
    try:
        info = crop_info(image, breast_facing(view, horizontal_flip), iterations, buffer_size)
    except CropError as e:
        raise CropError(f"{image_path(images_dir, name)}: cannot crop: {e}") from None
    write_png(output_path(output_dir, name + ".png"), apply_crop(image, info))
    metadata = {**info.as_metadata(), ORIGINAL_SHAPE: (int(image.shape[0]), int(image.shape[1]))}
    return {"metadata": metadata, "warnings": plausibility_warnings(image)}


def _is_crop_result(value: object) -> bool:
    return (isinstance(value, dict) and isinstance(value.get("metadata"), dict)
            and isinstance(value.get("warnings"), list) and all(isinstance(w, str) for w in value["warnings"]))


def crop_dataset(images_dir: str | Path, exams: Sequence[Exam], output_dir: str | Path, *, workers: int = 1,
                 iterations: int = 100, buffer_size: int = 50, progress: bool = True,
                 report: StageReport | None = None, pool: Executor | None = None) -> tuple[list[Exam], list[Failure]]:
    """Crop every image of ``exams`` into ``output_dir`` and write ``output_dir/cropped_exam_list.pkl``.

    Returns the cropped exam list (with ``window_location``, ``rightmost_points``, ``bottommost_points``
    and ``distance_from_starting_side`` per image, as the official code writes them, plus mammoscreen's
    ``original_shape``, see :data:`ORIGINAL_SHAPE`) and the images that could not be cropped, which are
    left out of it. Finished images are journaled with the content of their original and cropped files:
    a re-run skips them unless one of the two changed (or the image's view or flip did), and retries the
    failed ones. ``report`` (if given) receives the counts, the failures and the input warnings
    (:func:`~mammoscreen.preprocess.plausibility.plausibility_warnings`). The output directory is locked
    for the duration (:func:`~mammoscreen.core.lock.output_lock`).

    When ``cropped_exam_list.pkl`` cannot be written (disk full, read-only), an older one is removed (it
    would describe other crops), the failure is reported with ``report.output_failed`` set, and the
    images' crops stay journaled for the next run.
    """
    if Path(output_dir).resolve() == Path(images_dir).resolve():
        raise ValueError(f"the output directory {output_dir} is the images directory: cropping would overwrite "
                         "the original mammograms; choose another --output-dir")
    output_dir = ensure_output_dir(output_dir)
    report = report if report is not None else StageReport("crop")
    records = list(iter_images(exams))
    with output_lock(output_dir):
        journal = Journal(output_dir / ".crop_journal.jsonl",
                          fingerprint={"stage": "crop", "iterations": iterations, "buffer_size": buffer_size,
                                       "result": ["metadata", "warnings"]})
        func = partial(_crop_file, images_dir=str(images_dir), output_dir=str(output_dir), iterations=iterations,
                       buffer_size=buffer_size)
        results, failures = map_images(
            func, [(r.name, r.view, r.horizontal_flip) for r in records], [r.name for r in records],
            journal=journal, source_of=lambda name: image_path(images_dir, name),
            outputs_of=lambda name: [image_path(output_dir, name)], accept=_is_crop_result,
            workers=workers, desc="crop", progress=progress, report=report, pool=pool)
        report.warnings.extend(InputWarning(name, message, report.stage) for name, result in results.items()
                               for message in result["warnings"])
        cropped = add_image_metadata(exams, {name: result["metadata"] for name, result in results.items()})
        try:
            save_exam_list_if_changed(cropped, output_dir / CROPPED_EXAM_LIST)
        except OSError as error:
            with contextlib.suppress(OSError):
                (output_dir / CROPPED_EXAM_LIST).unlink()
            failure = Failure.of(CROPPED_EXAM_LIST, error, report.stage)
            failures.append(failure)
            report.failures.append(failure)
            report.output_failed = True
    return cropped, failures
