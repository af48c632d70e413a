"""Localisation metrics: Dice, pointing game, the window -> original-image mapping, the batch and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from testutils import lesion_images

from mammoscreen.cli import main
from mammoscreen.data.exams import VIEWS, iter_images, load_exam_list, needs_flip, save_exam_list
from mammoscreen.data.images import read_png, write_png
from mammoscreen.explain.localize import (
    THRESHOLD_GRID,
    MapPlacement,
    best_threshold_dice,
    dice_per_threshold,
    dice_score,
    localize_maps,
    mean_with_interval,
    normalize_map,
    pointing_game,
    read_map_file,
    upsample_to_window,
    window_to_original,
)
from mammoscreen.preprocess.windows import WindowGeometry, align_to_window, window_geometry

# ----------------------------------------------------------------------------------------------
# Dice and the pointing game, by hand
# ----------------------------------------------------------------------------------------------

def test_dice_of_hand_made_masks():
    predicted = np.array([[1, 1, 0], [0, 0, 0]])
    target = np.array([[1, 0, 0], [1, 0, 0]])
    assert dice_score(predicted, target) == pytest.approx(0.5)  # 2*1 / (2 + 2)
    assert dice_score(target, target) == 1.0
    assert dice_score(np.array([[1, 0, 0], [0, 0, 0]]), np.array([[0, 0, 1], [0, 0, 0]])) == 0.0
    assert dice_score(np.zeros((2, 3)), target) == 0.0
    assert dice_score(np.zeros((2, 3)), np.zeros((2, 3))) == 1.0
    # 3 predicted pixels, 1 of them in a 2-pixel lesion: 2*1 / (3 + 2)
    assert dice_score(np.array([[1, 1, 1], [0, 0, 0]]), target) == pytest.approx(0.4)


def test_dice_refuses_masks_of_different_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        dice_score(np.zeros((2, 3)), np.zeros((3, 2)))


def test_dice_per_threshold_by_hand_with_pixels_outside_the_window():
    normalized = np.array([[0.0, 0.5, 1.0], [0.2, 0.8, np.nan]], dtype=np.float32)
    target = np.array([[0, 1, 1], [0, 0, 0]])
    dice = dice_per_threshold(normalized, target, [0.0, 0.1, 0.6, 0.9, 1.0])
    # t=0: 5 pixels predicted (NaN never is), 2 in the lesion -> 4/7; t=0.1: 4 predicted -> 4/6;
    # t=0.6: {1.0, 0.8} -> 2/4; t=0.9 and 1.0: {1.0} -> 2/3.
    np.testing.assert_allclose(dice, [4 / 7, 4 / 6, 2 / 4, 2 / 3, 2 / 3])


def test_dice_per_threshold_agrees_with_dice_of_the_thresholded_map():
    rng = np.random.default_rng(1)
    normalized = normalize_map(rng.random((40, 30)).astype(np.float32))
    target = rng.random((40, 30)) > 0.7
    dice = dice_per_threshold(normalized, target, THRESHOLD_GRID)
    expected = [dice_score(normalized >= np.float32(t), target) for t in THRESHOLD_GRID]
    np.testing.assert_allclose(dice, expected)


def test_thresholds_outside_the_unit_interval_are_refused():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        dice_per_threshold(np.zeros((2, 2)), np.ones((2, 2)), [1.5])


def test_normalize_map_is_min_max_over_present_values():
    out = normalize_map(np.array([[2.0, 4.0], [6.0, np.nan]]))
    np.testing.assert_allclose(out[0], [0.0, 0.5])
    assert out[1, 0] == 1.0 and np.isnan(out[1, 1])
    np.testing.assert_array_equal(normalize_map(np.full((2, 2), 0.3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no value inside the image"):
        normalize_map(np.full((2, 2), np.nan))


def test_pointing_game_hit_miss_ties_and_missing_values():
    target = np.array([[0, 0, 0], [0, 1, 1]])
    saliency = np.array([[0.1, 0.2, 0.3], [0.4, 0.9, 0.5]])
    assert pointing_game(saliency, target) == (True, (1, 1))
    saliency[0, 0] = 0.95
    assert pointing_game(saliency, target) == (False, (0, 0))
    # A tie goes to the first maximum in row-major order: here outside the lesion.
    assert pointing_game(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), target) == (False, (0, 0))
    # Pixels without a value (outside the window) can never be the maximum.
    assert pointing_game(np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 0.7]]), target) == (True, (1, 2))


# ----------------------------------------------------------------------------------------------
# Upsampling and the inverse of align_to_window
# ----------------------------------------------------------------------------------------------

def test_upsampling_is_bilinear_with_half_pixel_centres():
    out = upsample_to_window(np.array([[0.0, 1.0]]), (1, 4))
    # Output column x samples input position (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 (clamped).
    np.testing.assert_allclose(out, [[0.0, 0.25, 0.75, 1.0]])
    same = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(upsample_to_window(same, (2, 3)), same)


def _expected_back_mapping(mask, placement, original_shape):
    """Pixel by pixel: where does each original pixel land in the window (NaN if it does not)?"""
    top, bottom, left, right = placement.crop_location
    g = placement.geometry
    rows, cols = np.indices(original_shape)
    crop_r, crop_c = rows - top, cols - left
    crop_w = right - left
    flipped = (placement.view[0] == "R") == (placement.horizontal_flip == "NO")
    col_facing_right = crop_w - 1 - crop_c if flipped else crop_c
    win_r, win_c = crop_r + g.pad_top - g.top, col_facing_right - g.left
    inside = ((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
              & (win_r >= 0) & (win_r < g.bottom - g.top) & (win_c >= 0) & (win_c < g.right - g.left))
    return np.where(inside, mask, np.nan)


def _random_case(rng):
    crop_h, crop_w = int(rng.integers(20, 70)), int(rng.integers(15, 60))
    top, left = int(rng.integers(0, 12)), int(rng.integers(0, 12))
    original_shape = (top + crop_h + int(rng.integers(1, 10)), left + crop_w + int(rng.integers(1, 10)))
    window = (int(rng.integers(10, 90)), int(rng.integers(8, 75)))  # smaller or larger than the crop
    if window == original_shape:  # align_to_window would take the mask as already window-aligned
        window = (window[0] + 1, window[1])
    view, flip = VIEWS[int(rng.integers(0, 4))], ("YES", "NO")[int(rng.integers(0, 2))]
    center = (int(rng.integers(-10, crop_h + 10)), int(rng.integers(-10, crop_w + 10)))
    geometry = window_geometry((crop_h, crop_w), window, center, view)
    placement = MapPlacement(geometry, view, flip, (top, top + crop_h, left, left + crop_w), (crop_h, crop_w))
    return placement, window, original_shape


def test_window_to_original_inverts_align_to_window_exactly():
    rng = np.random.default_rng(7)
    seen = {"pad_top": 0, "pad_bottom": 0, "pad_right": 0, "unpadded": 0, "flipped": 0, "unflipped": 0, "CC": 0,
            "MLO": 0}
    for _ in range(150):
        placement, window, original_shape = _random_case(rng)
        g = placement.geometry
        mask = (rng.random(original_shape) > 0.5).astype(np.float32)
        forward = align_to_window(mask, placement.view, placement.horizontal_flip, g, window,
                                  placement.cropped_shape, placement.crop_location)
        back = window_to_original(forward, placement, original_shape)
        np.testing.assert_array_equal(back, _expected_back_mapping(mask, placement, original_shape))
        # And forward again: the window is recovered wherever it lies on the image (padding is zero anyway).
        again = align_to_window(np.nan_to_num(back, nan=0.0), placement.view, placement.horizontal_flip, g, window,
                                placement.cropped_shape, placement.crop_location)
        np.testing.assert_array_equal(again, forward)
        seen["pad_top"] += g.pad_top > 0
        seen["pad_bottom"] += g.pad_bottom > 0
        seen["pad_right"] += g.pad_right > 0
        seen["unpadded"] += g.pad_top == g.pad_bottom == g.pad_right == 0
        flipped = (placement.view[0] == "R") == (placement.horizontal_flip == "NO")
        seen["flipped" if flipped else "unflipped"] += 1
        seen[placement.view[2:]] += 1
    assert all(count >= 5 for count in seen.values()), seen


def test_placement_refuses_a_crop_box_of_another_size():
    g = WindowGeometry(0, 0, 0, 0, 10, 0, 8)
    with pytest.raises(ValueError, match="does not belong to these maps"):
        MapPlacement(g, "L-CC", "NO", (0, 12, 0, 8), (10, 8))
    placement = MapPlacement(g, "L-CC", "NO", (2, 12, 3, 11), (10, 8))
    with pytest.raises(ValueError, match="does not contain the crop box"):
        window_to_original(np.zeros((10, 8)), placement, (11, 20))
    with pytest.raises(ValueError, match="upsample it first"):
        window_to_original(np.zeros((5, 4)), placement, (20, 20))


def test_a_recorded_original_shape_is_used_and_enforced():
    g = WindowGeometry(0, 0, 0, 0, 10, 0, 8)
    with pytest.raises(ValueError, match="does not contain the crop box"):
        MapPlacement(g, "L-CC", "NO", (2, 12, 3, 11), (10, 8), original_shape=(11, 20))
    recorded = MapPlacement(g, "L-CC", "NO", (2, 12, 3, 11), (10, 8), original_shape=(15, 20))
    window = np.arange(80, dtype=np.float32).reshape(10, 8)
    original = window_to_original(window, recorded)  # the shape comes from the placement
    assert original.shape == (15, 20)
    np.testing.assert_array_equal(original[2:12, 3:11], window)
    np.testing.assert_array_equal(window_to_original(window, recorded, (15, 20)), original)
    with pytest.raises(ValueError, match="differs from the original image's recorded shape 15x20"):
        window_to_original(window, recorded, (16, 20))  # contains the crop box, but is not the original
    unrecorded = MapPlacement(g, "L-CC", "NO", (2, 12, 3, 11), (10, 8))
    np.testing.assert_array_equal(window_to_original(window, unrecorded, (15, 20)), original)
    with pytest.raises(ValueError, match="pass original_shape"):
        window_to_original(window, unrecorded)


# ----------------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------------

def test_bootstrap_interval_is_reproducible_and_brackets_the_mean():
    values = np.random.default_rng(3).random(30)
    first = mean_with_interval(values, 500, seed=11)
    assert first == mean_with_interval(values, 500, seed=11)
    assert first != mean_with_interval(values, 500, seed=12)
    mean, low, high = first
    assert mean == pytest.approx(values.mean())
    assert low < mean < high
    assert mean_with_interval(values, 0) == (pytest.approx(values.mean()), None, None)
    assert mean_with_interval([0.7], 500) == (0.7, None, None)  # one image: no interval


def test_best_threshold_is_the_grid_value_with_the_highest_mean_dice():
    table = np.array([[0.2, 0.8, 0.1], [0.6, 0.4, 0.1], [0.5, 0.7, 0.2]])
    threshold, value, low, high = best_threshold_dice(table, [0.1, 0.5, 0.9], 1000, seed=0)
    assert threshold == 0.5 and value == pytest.approx((0.8 + 0.4 + 0.7) / 3)
    assert low <= value <= high
    # The threshold is chosen again in each replicate, so every replicate is at least the replicate of the
    # fixed best column (same seed, same draws), and so are the interval's ends.
    _, fixed_low, fixed_high = mean_with_interval(table[:, 1], 1000, seed=0)
    assert low >= fixed_low and high >= fixed_high
    assert high <= 0.8 + 1e-12  # no replicate mean exceeds the largest Dice in the table
    assert best_threshold_dice(table, [0.1, 0.5, 0.9], 1000, seed=0) == (threshold, value, low, high)


# ----------------------------------------------------------------------------------------------
# Maps files and the batch, on synthetic exams through a tiny GMIC
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """Two synthetic exams, cropped, centred and predicted by a random tiny GMIC with saved maps."""
    from mammoscreen.data.synth.generate import generate_exams
    from mammoscreen.data.synth.render import SynthOptions
    from mammoscreen.engine import PredictOptions, predict_images
    from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
    from mammoscreen.models.gmic.predictor import build_gmic_predictor
    from mammoscreen.preprocess.centers import centers_dataset
    from mammoscreen.preprocess.crop import crop_dataset

    root = tmp_path_factory.mktemp("localize")
    exams = generate_exams(2, root / "synth", seed=3, progress=False,
                           options=SynthOptions(scale=0.25, p_benign=0.5, p_malignant=0.7))
    cropped, failures = crop_dataset(root / "synth" / "images", exams, root / "cropped", progress=False)
    assert not failures
    # A window larger than the crop: every window is padded, and covers every lesion.
    config = GMICConfig(input_size=(896, 704), num_patches=2, patch_size=(64, 64), global_channels=4,
                        local_channels=8, attention_dim=16)
    centred, failures = centers_dataset(root / "cropped", cropped, root / "cropped" / "data.pkl", progress=False,
                                        windows={"CC": config.input_size, "MLO": config.input_size})
    assert not failures
    torch.manual_seed(0)
    torch.save(GMIC(config).state_dict(), root / "tiny.p")
    predictor = build_gmic_predictor(root / "tiny.p", "1", device="cpu", config=config, allow_download=False)
    predict_images(predictor, centred, root / "cropped", root / "predicted",
                   PredictOptions(device="cpu", save_maps=True, progress=False))
    return {"root": root, "maps": root / "predicted" / "maps", "segmentation": root / "synth" / "segmentation",
            "exam_list": root / "cropped" / "data.pkl", "window": config.input_size,
            "images": root / "synth" / "images"}


def _copy_maps(source: Path, target: Path, edit=None) -> Path:
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.npz")):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        if edit is not None:
            arrays = edit(path.stem, arrays)
        np.savez(target / path.name, **arrays)
    return target


def test_maps_files_say_where_they_came_from(predicted):
    records = {r.name: r for r in iter_images(load_exam_list(predicted["exam_list"]))}
    for path in predicted["maps"].glob("*.npz"):
        saliency, placement = read_map_file(path)
        record = records[path.stem]
        assert placement.view == record.view and placement.horizontal_flip == record.horizontal_flip
        assert placement.crop_location == tuple(record.metadata["window_location"])
        # The original image's shape, recorded by the crop stage and carried into the maps file.
        assert placement.original_shape == record.metadata["original_shape"]
        assert placement.original_shape == read_png(predicted["images"] / f"{path.stem}.png").shape
        assert placement.window_shape == predicted["window"]
        assert saliency.shape[0] == 2


def test_cli_on_model_maps_writes_the_documented_outputs(predicted, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["localize", "--maps", str(predicted["maps"]), "--segmentations", str(predicted["segmentation"]),
                 "--output-dir", str(out), "--bootstrap", "200", "--seed", "5", "--threshold", "0.5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "malignant" in printed and "pointing game" in printed
    summary = json.loads((out / "localization.json").read_text())
    lesions = lesion_images(predicted["segmentation"])
    assert lesions["benign"] and lesions["malignant"]  # the fixture exercises both classes
    assert summary["n_bootstrap"] == 200 and summary["seed"] == 5 and summary["maps_dir"] == str(predicted["maps"])
    assert summary["n_skipped"] == 0
    for kind in ("benign", "malignant"):
        c = summary["classes"][kind]
        assert c["n_images"] == len(lesions[kind])
        assert c["threshold"] in THRESHOLD_GRID
        for metric in (c["dice"], c["pointing_game"], c["dice_at_fixed_threshold"]):
            assert 0 <= metric["ci_low"] <= metric["value"] <= metric["ci_high"] <= 1
    with open(out / "localization_per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["image"], r["class"]) for r in rows} == {(i, k) for k in lesions for i in lesions[k]}
    for r in rows:
        mask = read_png(predicted["segmentation"] / f"{r['image']}_{r['class']}.png") > 0
        assert int(r["lesion_pixels"]) == mask.sum()
        assert int(r["hit"]) == int(mask[int(r["max_row"]), int(r["max_col"])])


def test_a_map_equal_to_the_lesion_mask_scores_dice_1_and_always_hits(predicted, tmp_path):
    segmentation, window = predicted["segmentation"], predicted["window"]

    def masks_as_maps(image, arrays):
        # The map is the lesion mask itself, brought into the window at full resolution.
        channels = []
        for kind in ("benign", "malignant"):
            mask = read_png(segmentation / f"{image}_{kind}.png") > 0
            g = WindowGeometry(*[int(v) for v in arrays["window_padding"]], *[int(v) for v in arrays["window_borders"]])
            channels.append(align_to_window(mask.astype(np.float32), str(arrays["view"]),
                                            str(arrays["horizontal_flip"]), g, window,
                                            tuple(arrays["cropped_shape"]), tuple(arrays["window_location"])))
        return {**arrays, "saliency_map": np.stack(channels).astype(np.float32)}

    maps = _copy_maps(predicted["maps"], tmp_path / "maps", masks_as_maps)
    result = localize_maps(maps, segmentation, tmp_path / "out", n_bootstrap=100, threshold=0.5, log=None)
    for kind in ("benign", "malignant"):
        c = result.classes[kind]
        assert c["n_images"] > 0
        assert c["dice"]["value"] == 1.0 and c["pointing_game"]["value"] == 1.0
        assert c["dice_at_fixed_threshold"]["value"] == 1.0
        assert c["dice"]["ci_low"] == c["dice"]["ci_high"] == 1.0
    assert all(r["dice"] == 1.0 and r["hit"] == 1 for r in result.rows)


def test_old_maps_need_the_exam_list_and_give_the_same_result_with_it(predicted, tmp_path):
    def strip(image, arrays):  # as written before the maps stored where they came from
        return {k: v for k, v in arrays.items()
                if k not in ("view", "horizontal_flip", "window_location", "original_shape")}

    old = _copy_maps(predicted["maps"], tmp_path / "old", strip)
    new = localize_maps(predicted["maps"], predicted["segmentation"], tmp_path / "new", n_bootstrap=50, log=None)
    with_list = localize_maps(old, predicted["segmentation"], tmp_path / "with", exam_list=predicted["exam_list"],
                              n_bootstrap=50, log=None)
    assert with_list.classes == new.classes and with_list.rows == new.rows
    messages = []
    without = localize_maps(old, predicted["segmentation"], tmp_path / "without", n_bootstrap=50,
                            log=messages.append)
    assert len(without.skipped) == without.n_maps == len(messages)
    assert all("--exam-list" in f.reason for f in without.skipped)
    assert without.classes["malignant"] == {"n_images": 0, "threshold": None,
                                            "dice": {"value": None, "ci_low": None, "ci_high": None},
                                            "pointing_game": {"value": None, "ci_low": None, "ci_high": None},
                                            "dice_at_fixed_threshold": None}


def test_bad_files_are_skipped_with_their_reason_and_the_batch_goes_on(predicted, tmp_path):
    maps = _copy_maps(predicted["maps"], tmp_path / "maps")
    segmentation = tmp_path / "segmentation"
    segmentation.mkdir()
    for path in predicted["segmentation"].glob("*.png"):
        (segmentation / path.name).write_bytes(path.read_bytes())
    names = sorted(p.stem for p in maps.glob("*.npz"))
    (maps / f"{names[3]}.npz").write_bytes(b"not a zip file")
    np.savez(maps / "lonely.npz", **dict(np.load(maps / f"{names[0]}.npz")))  # no mask of that name
    for kind in ("benign", "malignant"):  # a mask of the size of no frame (original, cropped, window)
        write_png(segmentation / f"{names[1]}_{kind}.png", np.full((10, 10), 255, dtype=np.uint8))
    (maps / f"{names[2]}.npz").write_bytes((maps / f"{names[2]}.npz").read_bytes()[:200])  # truncated

    result = localize_maps(maps, segmentation, tmp_path / "out", n_bootstrap=50, log=None)
    reasons = {f.name: f.reason for f in result.skipped}
    assert set(reasons) == {"lonely", names[1], names[2], names[3]}
    assert "unreadable maps file" in reasons[names[3]] and f"{names[3]}.npz" in reasons[names[3]]
    assert "unreadable maps file" in reasons[names[2]]
    assert "no mask" in reasons["lonely"] and "lonely_benign.png" in reasons["lonely"]
    assert "original (uncropped) image" in reasons[names[1]] and f"{names[1]}_" in reasons[names[1]]
    summary = json.loads(result.json_path.read_text())
    assert summary["n_maps"] == len(names) + 1 and summary["n_skipped"] == 4
    assert {s["image"] for s in summary["skipped"]} == set(reasons)
    scored = {r["image"] for r in result.rows}
    assert scored and scored.isdisjoint(reasons)


def test_unusable_arguments_are_one_line_errors(predicted, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["localize", "--maps", str(empty), "--segmentations", str(predicted["segmentation"]),
                 "--output-dir", str(tmp_path / "o")]) == 2
    assert "no .npz maps" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:  # refused while parsing (issue 16.2)
        main(["localize", "--maps", str(tmp_path / "missing"), "--segmentations", str(predicted["segmentation"]),
              "--output-dir", str(tmp_path / "o")])
    assert exited.value.code == 2
    assert f"argument --maps: directory not found: {tmp_path / 'missing'}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["localize", "--maps", str(empty), "--segmentations", str(empty), "--output-dir", str(tmp_path),
              "--threshold", "1.5"])
    with pytest.raises(ValueError, match="threshold"):
        localize_maps(predicted["maps"], predicted["segmentation"], tmp_path / "o", threshold=2.0, log=None)
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------
# Masks against the original shape recorded by the crop stage
# ----------------------------------------------------------------------------------------------

def _padded_masks(predicted, target: Path, image: str, rows: int = 7, cols: int = 5) -> None:
    """Copy the masks, those of ``image`` padded below and on the right: they still contain the crop box, at
    the same place, but are not of the original image's size."""
    target.mkdir()
    for path in predicted["segmentation"].glob("*.png"):
        mask = read_png(path)
        if path.name.startswith(f"{image}_"):
            mask = np.pad(mask, ((0, rows), (0, cols)))
        write_png(target / path.name, mask)


