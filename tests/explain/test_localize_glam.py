"""Localisation of GLAM (nyu_glam) maps: the strided map convention, the inverse mapping, hand-made cases,
bad files and the CLI, on synthetic maps files written as GLAMPredictor writes them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mammoscreen.cli import main
from mammoscreen.data.exams import VIEWS
from mammoscreen.data.images import write_png
from mammoscreen.explain.localize import (
    THRESHOLD_GRID,
    expand_strided_map,
    localize_maps,
    map_layout,
    map_to_window,
    read_map_file,
    window_to_original,
)
from mammoscreen.models.gmic.modeling import saliency_to_input_coordinates
from mammoscreen.models.nyu_glam.modeling import high_resolution_saliency
from mammoscreen.preprocess.windows import ImageOrigin, align_to_window, placement_arrays, window_geometry


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def write_glam_maps(path: Path, samples: np.ndarray, stride: int, geometry, cropped_shape, origin: ImageOrigin,
                    **overrides) -> Path:
    """A maps file with the keys GLAMPredictor writes for localisation (plus one of its other maps)."""
    arrays = {"saliency_map": np.asarray(samples, dtype=np.float32), "saliency_map_stride": np.int64(stride),
              "saliency_map_global": np.zeros((2, 4, 3), np.float32), "y_global": np.array([0.1, 0.2], np.float32)}
    arrays.update(placement_arrays(geometry, cropped_shape, origin))
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


# ----------------------------------------------------------------------------------------------
# The convention: sample [i, j] is window pixel (s*i, s*j) and stands for the s x s block there
# ----------------------------------------------------------------------------------------------

def test_strided_samples_are_repeated_over_their_block_by_hand():
    samples = np.array([[1.0, 2.0], [3.0, 4.0]])
    # A 3x4 window sampled every 2 pixels: rows 0, 2 and columns 0, 2; the last row block is partial.
    np.testing.assert_array_equal(expand_strided_map(samples, 2, (3, 4)),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4]])
    np.testing.assert_array_equal(expand_strided_map(samples, 1, (2, 2)), samples)
    with pytest.raises(ValueError, match="must have shape 2x3"):
        expand_strided_map(samples, 2, (3, 5))  # 5 columns sampled every 2 pixels make 3 samples


def test_expanding_the_stored_map_gives_back_glams_full_resolution_map():
    # A GLAM-shaped case (256x128 input, 16x8 global map, 64x64 crops with 16x16 local maps), crops placed
    # where the model places them (global-grid cells scaled to input pixels), one clipped at the border.
    rng = np.random.default_rng(1)
    global_map = torch.from_numpy(rng.random((1, 2, 16, 8)).astype(np.float32))
    local = torch.from_numpy(rng.random((1, 2, 2, 16, 16)).astype(np.float32))
    cells = torch.tensor([[[3, 1], [14, 6]]])
    locations = saliency_to_input_coordinates(cells, (16, 8), (256, 128))
    assert locations.tolist() == [[[48, 16], [224, 96]]]
    full = high_resolution_saliency(global_map, local, locations, (256, 128), (64, 64)).numpy()[0]
    stored = high_resolution_saliency(global_map, local, locations, (256, 128), (64, 64), stride=4).numpy()[0]
    assert stored.shape == (2, 64, 32)
    for channel in range(2):
        np.testing.assert_array_equal(expand_strided_map(stored[channel], 4, (256, 128)), full[channel])


def test_layout_is_told_from_the_keys():
    assert map_layout(["saliency_map", "saliency_map_stride", "y_global"]) == "glam"
    assert map_layout(["saliency_map", "patch_attention", "window_borders"]) == "gmic"
    with pytest.raises(ValueError, match="without its high-resolution 'saliency_map'"):
        map_layout(["saliency_map_global", "saliency_map_stride"])
    with pytest.raises(ValueError, match="without 'saliency_map_stride'"):
        map_layout(["saliency_map_global", "saliency_map"])
    with pytest.raises(ValueError, match="not a GMIC or GLAM maps file"):
        map_layout(["probabilities"])


# ----------------------------------------------------------------------------------------------
# The inverse against the forward path, on random geometries
# ----------------------------------------------------------------------------------------------

def _expected_original(samples, stride, geometry, origin, cropped_shape):
    """Pixel by pixel: which sample does each original pixel see (NaN where the window does not reach)?"""
    top, bottom, left, right = origin.crop_location
    rows, cols = np.indices(origin.original_shape)
    crop_r, crop_c = rows - top, cols - left
    flipped = (origin.view[0] == "R") == (origin.horizontal_flip == "NO")
    facing_right_c = cropped_shape[1] - 1 - crop_c if flipped else crop_c
    win_r, win_c = crop_r + geometry.pad_top - geometry.top, facing_right_c - geometry.left
    inside = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right) & (win_r >= 0)
              & (win_r < geometry.bottom - geometry.top) & (win_c >= 0) & (win_c < geometry.right - geometry.left))
    r, c = np.where(inside, win_r // stride, 0), np.where(inside, win_c // stride, 0)
    return np.where(inside, samples[r, c], np.nan)


def test_glam_maps_map_back_exactly_as_the_forward_path_cut_the_window(tmp_path):
    rng = np.random.default_rng(5)
    seen = {"pad_top": 0, "pad_bottom": 0, "pad_right": 0, "unpadded": 0, "flipped": 0, "unflipped": 0,
            "partial_block": 0}
    for case in range(120):
        stride = int(rng.integers(1, 6))
        crop_h, crop_w = int(rng.integers(20, 70)), int(rng.integers(15, 60))
        top, left = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        original_shape = (top + crop_h + int(rng.integers(0, 10)), left + crop_w + int(rng.integers(0, 10)))
        window = (int(rng.integers(10, 90)), int(rng.integers(8, 75)))
        if window == original_shape:  # align_to_window would take the array as already window-aligned
            window = (window[0] + 1, window[1])
        view, flip = VIEWS[int(rng.integers(0, 4))], ("YES", "NO")[int(rng.integers(0, 2))]
        center = (int(rng.integers(-10, crop_h + 10)), int(rng.integers(-10, crop_w + 10)))
        # As GLAMPredictor.prepare places its window (the official loader's seeded, zero-noise draws).
        geometry = window_geometry((crop_h, crop_w), window, center, view, rng=np.random.RandomState(0))
        origin = ImageOrigin(view, flip, (top, top + crop_h, left, left + crop_w), original_shape)
        samples = rng.random((2, _ceil_div(window[0], stride), _ceil_div(window[1], stride))).astype(np.float32)
        path = write_glam_maps(tmp_path / f"case{case}.npz", samples, stride, geometry, (crop_h, crop_w), origin)

        saliency, placement = read_map_file(path)
        assert placement.map_stride == stride and placement.original_shape == original_shape
        coverage = align_to_window(np.ones(original_shape, np.float32), view, flip, geometry, window,
                                   (crop_h, crop_w), origin.crop_location)
        for channel in range(2):
            window_map = map_to_window(saliency[channel], placement)
            back = window_to_original(window_map, placement)
            np.testing.assert_array_equal(back, _expected_original(samples[channel], stride, geometry, origin,
                                                                   (crop_h, crop_w)))
            # Forward again (flip, crop box, window with padding) recovers the full map wherever it sees image.
            again = align_to_window(np.nan_to_num(back, nan=0.0), view, flip, geometry, window, (crop_h, crop_w),
                                    origin.crop_location)
            np.testing.assert_array_equal(again, window_map * coverage)
        g = geometry
        seen["pad_top"] += g.pad_top > 0
        seen["pad_bottom"] += g.pad_bottom > 0
        seen["pad_right"] += g.pad_right > 0
        seen["unpadded"] += g.pad_top == g.pad_bottom == g.pad_right == 0
        seen["flipped" if (view[0] == "R") == (flip == "NO") else "unflipped"] += 1
        seen["partial_block"] += window[0] % stride != 0 or window[1] % stride != 0
    assert all(count >= 5 for count in seen.values()), seen


# ----------------------------------------------------------------------------------------------
# A hand-computed case through the batch and the CLI
# ----------------------------------------------------------------------------------------------

def _hand_case(root: Path, image: str = "r_cc") -> tuple[Path, Path]:
    """A 40x30 right CC image cropped to rows 5-36, columns 4-27 (32x24), mirrored (horizontal_flip NO);
    the window is the whole crop; the map is sampled every 4 pixels (8x6 samples).

    malignant: sample [2, 1] = 1 -> window rows 8-11, columns 4-7 -> mirrored crop columns 16-19 ->
        original rows 13-16, columns 20-23 (16 pixels). Lesion: rows 13-18, columns 20-23 (24 pixels).
        Dice 2*16 / (16 + 24) = 0.8 at every threshold of the grid; maximum at (13, 20): a hit.
    benign: sample [0, 0] = 1 -> window rows 0-3, columns 0-3 -> crop columns 20-23 -> original rows 5-8,
        columns 24-27. Lesion: rows 20-23, columns 8-11. Dice 0; maximum at (5, 24): a miss.
    """
    maps, masks = root / "maps", root / "segmentation"
    geometry = window_geometry((32, 24), (32, 24), (16, 12), "R-CC", rng=np.random.RandomState(0))
    assert geometry.borders == (0, 32, 0, 24) and geometry.pad_top == geometry.pad_right == 0
    samples = np.zeros((2, 8, 6), np.float32)
    samples[0, 0, 0] = 1.0
    samples[1, 2, 1] = 1.0
    write_glam_maps(maps / f"{image}.npz", samples, 4, geometry, (32, 24),
                    ImageOrigin("R-CC", "NO", (5, 37, 4, 28), (40, 30)))
    malignant = np.zeros((40, 30), np.uint8)
    malignant[13:19, 20:24] = 255
    benign = np.zeros((40, 30), np.uint8)
    benign[20:24, 8:12] = 255
    masks.mkdir(parents=True, exist_ok=True)
    write_png(masks / f"{image}_malignant.png", malignant)
    write_png(masks / f"{image}_benign.png", benign)
    return maps, masks


def test_a_glam_map_peaking_in_the_lesion_scores_the_hand_computed_dice_and_hit(tmp_path):
    maps, masks = _hand_case(tmp_path)
    result = localize_maps(maps, masks, tmp_path / "out", n_bootstrap=0, threshold=0.5, log=None)
    assert result.summary["map_layouts"] == {"glam": 1} and not result.skipped
    malignant, benign = result.classes["malignant"], result.classes["benign"]
    assert malignant["n_images"] == benign["n_images"] == 1
    assert malignant["dice"]["value"] == pytest.approx(0.8)
    assert malignant["threshold"] == THRESHOLD_GRID[0]  # every threshold gives 0.8: the lowest wins the tie
    assert malignant["dice_at_fixed_threshold"]["value"] == pytest.approx(0.8)
    assert malignant["pointing_game"]["value"] == 1.0
    assert benign["dice"]["value"] == 0.0 and benign["pointing_game"]["value"] == 0.0
    rows = {r["class"]: r for r in result.rows}
    assert (rows["malignant"]["max_row"], rows["malignant"]["max_col"]) == (13, 20)
    assert (rows["benign"]["max_row"], rows["benign"]["max_col"]) == (5, 24)
    assert rows["malignant"]["lesion_pixels"] == 24 and rows["malignant"]["hit"] == 1


def test_cli_localizes_glam_maps(tmp_path, capsys):
    maps, masks = _hand_case(tmp_path)
    out = tmp_path / "out"
    assert main(["localize", "--maps", str(maps), "--segmentations", str(masks), "--output-dir", str(out),
                 "--bootstrap", "0"]) == 0
    assert "1 maps, 0 skipped" in capsys.readouterr().out
    summary = json.loads((out / "localization.json").read_text())
    assert summary["map_layouts"] == {"glam": 1}
    assert summary["classes"]["malignant"]["dice"]["value"] == pytest.approx(0.8)
    with open(out / "localization_per_image.csv", newline="") as f:
        rows = {r["class"]: r for r in csv.DictReader(f)}
    assert rows["malignant"]["hit"] == "1" and float(rows["malignant"]["dice"]) == pytest.approx(0.8)


# ----------------------------------------------------------------------------------------------
# Bad files: reported with their reason and skipped, the batch carries on
# ----------------------------------------------------------------------------------------------

def test_malformed_glam_files_are_reported_and_skipped(tmp_path):
    maps, masks = _hand_case(tmp_path, "good")
    geometry = window_geometry((32, 24), (32, 24), (16, 12), "R-CC", rng=np.random.RandomState(0))
    origin = ImageOrigin("R-CC", "NO", (5, 37, 4, 28), (40, 30))
    samples = np.zeros((2, 8, 6), np.float32)
    bad = {
        # 16x12 samples are every 2nd pixel of the 32x24 window, not every 4th.
        "wrong_samples": dict(samples=np.zeros((2, 16, 12), np.float32)),
        "zero_stride": dict(saliency_map_stride=np.int64(0)),
        "no_high_res_map": dict(saliency_map=None),
        "no_window": dict(window_borders=None),
        "nan_map": dict(samples=np.full((2, 8, 6), np.nan, np.float32)),
        "other_layout": dict(saliency_map_stride=None, saliency_map_global=None),  # a GMIC file among GLAM ones
    }
    for name, change in bad.items():
        _hand_case(tmp_path, name)  # its masks (and a good file, replaced below)
        change = dict(change)
        write_glam_maps(maps / f"{name}.npz", change.pop("samples", samples), 4, geometry, (32, 24), origin,
                        **change)
    _hand_case(tmp_path, "truncated")
    (maps / "truncated.npz").write_bytes((maps / "good.npz").read_bytes()[:100])
    logged = []
    result = localize_maps(maps, masks, tmp_path / "out", n_bootstrap=0, log=logged.append)
    reasons = {f.name: f.reason for f in result.skipped}
    assert set(reasons) == set(bad) | {"truncated"}
    assert "16x12 samples" in reasons["wrong_samples"] and "makes 8x6" in reasons["wrong_samples"]
    assert "saliency_map_stride must be >= 1" in reasons["zero_stride"]
    assert "without its high-resolution 'saliency_map'" in reasons["no_high_res_map"]
    assert "no 'window_borders'" in reasons["no_window"]
    assert "NaN" in reasons["nan_map"]
    assert "GMIC maps file among" in reasons["other_layout"]
    assert "unreadable maps file" in reasons["truncated"]
    for name, reason in reasons.items():
        assert f"{name}.npz" in reason and ("write" in reason or "localise each" in reason), reason
    assert len(logged) == len(reasons)
    # The good file (the first in sorted order that reads, so the directory's layout is GLAM) is scored.
    assert result.summary["map_layouts"] == {"glam": 1} and result.summary["n_skipped"] == len(reasons)
    assert result.classes["malignant"]["n_images"] == 1
    assert result.classes["malignant"]["dice"]["value"] == pytest.approx(0.8)


def test_glam_maps_without_placement_take_it_from_the_exam_list(tmp_path):
    maps, masks = _hand_case(tmp_path)
    path = maps / "r_cc.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k not in ("view", "horizontal_flip", "window_location",
                                                              "original_shape")}
    np.savez(path, **arrays)  # as GLAM maps were written before they recorded their placement
    result = localize_maps(maps, masks, tmp_path / "out", n_bootstrap=0, log=None)
    assert [f.name for f in result.skipped] == ["r_cc"] and "--exam-list" in result.skipped[0].reason
    info = {"view": "R-CC", "horizontal_flip": "NO", "window_location": (5, 37, 4, 28), "original_shape": (40, 30)}
    saliency, placement = read_map_file(path, info)
    assert placement.map_stride == 4 and placement.crop_location == (5, 37, 4, 28)
    assert placement.original_shape == (40, 30)
