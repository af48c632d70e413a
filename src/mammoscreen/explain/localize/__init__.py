"""Localisation metrics of saliency maps against lesion masks: Dice and the pointing game.

A saliency map lives in the model's input window, cut from the cropped image after mirroring it so the
breast faces right. Everything here compares maps and lesion masks in the **original image frame**: the map
is brought to the window's size, placed back into the cropped image (undoing the window's padding and
position), un-mirrored and shifted by the crop box. Pixels of the original image that the window did not cover
get no value (NaN): the model never saw them, so they are never predicted as lesion and never the saliency
maximum.

Masks may be given in the three frames the figures accept (``preprocess.windows.align_to_window``): the
original image, the cropped image, or the model window (the official GMIC segmentation convention); they are
brought to the original frame first (:func:`mask_to_original`; a window-frame mask with the map's own inverse
mapping), so there is one metric definition whatever the masks' frame.

Two map layouts are read, told apart by their keys (:func:`map_layout`); both use the same window geometry
and the same inverse mapping (:func:`window_to_original`), they differ only in how the map reaches the
window's size (:func:`map_to_window`):

* ``gmic`` (GMIC, ``gmic_demo``): ``saliency_map`` is a low-resolution grid stretched over the whole window;
  it is upsampled bilinearly (pixel centres aligned, :func:`upsample_to_window`).
* ``glam`` (``nyu_glam``, recognised by ``saliency_map_stride``): ``saliency_map`` holds every ``s``-th pixel
  of GLAM's full-resolution map: sample ``[i, j]`` is window pixel ``(s*i, s*j)``. GLAM's map is constant on
  the ``s x s`` blocks starting at multiples of ``s`` (for the published model, ``s`` = 4), so each sample
  stands for the block ``[s*i, s*i+s) x [s*j, s*j+s)`` and the window map is the samples repeated ``s``
  times along each axis (:func:`expand_strided_map`) - exactly the full map, without interpolation.

Metrics, per class (the benign map against benign masks, the malignant map against malignant masks), over
the images that have a lesion of that class:

* Dice (DSC) ``2|P & G| / (|P| + |G|)`` of the map thresholded at ``t`` after min-max normalisation per
  image. The threshold is the one of :data:`THRESHOLD_GRID` with the highest mean Dice over the images of
  the class (reported with it), and optionally a fixed user-given threshold.
* Pointing game: whether the location of the map's maximum lies inside a lesion of that class.
* Percentile bootstrap 95% CIs over images; for the best-threshold Dice the threshold is chosen again in
  every replicate, so the interval includes the uncertainty of that choice.

The package follows the data: :mod:`.geometry` (window -> original image), :mod:`.metrics` (Dice,
pointing game, bootstrap CIs), :mod:`.map_files` (reading maps and masks), :mod:`.run` (the batch).
See ``docs/localization.md``.
"""

from .geometry import MapPlacement, expand_strided_map, map_to_window, upsample_to_window, window_to_original
from .map_files import (CLASSES, MAP_LAYOUTS, MASK_FRAMES, MissingPlacementError, map_layout, mask_frame,
                        mask_to_original, read_map_file)
from .metrics import (THRESHOLD_GRID, best_threshold_dice, dice_per_threshold, dice_score, mean_with_interval,
                      normalize_map, pointing_game)
from .run import LOCALIZATION_JSON, PER_IMAGE_CSV, LocalizationResult, format_localization, localize_maps

__all__ = [
    "CLASSES", "THRESHOLD_GRID", "LOCALIZATION_JSON", "PER_IMAGE_CSV", "MapPlacement", "LocalizationResult",
    "MAP_LAYOUTS", "MASK_FRAMES", "MissingPlacementError", "map_layout", "mask_frame", "mask_to_original",
    "upsample_to_window", "expand_strided_map", "map_to_window", "window_to_original",
    "normalize_map", "dice_score", "dice_per_threshold",
    "pointing_game", "mean_with_interval", "best_threshold_dice", "read_map_file", "localize_maps",
    "format_localization",
]