def _strip_original_shape(image, arrays):
    return {k: v for k, v in arrays.items() if k != "original_shape"}


def _an_image_with_a_lesion(predicted) -> str:
    lesions = lesion_images(predicted["segmentation"])
    return sorted(lesions["malignant"] | lesions["benign"])[0]


def test_a_mask_of_the_wrong_size_that_contains_the_crop_box_is_refused(predicted, tmp_path):
    image = _an_image_with_a_lesion(predicted)
    shape = read_png(predicted["images"] / f"{image}.png").shape
    segmentation = tmp_path / "segmentation"
    _padded_masks(predicted, segmentation, image)
    messages = []
    result = localize_maps(predicted["maps"], segmentation, tmp_path / "out", n_bootstrap=0, log=messages.append)
    reasons = {f.name: f.reason for f in result.skipped}
    assert set(reasons) == {image}
    reason = reasons[image]
    assert str(segmentation / f"{image}_benign.png") in reason  # names the mask file
    assert f"{shape[0] + 7}x{shape[1] + 5}" in reason and f"{shape[0]}x{shape[1]}" in reason  # both shapes
    assert "original (uncropped) image" in reason and "original_shape" in reason  # and what to do
    assert messages == [f"skipped {image}: {reason}"]
    # The rest carry on, with the same scores as with the right masks.
    reference = localize_maps(predicted["maps"], predicted["segmentation"], tmp_path / "ref", n_bootstrap=0,
                              log=None)
    assert result.rows and result.rows == [r for r in reference.rows if r["image"] != image]


