"""The breast crop: fast morphology equals scipy's iterated one; official semantics; the dataset stage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from testutils import synthetic_breast
from mammoscreen.data import exams_from_data, iter_images, load_exam_list, read_png, write_png
from mammoscreen.preprocess.crop import (CROPPED_EXAM_LIST, CropError, apply_crop, breast_facing, crop_dataset,
                                         crop_info, dilate, erode, largest_component)


def random_blobs(seed, shape=(90, 70), density=0.55):
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random(shape), 2.0)
    return noise > np.quantile(noise, 1 - density)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iterations", [1, 2, 5, 13])
def test_distance_transform_morphology_equals_iterated_scipy(seed, iterations):
    mask = random_blobs(seed)
    mask[:, 0] = True  # touching the border exercises scipy's zero border
    assert np.array_equal(erode(mask, iterations), ndimage.binary_erosion(mask, iterations=iterations))
    assert np.array_equal(dilate(mask, iterations), ndimage.binary_dilation(mask, iterations=iterations))


@pytest.mark.parametrize("seed", range(6))
def test_largest_component_matches_scipy_labels_with_lowest_label_on_ties(seed):
    mask = random_blobs(seed, density=0.35)
    labels, count = ndimage.label(mask)
    sizes = [int((labels == i).sum()) for i in range(1, count + 1)]
    expected = labels == 1 + sizes.index(max(sizes))  # first (lowest) label among the largest
    assert np.array_equal(largest_component(mask), expected)
    tie = np.zeros((5, 9), bool)
    tie[1:3, 1:3] = tie[1:3, 5:7] = True
    assert largest_component(tie)[1, 1] and not largest_component(tie)[1, 5]


def official_style_crop(image, facing, iterations, buffer_size):
    """The crop spelled out with scipy's iterated morphology, as an independent oracle for the window."""
    mask = ndimage.binary_erosion(image > 0, iterations=iterations)
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    breast = ndimage.binary_dilation(labels == 1 + np.argmax(sizes), iterations=iterations)
    rows, cols = np.flatnonzero(breast.any(1)), np.flatnonzero(breast.any(0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    top, bottom = max(top - buffer_size, 0), min(bottom + buffer_size, image.shape[0])
    if facing == "left":
        left = max(left - buffer_size, 0)
    else:
        right = min(right + buffer_size, image.shape[1])
    return top, bottom, left, right


@pytest.mark.parametrize("facing", ["left", "right"])
@pytest.mark.parametrize("seed", [0, 1])
def test_crop_window_matches_an_independent_scipy_oracle(facing, seed):
    image = synthetic_breast((300, 220), facing=facing, seed=seed)
    info = crop_info(image, facing, iterations=10, buffer_size=20)
    assert info.window_location == official_style_crop(image, facing, 10, 20)
    cropped = apply_crop(image, info)
    top, bottom, left, right = info.window_location
    assert np.array_equal(cropped, image[top:bottom, left:right])  # pixel values unchanged


def test_thin_background_line_is_removed_by_the_erosion():
    image = synthetic_breast((300, 220), facing="right", noise_line=True)
    info = crop_info(image, "right", iterations=10, buffer_size=0)
    assert info.window_location[0] > 8  # the marker rows 5-7 are not part of the crop


def test_mirrored_image_gives_mirrored_window_and_the_official_plus_one_points():
    image = synthetic_breast((300, 220), facing="right", seed=3)
    right = crop_info(image, "right", iterations=10, buffer_size=20)
    left = crop_info(image[:, ::-1].copy(), "left", iterations=10, buffer_size=20)
    t, b, l, r = right.window_location
    assert left.window_location == (t, b, image.shape[1] - r, image.shape[1] - l)
    assert left.distance_from_starting_side == right.distance_from_starting_side
    # Official quirk: for left-facing breasts the flipped x coordinates are width - x, one more than
    # a plain mirror (width - 1 - x) would give.
    (ry0, ry1), rx = right.rightmost_points
    (ly0, ly1), lx = left.rightmost_points
    assert (ly0, ly1, lx) == (ry0, ry1, rx + 1)
    by, (bx0, bx1) = right.bottommost_points
    assert left.bottommost_points == (by, (bx0 + 1, bx1 + 1))


def test_blank_image_cannot_be_cropped():
    with pytest.raises(CropError, match="no non-zero region"):
        crop_info(np.zeros((300, 200), np.uint16), "right")


def test_facing_follows_view_and_flip_convention():
    assert breast_facing("L-CC", "NO") == "right" and breast_facing("R-MLO", "NO") == "left"
    assert breast_facing("L-CC", "YES") == "left" and breast_facing("R-CC", "YES") == "right"


def make_dataset(tmp_path, blank=()):
    images = tmp_path / "images"
    names = {"L-CC": "e_L-CC", "R-CC": "e_R-CC", "L-MLO": "e_L-MLO", "R-MLO": "e_R-MLO"}
    for view, name in names.items():
        facing = "right" if view[0] == "L" else "left"
        image = synthetic_breast((400, 260), facing=facing, seed=len(name) + ord(view[2]))
        if name in blank:
            image[:] = 0
        write_png(images / f"{name}.png", image)
    exams = exams_from_data([{"horizontal_flip": "NO", **{v: [n] for v, n in names.items()},
                              "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 0,
                                               "right_malignant": 1}}])
    return images, exams


def test_crop_dataset_skips_a_bad_image_and_carries_on(tmp_path):
    images, exams = make_dataset(tmp_path, blank={"e_R-CC"})
    out = tmp_path / "cropped"
    cropped, failures = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    assert [f.name for f in failures] == ["e_R-CC"] and "cannot crop" in failures[0].reason
    assert "e_R-CC.png" in failures[0].reason  # the message names the file
    assert cropped[0].images["R-CC"] == []
    saved = load_exam_list(out / CROPPED_EXAM_LIST)
    assert [r.name for r in iter_images(saved)] == ["e_L-CC", "e_L-MLO", "e_R-MLO"]
    for r in iter_images(saved):
        top, bottom, left, right = r.metadata["window_location"]
        original = read_png(images / f"{r.name}.png")
        assert np.array_equal(read_png(out / f"{r.name}.png"), original[top:bottom, left:right])


def test_crop_dataset_resumes_and_uses_workers(tmp_path):
    images, exams = make_dataset(tmp_path)
    out = tmp_path / "cropped"
    first, _ = crop_dataset(images, exams, out, workers=2, iterations=20, buffer_size=10, progress=False)
    kept = out / "e_L-CC.png"
    stamp = kept.stat().st_mtime_ns
    (out / "e_R-MLO.png").unlink()  # lost output: must be redone
    second, failures = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    assert not failures and (out / "e_R-MLO.png").is_file()
    assert kept.stat().st_mtime_ns == stamp  # finished and unchanged: not redone
    assert [e.to_dict() for e in first] == [e.to_dict() for e in second]

    # A changed input image is cropped again.
    write_png(images / "e_L-CC.png", synthetic_breast((380, 250), facing="right", seed=99))
    third, _ = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    assert kept.stat().st_mtime_ns != stamp
    assert third[0].image_metadata["window_location"]["L-CC"] != first[0].image_metadata["window_location"]["L-CC"]

    # Changed settings start afresh: a now-broken input is read again and reported.
    (images / "e_R-CC.png").write_bytes(b"corrupt")
    _, failures = crop_dataset(images, exams, out, workers=1, iterations=21, buffer_size=10, progress=False)
    assert [f.name for f in failures] == ["e_R-CC"] and "not a readable PNG" in failures[0].reason


OFFICIAL_KEYS = {"window_location", "rightmost_points", "bottommost_points", "distance_from_starting_side"}


def test_crop_dataset_records_the_original_shape_beside_the_unchanged_official_keys(tmp_path):
    import pickle

    images = tmp_path / "images"
    shapes = {"L-CC": (410, 270), "R-CC": (380, 300), "L-MLO": (450, 240), "R-MLO": (395, 285)}
    names = {view: f"s_{view}" for view in shapes}
    for view, shape in shapes.items():
        write_png(images / f"{names[view]}.png",
                  synthetic_breast(shape, facing="right" if view[0] == "L" else "left", seed=ord(view[2]) + shape[0]))
    exams = exams_from_data([{"horizontal_flip": "NO", **{v: [n] for v, n in names.items()}}])
    out = tmp_path / "cropped"
    cropped, failures = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    assert not failures
    for r in iter_images(load_exam_list(out / CROPPED_EXAM_LIST)):
        image = read_png(images / f"{r.name}.png")
        assert r.metadata["original_shape"] == image.shape == shapes[r.view]
        # The official keys are exactly what the crop computes, unchanged by the addition.
        official = crop_info(image, breast_facing(r.view, r.horizontal_flip), 20, 10).as_metadata()
        assert {k: r.metadata[k] for k in OFFICIAL_KEYS} == official
    # On disk: the official per-view keys plus one extra per-view key, same layout as window_location.
    with open(out / CROPPED_EXAM_LIST, "rb") as f:
        (raw,) = pickle.load(f)
    assert set(raw) == {"horizontal_flip", *shapes, *OFFICIAL_KEYS, "original_shape"}
    assert raw["original_shape"] == {view: [shape] for view, shape in shapes.items()}


def test_a_journal_written_before_original_shape_is_not_mixed_with_new_results(tmp_path):
    import json

    images, exams = make_dataset(tmp_path)
    out = tmp_path / "cropped"
    crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    # Make the journal look like one from an older mammoscreen: an older layout, no original_shape in its results.
    journal = out / ".crop_journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    lines[0].pop("journal")
    for line in lines[1:]:
        del line["value"]["result"]["metadata"]["original_shape"]
    journal.write_text("".join(json.dumps(line) + "\n" for line in lines))
    (out / "e_R-MLO.png").unlink()  # one image to redo: old and new results would be mixed
    cropped, failures = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    assert not failures
    for r in iter_images(cropped):
        assert r.metadata["original_shape"] == read_png(images / f"{r.name}.png").shape


def test_an_exam_list_without_original_shape_still_goes_through_the_centres(tmp_path):
    from mammoscreen.data.exams import exams_to_data, save_exam_list
    from mammoscreen.preprocess.centers import centers_dataset

    images, exams = make_dataset(tmp_path)
    out = tmp_path / "cropped"
    cropped, _ = crop_dataset(images, exams, out, workers=1, iterations=20, buffer_size=10, progress=False)
    old = exams_to_data(cropped)
    for exam in old:
        del exam["original_shape"]
    old_exams = exams_from_data(old)
    save_exam_list(old_exams, tmp_path / "old.pkl")
    reloaded = load_exam_list(tmp_path / "old.pkl")
    assert all("original_shape" not in r.metadata for r in iter_images(reloaded))
    centred, failures = centers_dataset(out, reloaded, tmp_path / "data.pkl", progress=False,
                                        windows={"CC": (300, 200), "MLO": (300, 200)})
    assert not failures
    new_centred, _ = centers_dataset(out, cropped, tmp_path / "data_new.pkl", progress=False,
                                     windows={"CC": (300, 200), "MLO": (300, 200)})
    for before, after in zip(iter_images(centred), iter_images(new_centred)):
        assert "original_shape" not in before.metadata and "original_shape" in after.metadata
        assert before.metadata["best_center"] == after.metadata["best_center"]
