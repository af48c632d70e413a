"""The optimal window centre: where the model's fixed-size input window sits on a cropped mammogram.

Reproduces the official NYU window search (``get_optimal_centers.py``). On the cropped image, mirrored
so the breast faces right:

* CC views: the window's right edge is pinned one column past the nipple-side breast pixel
  (``rightmost_points``) and the vertical position that covers the most non-zero pixels is chosen
  (ties: closest to the image centre);
* MLO views: the window's bottom-right corner is pinned at the bottom-most breast row and the
  nipple-side column, so no search is needed.

The centre may lie outside the image (negative column) when the crop is narrower than the window;
the window extraction pads such images.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..core.journal import Journal
from ..core.lock import output_lock
from ..core.parallel_map import map_images
from ..core.stages import Failure, StageReport
from ..data.exams import Exam, ExamListError, add_image_metadata, iter_images, save_exam_list_if_changed, view_angle
from ..data.images import image_path, read_png
from .windows import flip_to_face_right


def _window_pixel_counts(nonzero: np.ndarray, centers: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Number of non-zero pixels inside the window at each centre, with the official clipping rule.

    A window sticking out at the top/left is shifted inside the image (its far edge moves by the same
    offset); one sticking out at the bottom/right is clipped.
    """
    shape = np.array(nonzero.shape)
    half = window // 2
    rest = window - half
    top_left = centers - half
    offset = np.clip(-top_left, 0, None)
    top_left = np.clip(top_left, 0, None)
    bottom_right = np.minimum(centers + rest + offset, shape)
    integral = np.zeros((shape[0] + 1, shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = nonzero.cumsum(axis=0, dtype=np.int64).cumsum(axis=1)
    (t, l), (b, r) = top_left.T, bottom_right.T
    return integral[b, r] - integral[t, r] - integral[b, l] + integral[t, l]


def optimal_center(image: np.ndarray, view: str, rightmost_x: int, bottommost_y: int,
                   window: tuple[int, int]) -> tuple[int, int]:
    """The official best window centre (row, col) for one cropped image.

    Parameters
    ----------
    image : the cropped mammogram, already mirrored so the breast faces right.
    view : 'L-CC', 'R-CC', 'L-MLO' or 'R-MLO' (only CC/MLO matters).
    rightmost_x : column of the nipple-side breast pixels (``rightmost_points[1]``).
    bottommost_y : row of the bottom-most breast pixels (``bottommost_points[0]``).
    window : (rows, cols) of the model's input window.
    """
    window_arr = np.array(window, dtype=np.int64)
    shape = np.array(image.shape, dtype=np.int64)
    half = window_arr // 2
    center = shape // 2

    angle = view_angle(view)
    if angle == "MLO":
        # Pin the bottom-right corner; a bottom row beyond the last non-zero row (within the window's
        # width from the right edge) is pulled up to it.
        rows_with_tissue = np.flatnonzero(np.any(image[:, -window[1]:] != 0, axis=1))
        if rows_with_tissue.size:
            bottommost_y = min(int(rows_with_tissue[-1]), bottommost_y)
        corner = np.array([bottommost_y, rightmost_x]) - half
        return int(corner[0] - 1), int(corner[1] - 1)
    if angle != "CC":
        raise ValueError(f"unknown view {view!r}: expected a CC or MLO view")

    # Candidate rows: every centre that keeps the window inside the image vertically, or the
    # image centre if the image is shorter than the window.
    lowest = half[0]
    highest = shape[0] - (window_arr[0] - half[0])
    if lowest >= highest:
        rows = np.array([center[0]])
    else:
        rows = np.arange(lowest, highest + 1)
    col = rightmost_x - half[1] - 1
    if rows.size == 1:
        return int(rows[0]), int(col)

    centers = np.stack([rows, np.full_like(rows, col)], axis=1)
    counts = _window_pixel_counts(image > 0, centers, window_arr)
    best = np.flatnonzero(counts == counts.max())
    if best.size > 1:
        distance = ((centers[best] - center) ** 2).sum(axis=1)
        best = best[np.argmin(distance)]
    else:
        best = best[0]
    return int(centers[best][0]), int(centers[best][1])


# ----------------------------------------------------------------------------------------------
# The centre stage over a dataset
# ----------------------------------------------------------------------------------------------

def _center_file(item: tuple[str, str, str, int, int, tuple[int, int]], images_dir: str) -> dict:
    name, view, horizontal_flip, rightmost_x, bottommost_y, window = item
    image = flip_to_face_right(read_png(image_path(images_dir, name)), view, horizontal_flip)
    return {"best_center": optimal_center(image, view, rightmost_x, bottommost_y, tuple(window))}


def centers_dataset(cropped_dir: str | Path, exams: Sequence[Exam], output_path: str | Path | None = None, *,
                    windows: Mapping[str, tuple[int, int]], workers: int = 1,
                    progress: bool = True, report: StageReport | None = None,
                    pool: Executor | None = None) -> tuple[list[Exam], list[Failure]]:
    """Add ``best_center`` to every image of a cropped exam list; write it to ``output_path`` if given.

    ``windows`` maps the view angle ('CC', 'MLO') to the model's input window (rows, cols): the ``windows`` of
    the model's preprocessing record (:class:`~mammoscreen.models.preprocessing.Preprocessing`); this stage
    knows no model's window itself.
    Images that fail (unreadable) are reported and left out. With ``output_path``, finished images are
    journaled beside it with the content of their cropped file and their crop metadata, so a re-run
    recomputes only images whose crop changed, and the folder of ``output_path`` is locked for the
    duration. When the exam list cannot be written, an older one is removed and ``report.output_failed``
    set (see :func:`~mammoscreen.preprocess.crop.crop_dataset`).
    """
    report = report if report is not None else StageReport("centres")
    records = list(iter_images(exams))
    for r in records:
        for key in ("rightmost_points", "bottommost_points"):
            if key not in r.metadata:
                raise ExamListError(f"image {r.name!r} (exam {r.exam_index}, {r.view}) has no {key!r}: the exam "
                                    "list must come from the crop stage ('mammoscreen crop')")
    items = [(r.name, r.view, r.horizontal_flip, r.metadata["rightmost_points"][1],
              r.metadata["bottommost_points"][0], tuple(windows[r.angle])) for r in records]
    names = [r.name for r in records]
    failures: list[Failure] = []

    def run(journal: Journal | None) -> dict[str, dict]:
        results, found = map_images(partial(_center_file, images_dir=str(cropped_dir)), items, names,
                                    journal=journal, source_of=lambda name: image_path(cropped_dir, name),
                                    accept=lambda value: isinstance(value, dict) and "best_center" in value,
                                    workers=workers, desc="centres", progress=progress, report=report,
                                    pool=pool)
        failures.extend(found)
        return results

    if output_path is None:
        return add_image_metadata(exams, run(None)), failures
    output_path = Path(output_path)
    with output_lock(output_path.parent):
        journal = Journal(output_path.parent / f".{output_path.name}.journal.jsonl",
                          fingerprint={"stage": "centers", "windows": {k: list(v) for k, v in windows.items()}})
        with_centers = add_image_metadata(exams, run(journal))
        try:
            save_exam_list_if_changed(with_centers, output_path)
        except OSError as error:
            with contextlib.suppress(OSError):
                output_path.unlink()
            failures.append(Failure.of(output_path.name, error, report.stage))
            report.failures.append(failures[-1])
            report.output_failed = True
    return with_centers, failures