def test_without_a_recorded_shape_a_mask_is_only_checked_to_contain_the_crop_box(predicted, tmp_path):
    image = _an_image_with_a_lesion(predicted)
    segmentation = tmp_path / "segmentation"
    _padded_masks(predicted, segmentation, image)
    old = _copy_maps(predicted["maps"], tmp_path / "old", _strip_original_shape)
    reference = localize_maps(predicted["maps"], predicted["segmentation"], tmp_path / "ref", n_bootstrap=0,
                              log=None)
    # Maps written before original_shape was recorded: the padded mask is not detected (today's behaviour),
    # and since the padding adds no lesion and no window pixel, it scores exactly as the right mask.
    result = localize_maps(old, segmentation, tmp_path / "out", n_bootstrap=0, log=None)
    assert not result.skipped and result.rows == reference.rows
    # Old maps with an exam list that records the shape: the exam list supplies it, and the mask is refused.
    with_list = localize_maps(old, segmentation, tmp_path / "with", exam_list=predicted["exam_list"], n_bootstrap=0,
                              log=None)
    assert [f.name for f in with_list.skipped] == [image] and "original_shape" in with_list.skipped[0].reason
    # Old maps and an old exam list (neither records the shape): today's behaviour again.
    exams = load_exam_list(predicted["exam_list"])
    for exam in exams:
        del exam.image_metadata["original_shape"]
    save_exam_list(exams, tmp_path / "old_data.pkl")
    stripped = _copy_maps(predicted["maps"], tmp_path / "stripped", lambda image, arrays: {
        k: v for k, v in arrays.items() if k not in ("view", "horizontal_flip", "window_location", "original_shape")})
    both_old = localize_maps(stripped, segmentation, tmp_path / "both", exam_list=tmp_path / "old_data.pkl",
                             n_bootstrap=0, log=None)
    assert not both_old.skipped and both_old.rows == reference.rows


