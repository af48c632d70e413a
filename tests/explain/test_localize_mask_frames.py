"""Lesion masks in the three frames align_to_window accepts (original image, cropped image, model window):
localize brings each to the original frame and scores it there, for GMIC and GLAM maps files."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mammoscreen.data.exams import VIEWS
from mammoscreen.data.images import read_png, write_png
from mammoscreen.explain.localize import (MapPlacement, localize_maps, map_to_window, mask_frame,
                                          mask_to_original, window_to_original)
from mammoscreen.preprocess.windows import (ImageOrigin, WindowGeometry, align_to_window, placement_arrays,
                                            window_geometry)


# ----------------------------------------------------------------------------------------------
# By hand
# ----------------------------------------------------------------------------------------------

def _hand_placement(original_shape=(10, 12)) -> MapPlacement:
    """A right CC image (mirrored: horizontal_flip NO) of 10x12, cropped to rows 2-7, columns 3-8 (6x6); the 8x8
    window pads one row above and below and two columns on the right."""
    geometry = window_geometry((6, 6), (8, 8), (3, 3), "R-CC")
    assert geometry == WindowGeometry(pad_top=1, pad_bottom=1, pad_right=2, top=0, bottom=8, left=0, right=8)
    return MapPlacement(geometry, "R-CC", "NO", (2, 8, 3, 9), (6, 6), original_shape)


def test_a_window_mask_maps_back_by_hand():
    placement = _hand_placement()
    window = np.zeros((8, 8), np.uint8)
    window[1, 0] = 255  # padded row 1 = crop row 0; mirrored column 0 = crop column 5 -> original (2, 8)
    window[6, 2] = 1  # crop row 5, mirrored column 2 = crop column 3 -> original (7, 6)
    window[0, 4] = 255  # the top padding row: no image there
    window[3, 7] = 255  # the right padding: no image there
    original, frame = mask_to_original(window, placement)
    assert frame == "window" and original.dtype == bool and original.shape == (10, 12)
    assert sorted(map(tuple, np.argwhere(original))) == [(2, 8), (7, 6)]


def test_a_cropped_mask_is_placed_at_the_crop_box_without_mirroring():
    placement = _hand_placement()
    cropped = np.zeros((6, 6), np.uint8)
    cropped[0, 0] = 255  # the cropped image keeps the original orientation -> original (2, 3)
    cropped[4, 5] = 7  # -> original (6, 8)
    original, frame = mask_to_original(cropped, placement)
    assert frame == "cropped" and original.shape == (10, 12)
    assert sorted(map(tuple, np.argwhere(original))) == [(2, 3), (6, 8)]
    # Without a recorded original shape the frame is the smallest image holding the crop box.
    unrecorded, frame = mask_to_original(cropped, _hand_placement(None))
    assert frame == "cropped" and unrecorded.shape == (8, 9)
    np.testing.assert_array_equal(unrecorded, original[:8, :9])


def test_an_original_mask_is_returned_as_it_is():
    mask = np.zeros((10, 12), np.uint16)
    mask[0, 11] = 4000  # outside the crop box: kept (it counts against the map)
    original, frame = mask_to_original(mask, _hand_placement())
    assert frame == "original"
    assert sorted(map(tuple, np.argwhere(original))) == [(0, 11)]


def test_frame_precedence_when_two_frames_have_the_same_size():
    # The crop box is the whole image (original == cropped) and the window has that size too.
    geometry = WindowGeometry(0, 0, 0, 0, 6, 0, 6)
    whole = MapPlacement(geometry, "L-CC", "NO", (0, 6, 0, 6), (6, 6), (6, 6))
    assert mask_frame((6, 6), whole) == "original"
    # original (recorded) == window size: original wins.
    same_as_window = MapPlacement(_hand_placement().geometry, "R-CC", "NO", (1, 7, 2, 8), (6, 6), (8, 8))
    assert same_as_window.window_shape == (8, 8) and mask_frame((8, 8), same_as_window) == "original"
    # cropped == window size: cropped wins (the two differ by the mirroring).
    mirrored = MapPlacement(geometry, "R-CC", "NO", (2, 8, 3, 9), (6, 6), (10, 12))
    assert mask_frame((6, 6), mirrored) == "cropped"
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True
    assert tuple(np.argwhere(mask_to_original(mask, mirrored)[0])[0]) == (2, 3)  # not mirrored to (2, 8)
    # Without a recorded original shape, a window-sized mask that contains the crop box is a window mask
    # (the official GMIC convention), not an original one.
    unrecorded = _hand_placement(None)
    assert mask_frame((8, 8), unrecorded) == "window"
    assert mask_frame((6, 6), unrecorded) == "cropped"
    assert mask_frame((8, 9), unrecorded) == "original" and mask_frame((20, 30), unrecorded) == "original"
    assert mask_frame((7, 9), unrecorded) is None  # does not contain the crop box
    assert mask_frame((11, 12), _hand_placement()) is None


def test_a_mask_of_no_frame_is_refused_with_the_three_sizes():
    with pytest.raises(ValueError) as info:
        mask_to_original(np.zeros((11, 12)), _hand_placement())
    message = str(info.value)
    for text in ("11x12", "original (uncropped) image 10x12", "cropped image 6x6", "model window 8x8",
                 "docs/localization.md"):
        assert text in message
    with pytest.raises(ValueError, match=r"at least 8x9 to contain the crop box"):
        mask_to_original(np.zeros((7, 9)), _hand_placement(None))
    with pytest.raises(ValueError, match="single-channel PNG"):
        mask_to_original(np.zeros((10, 12, 3)), _hand_placement())  # a colour image of the original's size


# ----------------------------------------------------------------------------------------------
# Random geometries: forward to each frame, back to the original
# ----------------------------------------------------------------------------------------------

def _random_case(rng):
    crop_h, crop_w = int(rng.integers(20, 70)), int(rng.integers(15, 60))
    top, left = int(rng.integers(0, 12)), int(rng.integers(0, 12))
    original_shape = (top + crop_h + int(rng.integers(0, 10)), left + crop_w + int(rng.integers(0, 10)))
    window = (int(rng.integers(10, 90)), int(rng.integers(8, 75)))
    while window in (original_shape, (crop_h, crop_w)):  # the precedence is tested by hand above
        window = (window[0] + 1, window[1])
    view, flip = VIEWS[int(rng.integers(0, 4))], ("YES", "NO")[int(rng.integers(0, 2))]
    center = (int(rng.integers(-10, crop_h + 10)), int(rng.integers(-10, crop_w + 10)))
    geometry = window_geometry((crop_h, crop_w), window, center, view)
    placement = MapPlacement(geometry, view, flip, (top, top + crop_h, left, left + crop_w), (crop_h, crop_w),
                             original_shape)
    return placement, window


def _to_frames(mask: np.ndarray, placement: MapPlacement, window) -> dict[str, np.ndarray]:
    """The forward functions: the crop box slice, and align_to_window (given the cropped mask, which it takes
    unambiguously as cropped-aligned whatever the sizes)."""
    top, bottom, left, right = placement.crop_location
    cropped = mask[top:bottom, left:right]
    to_window = align_to_window(cropped.astype(np.float32), placement.view, placement.horizontal_flip,
                                placement.geometry, window, placement.cropped_shape, placement.crop_location)
    return {"original": mask, "cropped": cropped, "window": (to_window > 0.5).astype(np.uint8)}


def test_forward_then_back_recovers_the_mask_on_random_geometries():
    rng = np.random.default_rng(11)
    for _ in range(150):
        placement, window = _random_case(rng)
        mask = (rng.random(placement.original_shape) > 0.6).astype(np.uint8)
        top, bottom, left, right = placement.crop_location
        in_crop = np.zeros(placement.original_shape, bool)
        in_crop[top:bottom, left:right] = True
        covered = ~np.isnan(window_to_original(np.ones(placement.window_shape, np.float32), placement))
        expected = {"original": mask > 0, "cropped": (mask > 0) & in_crop, "window": (mask > 0) & covered}
        for frame, array in _to_frames(mask, placement, window).items():
            back, found = mask_to_original(array, placement)
            # An uncropped image (crop box = the whole image) reads its cropped mask as an original one: the same.
            assert found == frame or (frame, found) == ("cropped", "original") and in_crop.all()
            np.testing.assert_array_equal(back, expected[frame], err_msg=frame)


# ----------------------------------------------------------------------------------------------
# The batch: GMIC and GLAM maps files, masks in each frame give the same scores
# ----------------------------------------------------------------------------------------------

def _cases():
    """(name, view, horizontal_flip, original_shape, crop box, window, centre): mirrored and not, windows padded
    at the top/bottom (CC), at the bottom (MLO), on the right, and a window smaller than the crop."""
    return [
        ("a_R-CC", "R-CC", "NO", (70, 50), (5, 61, 6, 46), (72, 48), (28, 20)),  # mirrored, padded rows + cols
        ("b_L-CC", "L-CC", "NO", (64, 52), (3, 59, 2, 40), (60, 40), (28, 19)),  # padded top/bottom
        ("c_L-MLO", "L-MLO", "YES", (80, 60), (0, 70, 4, 58), (64, 48), (35, 25)),  # mirrored, inside the crop
        ("d_R-MLO", "R-MLO", "YES", (66, 44), (2, 60, 0, 41), (64, 44), (29, 20)),  # padded at the bottom
    ]


def _lesion(rng, placement: MapPlacement, inside_window: bool, around: np.ndarray | None = None) -> np.ndarray:
    """A rectangle of lesion in the original frame: inside the window, or partly outside it; or ``around`` the
    maximum of a map in the original frame (a pointing-game hit), clipped to the window."""
    covered = ~np.isnan(window_to_original(np.ones(placement.window_shape, np.float32), placement))
    rows, cols = placement.original_shape
    if around is not None:
        r, c = np.unravel_index(int(np.nanargmax(around)), around.shape)
        mask = np.zeros((rows, cols), np.uint8)
        mask[max(r - 2, 0):r + 3, max(c - 3, 0):c + 2] = 255
        return np.where(covered, mask, 0).astype(np.uint8)
    for _ in range(1000):
        r, c = int(rng.integers(0, rows - 6)), int(rng.integers(0, cols - 6))
        h, w = int(rng.integers(3, 7)), int(rng.integers(3, 7))
        mask = np.zeros((rows, cols), np.uint8)
        mask[r:r + h, c:c + w] = 255
        if (covered[mask > 0].all() if inside_window else not covered[mask > 0].all() and covered[mask > 0].any()):
            return mask
    raise AssertionError("no lesion found")


def _write_maps(root: Path, layout: str, seed: int, lesion_outside: str | None = None):
    """Maps files of one layout for the cases, the original-frame masks, and the placements."""
    rng = np.random.default_rng(seed)
    maps, masks, placements = root / "maps", root / "original", {}
    maps.mkdir(parents=True)
    masks.mkdir(parents=True)
    for name, view, flip, original_shape, box, window, center in _cases():
        top, bottom, left, right = box
        cropped_shape = (bottom - top, right - left)
        geometry = window_geometry(cropped_shape, window, center, view)
        origin = ImageOrigin(view, flip, box, original_shape)
        placements[name] = placement = MapPlacement(geometry, view, flip, box, cropped_shape, original_shape,
                                                    4 if layout == "glam" else None)
        arrays = dict(placement_arrays(geometry, cropped_shape, origin))
        if layout == "glam":
            samples = rng.random((2, -(-window[0] // 4), -(-window[1] // 4))).astype(np.float32)
            arrays.update(saliency_map=samples, saliency_map_stride=np.int64(4))
        else:
            arrays.update(saliency_map=rng.random((2, 23, 15)).astype(np.float32))
        np.savez(maps / f"{name}.npz", **arrays)
        inside = name != lesion_outside
        write_png(masks / f"{name}_benign.png", _lesion(rng, placement, inside))
        # The malignant lesion sits on the malignant map's maximum (a hit), unless it must leave the window.
        peak = window_to_original(map_to_window(arrays["saliency_map"][1], placement), placement)
        write_png(masks / f"{name}_malignant.png", _lesion(rng, placement, inside, None if not inside else peak))
    return maps, masks, placements


def _masks_in(frame: str, masks: Path, placements: dict, target: Path) -> Path:
    target.mkdir()
    for name, placement in placements.items():
        for kind in ("benign", "malignant"):
            mask = read_png(masks / f"{name}_{kind}.png")
            window = placement.window_shape
            write_png(target / f"{name}_{kind}.png", _to_frames(mask, placement, window)[frame])
    return target


def _without_frame(rows):
    return [{k: v for k, v in r.items() if k != "mask_frame"} for r in rows]


@pytest.mark.parametrize("layout", ["gmic", "glam"])
def test_masks_in_every_frame_give_the_same_dice_and_pointing_game(tmp_path, layout):
    maps, masks, placements = _write_maps(tmp_path, layout, seed=1 if layout == "gmic" else 2)
    # The shapes of the three frames all differ here, so every mask is read in the frame it was written in.
    for p in placements.values():
        assert len({p.original_shape, p.cropped_shape, p.window_shape}) == 3
    results = {}
    for frame in ("original", "cropped", "window"):
        segmentation = masks if frame == "original" else _masks_in(frame, masks, placements, tmp_path / frame)
        results[frame] = localize_maps(maps, segmentation, tmp_path / f"out_{frame}", n_bootstrap=100,
                                       threshold=0.5, log=None)
        assert not results[frame].skipped
        assert results[frame].summary["map_layouts"] == {layout: 4}
        assert results[frame].summary["mask_frames"] == {"original": 0, "cropped": 0, "window": 0, frame: 8}
        assert [r["mask_frame"] for r in results[frame].rows] == [frame] * 8
    reference = results["original"]
    assert reference.classes["malignant"]["pointing_game"]["value"] == 1.0  # lesions drawn on the maxima
    assert 0 < reference.classes["malignant"]["dice"]["value"] < 1
    for frame in ("cropped", "window"):
        assert results[frame].classes == reference.classes, frame
        assert _without_frame(results[frame].rows) == _without_frame(reference.rows), frame
    with open(results["window"].csv_path, newline="") as f:
        assert {r["mask_frame"] for r in csv.DictReader(f)} == {"window"}
    assert json.loads(results["cropped"].json_path.read_text())["mask_frames"]["cropped"] == 8


def test_a_lesion_outside_the_window_is_cut_in_the_window_frame_only(tmp_path):
    # Image c (window smaller than the crop) gets lesions partly outside the window: the window-frame mask
    # keeps only the covered part, so it scores as the original mask restricted to the window would.
    maps, masks, placements = _write_maps(tmp_path, "gmic", seed=3, lesion_outside="c_L-MLO")
    window_masks = _masks_in("window", masks, placements, tmp_path / "window")
    restricted = tmp_path / "restricted"
    restricted.mkdir()
    for path in masks.glob("*.png"):
        name = path.stem.rsplit("_", 1)[0]
        covered = ~np.isnan(window_to_original(np.ones(placements[name].window_shape, np.float32), placements[name]))
        write_png(restricted / path.name, np.where(covered, read_png(path), 0).astype(np.uint8))
    original = localize_maps(maps, masks, tmp_path / "o", n_bootstrap=0, log=None)
    in_window = localize_maps(maps, window_masks, tmp_path / "w", n_bootstrap=0, log=None)
    cut = localize_maps(maps, restricted, tmp_path / "r", n_bootstrap=0, log=None)
    assert _without_frame(in_window.rows) == _without_frame(cut.rows)
    lost = {(r["image"], r["class"]): r["lesion_pixels"] for r in original.rows}
    kept = {(r["image"], r["class"]): r["lesion_pixels"] for r in in_window.rows}
    for key in lost:
        assert (kept[key] < lost[key]) == (key[0] == "c_L-MLO"), key


def test_a_mask_of_the_wrong_size_is_skipped_and_the_others_are_scored(tmp_path):
    maps, masks, placements = _write_maps(tmp_path, "glam", seed=4)
    segmentation = _masks_in("window", masks, placements, tmp_path / "window")
    write_png(segmentation / "b_L-CC_malignant.png", np.full((61, 40), 255, np.uint8))  # a cropped mask + 5 rows
    logged = []
    result = localize_maps(maps, segmentation, tmp_path / "out", n_bootstrap=0, log=logged.append)
    assert [f.name for f in result.skipped] == ["b_L-CC"]
    reason = result.skipped[0].reason
    for text in (str(segmentation / "b_L-CC_malignant.png"), "mask of size 61x40", "original (uncropped) image 64x52",
                 "cropped image 56x38", "model window 60x40"):
        assert text in reason, text
    assert logged == [f"skipped b_L-CC: {reason}"]
    assert {r["image"] for r in result.rows} == {"a_R-CC", "c_L-MLO", "d_R-MLO"}
    # The others score as their original-frame masks do without that image (the best threshold is per class).
    (masks / "b_L-CC_benign.png").unlink()
    (masks / "b_L-CC_malignant.png").unlink()
    reference = localize_maps(maps, masks, tmp_path / "ref", n_bootstrap=0, log=None)
    assert [f.name for f in reference.skipped] == ["b_L-CC"] and "no mask" in reference.skipped[0].reason
    assert _without_frame(result.rows) == _without_frame(reference.rows)
    assert result.classes == reference.classes


def test_a_window_mask_with_its_lesion_only_in_the_padding_is_refused(tmp_path):
    maps, masks, placements = _write_maps(tmp_path, "gmic", seed=5)
    segmentation = _masks_in("window", masks, placements, tmp_path / "window")
    placement = placements["a_R-CC"]  # padded on the right: window columns 40-47 have no image
    assert placement.geometry.pad_right > 0
    padding_only = np.zeros(placement.window_shape, np.uint8)
    padding_only[30:34, -3:] = 255
    write_png(segmentation / "a_R-CC_benign.png", padding_only)
    result = localize_maps(maps, segmentation, tmp_path / "out", n_bootstrap=0, log=None)
    assert [f.name for f in result.skipped] == ["a_R-CC"]
    assert "zero padding" in result.skipped[0].reason and "a_R-CC_benign.png" in result.skipped[0].reason


def test_older_maps_without_the_original_shape_score_window_and_cropped_masks_the_same(tmp_path):
    maps, masks, placements = _write_maps(tmp_path, "gmic", seed=6)
    for path in maps.glob("*.npz"):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "original_shape"}
        np.savez(path, **arrays)
    reference = localize_maps(maps, masks, tmp_path / "ref", n_bootstrap=0, log=None)
    assert not reference.skipped
    for frame in ("cropped", "window"):
        result = localize_maps(maps, _masks_in(frame, masks, placements, tmp_path / frame), tmp_path / frame / "o",
                               n_bootstrap=0, log=None)
        assert not result.skipped and [r["mask_frame"] for r in result.rows] == [frame] * 8
        assert _without_frame(result.rows) == _without_frame(reference.rows), frame


# ----------------------------------------------------------------------------------------------
# The official GMIC sample masks (window frame) on the reference images, with the official maps
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_official_window_masks_are_scored_on_the_reference_images(reference_dir, tmp_path):
    """Maps files made from the official GMIC outputs and the official centres (the window geometry as the GMIC
    predictor computes it); the official 2944x1920 masks of 0_R-CC and 0_R-MLO are now scored."""
    with open(reference_dir / "gmic" / "data.pkl", "rb") as f:
        exams = pickle.load(f)
    maps = tmp_path / "maps"
    maps.mkdir()
    placements = {}
    for exam in exams:
        for view in VIEWS:
            for index, name in enumerate(exam.get(view, [])):
                official = reference_dir / "gmic" / "outputs_percent_t_0.02" / f"{name}.npz"
                if not official.is_file():
                    continue
                cropped_shape = read_png(reference_dir / "gmic" / "cropped" / f"{name}.png").shape
                geometry = window_geometry(cropped_shape, (2944, 1920), exam["best_center"][view][index], view)
                original_shape = read_png(reference_dir / "images" / f"{name}.png").shape
                origin = ImageOrigin(view, exam["horizontal_flip"],
                                     tuple(int(v) for v in exam["window_location"][view][index]), original_shape)
                with np.load(official) as data:
                    saliency = data["saliency_map"][0]
                np.savez(maps / f"{name}.npz", saliency_map=saliency,
                         **placement_arrays(geometry, cropped_shape, origin))
                placements[name] = origin, geometry, cropped_shape
    assert {"0_R-CC", "0_R-MLO"} <= set(placements)
    result = localize_maps(maps, reference_dir / "segmentation", tmp_path / "out", n_bootstrap=0, log=None)
    assert {f.name for f in result.skipped} == set(placements) - {"0_R-CC", "0_R-MLO"}
    assert all(f.reason.startswith("no mask") for f in result.skipped)
    rows = {r["image"]: r for r in result.rows}
    assert set(rows) == {"0_R-CC", "0_R-MLO"} and all(r["class"] == "benign" for r in rows.values())
    assert result.summary["mask_frames"] == {"original": 0, "cropped": 0, "window": 2}
    for name, row in rows.items():
        origin, geometry, cropped_shape = placements[name]
        window_mask = read_png(reference_dir / "segmentation" / f"{name}_benign.png") > 0
        assert window_mask.shape == (2944, 1920) != origin.original_shape
        placement = MapPlacement(geometry, origin.view, origin.horizontal_flip, origin.crop_location, cropped_shape,
                                 origin.original_shape)
        original, frame = mask_to_original(window_mask, placement)
        # The whole official lesion lies on the image, and on breast tissue; and it is the figures' mask again.
        assert frame == "window" and row["lesion_pixels"] == original.sum() == window_mask.sum()
        image = read_png(reference_dir / "images" / f"{name}.png")
        assert (image[original] > 0).all()
        again = align_to_window(original.astype(np.float32), origin.view, origin.horizontal_flip, geometry,
                                (2944, 1920), cropped_shape, origin.crop_location)
        np.testing.assert_array_equal(again > 0.5, window_mask)
