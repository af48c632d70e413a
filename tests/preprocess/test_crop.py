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
        image = synthetic_breast((400, 260), facing="right" if view[0] == "L" else "left", seed=len(name) + ord(view[2]))
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