def test_cli_round_trip_reports_the_wrong_mask_and_scores_the_rest(predicted, tmp_path, capsys):
    image = _an_image_with_a_lesion(predicted)
    segmentation = tmp_path / "segmentation"
    _padded_masks(predicted, segmentation, image)
    out = tmp_path / "out"
    code = main(["localize", "--maps", str(predicted["maps"]), "--segmentations", str(segmentation),
                 "--output-dir", str(out), "--bootstrap", "0"])
    assert code == 0
    captured = capsys.readouterr()
    n_maps = len(list(predicted["maps"].glob("*.npz")))
    assert f"{n_maps} maps, 1 skipped" in captured.out
    assert f"1 of {n_maps} maps skipped:" in captured.err
    assert f"{image}: {segmentation / image}_benign.png: mask of size" in captured.err
    summary = json.loads((out / "localization.json").read_text())
    assert summary["n_skipped"] == 1 and summary["skipped"][0]["image"] == image
    assert "original_shape" in summary["skipped"][0]["reason"]
    with open(out / "localization_per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and image not in {r["image"] for r in rows}


# ----------------------------------------------------------------------------------------------
# The metrics against independent computations, and their edges
# ----------------------------------------------------------------------------------------------

def _bootstrap_means_by_hand(table, n_bootstrap, seed):
    """Replicate column means with the documented stream: each replicate draws n image indices with
    RandomState(seed).randint(0, n, n), in order."""
    rng = np.random.RandomState(seed)
    n = table.shape[0]
    return np.array([table[rng.randint(0, n, n)].mean(axis=0) for _ in range(n_bootstrap)])


def test_the_intervals_are_the_percentile_bootstrap_by_hand():
    rng = np.random.default_rng(8)
    values = rng.random(12)
    means = np.sort(_bootstrap_means_by_hand(values[:, None], 400, 3)[:, 0])
    # 400 replicates: the 11th and 391st smallest (indices int(0.025 * 400) = 10 and int(0.975 * 400) = 390)
    mean, low, high = mean_with_interval(values, 400, seed=3)
    assert mean == pytest.approx(values.mean())
    assert (low, high) == (pytest.approx(means[10], abs=1e-12), pytest.approx(means[390], abs=1e-12))
    table = rng.random((12, 4))
    best = np.sort(_bootstrap_means_by_hand(table, 400, 5).max(axis=1))
    threshold, value, low, high = best_threshold_dice(table, [0.2, 0.4, 0.6, 0.8], 400, seed=5)
    column = int(np.argmax(table.mean(axis=0)))
    assert threshold == [0.2, 0.4, 0.6, 0.8][column] and value == pytest.approx(table.mean(axis=0)[column])
    assert (low, high) == (pytest.approx(best[10], abs=1e-12), pytest.approx(best[390], abs=1e-12))
    # two images are enough for an interval, zero replicates give none, ties go to the lowest threshold
    assert mean_with_interval([0.2, 0.6], 50, seed=0)[1] is not None
    assert best_threshold_dice(np.array([[0.5, 0.5, 0.1]]), [0.1, 0.2, 0.3], 0) == (0.1, 0.5, None, None)
    assert best_threshold_dice(np.array([[0.5, 0.5], [0.5, 0.5]]), [0.3, 0.7], 10)[0] == 0.3


def test_bad_bootstrap_settings_and_tables_are_refused():
    for name, kwargs in (("n_bootstrap", {"n_bootstrap": -1}), ("seed", {"seed": -1}),
                         ("n_bootstrap", {"n_bootstrap": True}), ("seed", {"seed": 1.5})):
        value = next(iter(kwargs.values()))
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 0, got {value!r}$"):
            mean_with_interval([0.1, 0.2], **kwargs)
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 0, got {value!r}$"):
            best_threshold_dice(np.ones((2, 1)), [0.5], **kwargs)
    assert mean_with_interval([0.1, 0.2], n_bootstrap=0, seed=0) == (pytest.approx(0.15), None, None)
    assert mean_with_interval([0.1, 0.2], n_bootstrap=np.int64(5), seed=np.int64(1))[1] is not None
    for bad in ([], [0.1, np.nan]):
        with pytest.raises(ValueError, match=r"^mean_with_interval needs at least one value and no NaN$"):
            mean_with_interval(bad)
    for table in (np.ones((0, 2)), np.ones((2, 3)), np.ones(2)):
        with pytest.raises(ValueError, match=r"^dice_table must have shape \(n_images >= 1, 2\), got "):
            best_threshold_dice(table, [0.4, 0.6])
    for thresholds in ([], [0.5, np.nan], [-0.1], [1.01]):
        with pytest.raises(ValueError, match=r"^thresholds must be a non-empty list of numbers in \[0, 1\], got "):
            dice_per_threshold(np.zeros((2, 2)), np.ones((2, 2)), thresholds)
    assert dice_per_threshold(np.zeros((2, 2)), np.ones((2, 2)), [0.0, 1.0]).tolist() == [1.0, 0.0]


def test_masks_of_any_type_and_their_refusals():
    target = np.array([[0, 255, 255], [0, 0, 0]], np.uint8)
    predicted = np.array([[0, 1, 0], [0, 1, 0]], np.int64)
    assert dice_score(predicted, target) == pytest.approx(0.5)  # 2 * 1 / (2 + 2)
    assert dice_score(predicted.astype(bool), target.astype(bool)) == pytest.approx(0.5)
    normalized = np.array([[0.0, 0.5, 1.0], [0.2, 0.8, 0.0]], np.float32)
    np.testing.assert_allclose(dice_per_threshold(normalized, target, [0.5]), [2 * 2 / (3 + 2)])
    with pytest.raises(ValueError, match=r"^predicted must be a 2-D array, got shape \(6,\)$"):
        dice_score(predicted.ravel(), target)
    with pytest.raises(ValueError, match=r"^target must be a 2-D array, got shape \(6,\)$"):
        dice_score(predicted, target.ravel())
    with pytest.raises(ValueError, match=r"^map \(3, 2\) and mask \(2, 3\) differ in shape$"):
        dice_per_threshold(normalized.T, target, [0.5])
    with pytest.raises(ValueError, match=r"^map \(3, 2\) and mask \(2, 3\) differ in shape$"):
        pointing_game(normalized.T, target)
    with pytest.raises(ValueError, match=r"^the saliency map has no value inside the image"):
        pointing_game(np.full((2, 3), np.nan), target)
    assert pointing_game(normalized, target) == (True, (0, 2))


def test_thresholds_compare_with_float32_map_values_exactly():
    # 0.7 as float32 is 0.699999988: a pixel normalised to it is at threshold 0.7, as `normalized >= 0.7` says
    saliency = np.array([[0.0, 0.7, 1.0]], np.float32)
    normalized = normalize_map(saliency)
    assert normalized.dtype == np.float32 and normalized[0, 1] == np.float32(0.7)
    target = np.array([[0, 1, 0]])
    dice = dice_per_threshold(normalized, target, [0.7])
    assert dice.tolist() == [dice_score(normalized >= 0.7, target)] == [2 * 1 / (2 + 1)]
    # float64 maps are normalised in float32 too; a constant map is all zeros where it has values
    assert normalize_map(np.array([[1.0, 3.0]])).dtype == np.float32
    constant = normalize_map(np.array([[2.0, np.nan]]))
    assert constant.dtype == np.float32 and constant[0, 0] == 0 and np.isnan(constant[0, 1])


def test_placements_and_maps_that_do_not_fit_are_refused_with_the_reason():
    from mammoscreen.explain.localize import expand_strided_map

    g = WindowGeometry(0, 0, 0, 0, 4, 0, 3)

    def placement(**changes):
        settings = {"geometry": g, "view": "L-CC", "horizontal_flip": "NO", "crop_location": (2, 6, 1, 4),
                    "cropped_shape": (4, 3), "original_shape": (8, 5)}
        return MapPlacement(**{**settings, **changes})

    for stride in (0, True, 1.5):
        with pytest.raises(ValueError, match=rf"^saliency_map_stride must be an integer >= 1, got {stride!r}$"):
            placement(map_stride=stride)
    assert placement(map_stride=np.int64(2)).map_stride == 2 and placement(map_stride=1).map_stride == 1
    for box in ((6, 2, 1, 4), (2, 6, 4, 1), (-1, 3, 1, 4), (2, 2, 1, 4)):
        with pytest.raises(ValueError, match=r"is not \(top, bottom, left, right\) with top < bottom and left < "
                                             r"right$"):
            placement(crop_location=box, cropped_shape=(abs(box[1] - box[0]) or 1, abs(box[3] - box[2])))
    assert placement(crop_location=(0, 4, 0, 3)).crop_location == (0, 4, 0, 3)
    with pytest.raises(ValueError, match=r"^crop box \(window_location\) \(2, 6, 1, 4\) has size 4x3 but the cropped "
                                         r"image was 4x4: the exam list does not belong to these maps"):
        placement(cropped_shape=(4, 4))
    for shape in ((5, 5), (8, 3)):
        with pytest.raises(ValueError, match=rf"^the original image \({shape[0]}x{shape[1]}, original_shape\) does not "
                                             r"contain the crop box \(window_location\) \(2, 6, 1, 4\)"):
            placement(original_shape=shape)
    assert placement(original_shape=(6, 4)).original_shape == (6, 4)  # exactly the crop box's far corner
    with pytest.raises(ValueError, match=r"^unknown view 'L-XX'; expected one of L-CC, R-CC, L-MLO, R-MLO$"):
        placement(view="L-XX")
    assert placement().window_shape == (4, 3)
    with pytest.raises(ValueError, match=r"^a saliency map must be a non-empty 2-D array, got shape \(3,\)$"):
        upsample_to_window(np.zeros(3), (4, 3))
    with pytest.raises(ValueError, match=r"^a saliency map must be a non-empty 2-D array, got shape \(0, 3\)$"):
        upsample_to_window(np.zeros((0, 3)), (4, 3))
    assert upsample_to_window(np.ones((2, 2), np.float64), (4, 3)).dtype == np.float32
    with pytest.raises(ValueError, match=r"^stride must be >= 1, got 0$"):
        expand_strided_map(np.zeros((2, 2)), 0, (4, 3))
    with pytest.raises(ValueError, match=r"^a map sampled every 2 pixels of a 4x3 window must have shape 2x2, got "
                                         r"\(2, 1\)$"):
        expand_strided_map(np.zeros((2, 1)), 2, (4, 3))
    assert expand_strided_map(np.arange(4.0).reshape(2, 2), 2, (4, 3)).tolist() == [[0, 0, 1], [0, 0, 1],
                                                                                   [2, 2, 3], [2, 2, 3]]
    unrecorded = placement(original_shape=None)
    with pytest.raises(ValueError, match=r"^the original image's shape is not recorded in the placement: pass "
                                         r"original_shape$"):
        window_to_original(np.zeros((4, 3)), unrecorded)
    with pytest.raises(ValueError, match=r"^original_shape 9x5 differs from the original image's recorded shape 8x5$"):
        window_to_original(np.zeros((4, 3)), placement(), (9, 5))
    with pytest.raises(ValueError, match=r"^window map of shape \(3, 4\) does not match the window \(4, 3\): upsample "
                                         r"it first$"):
        window_to_original(np.zeros((3, 4)), placement())
    with pytest.raises(ValueError, match=r"^the original image \(5x5\) does not contain the crop box "
                                         r"\(window_location\) \(2, 6, 1, 4\)$"):
        window_to_original(np.zeros((4, 3)), unrecorded, (5, 5))
    back = window_to_original(np.ones((4, 3)), unrecorded, (6, 4), fill_value=-1.0)
    assert back.dtype == np.float32 and back.tolist() == [[-1] * 4] * 2 + [[-1, 1, 1, 1]] * 4


def test_refusals_name_rows_and_columns_in_order_and_an_empty_crop_box_is_refused():
    g = WindowGeometry(0, 0, 0, 0, 4, 0, 3)
    # Rows and columns differ, so a message that printed one of them twice would show.
    with pytest.raises(ValueError, match=r"has size 4x3 but the cropped image was 5x7: the exam list"):
        MapPlacement(g, "L-CC", "NO", (2, 6, 1, 4), (5, 7))
    unrecorded = MapPlacement(g, "L-CC", "NO", (2, 6, 1, 4), (4, 3))
    with pytest.raises(ValueError, match=r"^the original image \(5x9\) does not contain the crop box"):
        window_to_original(np.zeros((4, 3)), unrecorded, (5, 9))
    # A crop box without columns (left == right) is refused even when the cropped shape agrees with it.
    with pytest.raises(ValueError, match=r"with top < bottom and left < right$"):
        MapPlacement(g, "L-CC", "NO", (2, 6, 3, 3), (4, 0))


def test_strided_maps_come_back_as_float32_whatever_their_dtype():
    from mammoscreen.explain.localize import expand_strided_map

    samples = np.array([[0.1, 0.2], [0.3, 0.4]], dtype=np.float64)
    full = expand_strided_map(samples, 2, (4, 3))
    assert full.dtype == np.float32
    np.testing.assert_array_equal(full, np.float32([[0.1, 0.1, 0.2], [0.1, 0.1, 0.2],
                                                    [0.3, 0.3, 0.4], [0.3, 0.3, 0.4]]))


def test_fill_value_marks_the_uncovered_crop_and_window_values_keep_their_fractions():
    # Crop 4x5 at (1, 5, 2, 7) of a 6x8 image; the 2x3 window covers crop rows 1-2 and columns 1-3.
    g = WindowGeometry(0, 0, 0, 1, 3, 1, 4)
    placement = MapPlacement(g, "L-CC", "NO", (1, 5, 2, 7), (4, 5), original_shape=(6, 8))
    window = np.array([[0.25, 0.5, 0.75], [1.25, 1.5, 1.75]])
    back = window_to_original(window, placement, fill_value=0)  # an integer fill: the map stays float32
    expected = np.zeros((6, 8), np.float32)
    expected[2:4, 3:6] = window
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, expected)


@pytest.mark.parametrize("geometry, window_shape", [
    (WindowGeometry(2, 0, 0, 0, 4, 0, 3), (4, 3)),   # padding on top, the window ends above the crop's bottom
    (WindowGeometry(6, 0, 0, 0, 3, 0, 3), (3, 3)),   # the window lies in the top padding only
    (WindowGeometry(0, 0, 3, 1, 4, 2, 6), (3, 4)),   # starts right of column 0, runs into the right padding
    (WindowGeometry(0, 0, 4, 0, 3, 5, 7), (3, 2)),   # the window lies in the right padding only
])
@pytest.mark.parametrize("view, flip", [("L-CC", "NO"), ("R-MLO", "NO")])
def test_hand_built_windows_over_padding_map_back_pixel_by_pixel(geometry, window_shape, view, flip):
    # Maps files carry their window (window_padding, window_borders), so any window over the padded crop must map
    # back by the definition: window pixel (i, j) is crop pixel (top + i - pad_top, left + j) before mirroring.
    crop_location, cropped_shape, original_shape = (1, 7, 2, 7), (6, 5), (9, 10)
    placement = MapPlacement(geometry, view, flip, crop_location, cropped_shape)
    assert placement.window_shape == window_shape
    rows, cols = np.indices(original_shape)
    image = (rows * 100 + cols).astype(np.float32)
    window = np.full(window_shape, np.nan, np.float32)
    flipped = needs_flip(view, flip)
    for i in range(window_shape[0]):
        for j in range(window_shape[1]):
            r, c = geometry.top + i - geometry.pad_top, geometry.left + j
            if 0 <= r < cropped_shape[0] and 0 <= c < cropped_shape[1]:
                c_image = cropped_shape[1] - 1 - c if flipped else c
                window[i, j] = image[crop_location[0] + r, crop_location[2] + c_image]
    back = window_to_original(window, placement, original_shape)
    np.testing.assert_array_equal(back, _expected_back_mapping(image, placement, original_shape))


def test_pointing_game_sees_a_float64_map_as_its_float32_maps_file_would():
    # Maps files hold float32: two values that differ only beyond float32's precision are a tie, and ties go to
    # the first maximum, whether the map comes as float64 or as read back from its file.
    saliency, target = np.array([[1.0, 1.0 + 1e-9], [0.5, np.nan]]), np.array([[0, 1], [0, 0]])
    assert pointing_game(saliency, target) == pointing_game(saliency.astype(np.float32), target) == (False, (0, 0))
    with pytest.raises(ValueError, match=r"^target must be a 2-D array, got shape \(4,\)$"):
        pointing_game(np.zeros((2, 2)), np.zeros(4))


def test_intervals_by_hand_when_the_replicates_come_in_several_blocks():
    # bootstrap_counts yields about 2**20 counts per block: 1500 images x 1000 replicates make two blocks.
    rng = np.random.default_rng(9)
    table = rng.random((1500, 2))
    by_hand = _bootstrap_means_by_hand(table, 1000, 4)
    mean, low, high = mean_with_interval(table[:, 0], 1000, seed=4)
    means = np.sort(by_hand[:, 0])
    assert (low, high) == (pytest.approx(means[25], abs=1e-12), pytest.approx(means[975], abs=1e-12))
    best = np.sort(by_hand.max(axis=1))
    _, _, low, high = best_threshold_dice(table, [0.3, 0.6], 1000, seed=4)
    assert (low, high) == (pytest.approx(best[25], abs=1e-12), pytest.approx(best[975], abs=1e-12))


def test_dice_per_threshold_edge_counts_float64_maps_and_text_thresholds():
    # Nothing predicted and no lesion: Dice 1, as dice_score says; nothing predicted and a one-pixel lesion: 0.
    zeros = normalize_map(np.full((2, 3), 0.4))  # a constant map normalises to zeros
    assert dice_per_threshold(zeros, np.zeros((2, 3)), [0.05, 0.5]).tolist() == [1.0, 1.0] == [
        dice_score(zeros >= 0.05, np.zeros((2, 3)))] * 2
    assert dice_per_threshold(zeros, np.array([[0, 0, 1], [0, 0, 0]]), [0.5]).tolist() == [0.0]
    # A float64 map is compared as float32, like the normalised maps: 0.1 is at threshold 0.1, so both pixels are
    # predicted (P = 2, G = 1, overlap 1) -> 2/3.
    map64, target = np.array([[0.1, 0.3]]), np.array([[1, 0]])
    assert dice_per_threshold(map64, target, [0.1]).tolist() == [2 / 3]
    # thresholds read as text (a CSV, a command line) are numbers
    assert dice_per_threshold(map64, target, ["0.1", "0.2"]).tolist() == [2 / 3, 0.0]
    with pytest.raises(ValueError, match=r"^target must be a 2-D array, got shape \(4,\)$"):
        dice_per_threshold(np.zeros((2, 2)), np.zeros(4), [0.5])
    with pytest.raises(ValueError, match=r"^the saliency map has no value inside the image \(the window does not "
                                         r"overlap the crop\)$"):
        normalize_map(np.full((2, 2), np.nan))


def test_defaults_are_2000_replicates_seed_0_and_float32_tables_give_the_float64_numbers():
    rng = np.random.default_rng(10)
    table = rng.random((20, 3)).astype(np.float32)
    by_hand = _bootstrap_means_by_hand(table.astype(np.float64), 2000, 0)
    # 2000 replicates: the 51st and 1951st smallest
    means = np.sort(by_hand[:, 1])
    _, low, high = mean_with_interval(table[:, 1])
    assert (low, high) == (pytest.approx(means[50], abs=1e-12), pytest.approx(means[1950], abs=1e-12))
    best = np.sort(by_hand.max(axis=1))
    _, _, low, high = best_threshold_dice(table, [0.2, 0.5, 0.8])
    assert (low, high) == (pytest.approx(best[50], abs=1e-12), pytest.approx(best[1950], abs=1e-12))
    # float32 values are widened before any sum: exactly the results of the float64 copy
    assert mean_with_interval(table[:, 1], 300, seed=2) == mean_with_interval(table[:, 1].astype(np.float64), 300,
                                                                             seed=2)
    assert best_threshold_dice(table, [0.2, 0.5, 0.8], 300, seed=2) == best_threshold_dice(
        table.astype(np.float64), [0.2, 0.5, 0.8], 300, seed=2)


def test_best_threshold_interval_needs_two_images_and_one_replicate_and_not_two_thresholds():
    table = np.array([[0.2, 0.9], [0.6, 0.3], [0.4, 0.5]])
    assert best_threshold_dice(table, [0.3, 0.6], 0)[2:] == (None, None)   # no replicates, three images
    assert best_threshold_dice(table[:1], [0.3, 0.6], 10)[2:] == (None, None)  # one image
    one = _bootstrap_means_by_hand(table, 1, 6).max(axis=1)[0]  # one replicate: the interval is that replicate
    assert best_threshold_dice(table, [0.3, 0.6], 1, seed=6)[2:] == (pytest.approx(one, abs=1e-12),) * 2
    low, high = best_threshold_dice(table[:2], [0.3, 0.6], 50, seed=1)[2:]  # two images are enough
    assert low is not None and high is not None
    # one threshold: the best is that column, and its interval is the column's mean interval
    assert best_threshold_dice(table[:, :1], [0.3], 50, seed=1)[2:] == mean_with_interval(table[:, 0], 50, seed=1)[1:]
