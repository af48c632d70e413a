"""The crop's window and landmark points on small images counted by hand, and the crop stage's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.data import exams_from_data, write_png
from mammoscreen.preprocess.crop import CROPPED_EXAM_LIST, CropError, CropInfo, crop_dataset, crop_info, dilate
from mammoscreen.core.stages import StageReport


def breast(facing="right"):
    """20 x 30: a 10 x 12 block on rows 5-14 at the chest wall, and row 6 reaching two columns further (the top
    third of the crop, which the nipple search skips)."""
    image = np.zeros((20, 30), np.uint16)
    image[5:15, 0:12] = 500
    image[6, 0:14] = 500
    return image if facing == "right" else image[:, ::-1].copy()


def test_the_crop_of_a_right_facing_breast_counted_by_hand():
    info = crop_info(breast("right"), "right", iterations=0, buffer_size=3)
    # rows 5-14 plus 3 above and below; columns 0-13 plus 3 on the nipple side only
    assert info.window_location == (2, 18, 0, 17)
    assert info.distance_from_starting_side == 0
    # the bottom row (14) spans columns 0-11; in the crop, row 14 - 2 = 12
    assert info.bottommost_points == (12, (0, 11))
    # the crop has 16 rows, the search skips int(16 / 3) = 5 of them: row 6 (crop row 4) is not searched, so the
    # nipple column is 11 (not 13), on crop rows 5-12
    assert info.rightmost_points == ((5, 12), 11)
    assert info.as_metadata() == {"window_location": (2, 18, 0, 17), "rightmost_points": ((5, 12), 11),
                                  "bottommost_points": (12, (0, 11)), "distance_from_starting_side": 0}


def test_the_crop_of_a_left_facing_breast_counted_by_hand():
    info = crop_info(breast("left"), "left", iterations=0, buffer_size=3)
    # columns 16-29: the buffer goes on the left (nipple side) only
    assert info.window_location == (2, 18, 13, 30)
    assert info.distance_from_starting_side == 0
    # mirrored coordinates are width - x (the official convention): bottom row columns 18-29 -> 1-12
    assert info.bottommost_points == (12, (1, 12))
    # nipple at crop column 5 of 17 -> 17 - 5 = 12 in the mirrored crop
    assert info.rightmost_points == ((5, 12), 12)


def test_the_search_start_and_the_distance_from_the_chest_wall():
    info = crop_info(breast("right"), "right", iterations=0, buffer_size=3, rightmost_search_start=0.0)
    assert info.rightmost_points == ((4, 4), 13)  # row 6 (crop row 4) is searched now
    shifted = np.zeros((20, 30), np.uint16)
    shifted[:, 4:] = breast("right")[:, :26]  # four empty columns at the chest wall
    assert crop_info(shifted, "right", iterations=0, buffer_size=3).distance_from_starting_side == 4
    mirrored = shifted[:, ::-1].copy()
    assert crop_info(mirrored, "left", iterations=0, buffer_size=3).distance_from_starting_side == 4


def test_the_buffer_stops_at_the_image_edges():
    image = np.zeros((12, 10), np.uint16)
    image[1:11, 0:8] = 1
    info = crop_info(image, "right", iterations=0, buffer_size=5)
    assert info.window_location == (0, 12, 0, 10)
    assert crop_info(image[:, ::-1].copy(), "left", iterations=0, buffer_size=5).window_location == (0, 12, 0, 10)
    info = crop_info(image, "right", iterations=0, buffer_size=0)
    assert info.window_location == (1, 11, 0, 8) and info.bottommost_points == (9, (0, 7))


def test_the_morphology_removes_what_is_thinner_than_the_iterations():
    image = np.zeros((40, 40), np.uint16)
    image[5:35, 0:20] = 9
    image[20, 20:38] = 9  # a one-pixel line (a label, a wire) attached to the breast
    assert crop_info(image, "right", iterations=0, buffer_size=0).window_location == (5, 35, 0, 38)
    # one erosion removes the line but for its first pixel beside the block (its right neighbour was the line);
    # the block survives eroded by one, and one dilation grows it back: the crop ends one column past the block
    assert crop_info(image, "right", iterations=1, buffer_size=0).window_location == (5, 35, 0, 21)
    image[20, 20:38] = 0
    image[35, 20:38] = 9  # a line below the block touching its corner diagonally: not 4-connected, dropped at once
    assert crop_info(image, "right", iterations=0, buffer_size=0).window_location == (5, 35, 0, 20)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match=r"^facing must be 'left' or 'right', got 'up'$"):
        crop_info(breast(), "up")
    with pytest.raises(CropError, match=r"^expected a 2-D image, got shape \(20, 30, 3\)$"):
        crop_info(np.zeros((20, 30, 3), np.uint16), "right")
    assert not dilate(np.zeros((5, 5), bool), 3).any()  # nothing to grow from
    assert dilate(np.eye(1, 5, 2, dtype=bool).reshape(1, 5), 1).tolist() == [[False, True, True, True, False]]


def small_dataset(tmp_path):
    images = tmp_path / "images"
    write_png(images / "a.png", breast("right"))
    write_png(images / "b.png", breast("left"))
    return images, exams_from_data([{"horizontal_flip": "NO", "L-CC": ["a"], "R-CC": ["b"]}])


def test_the_crop_stage_refuses_to_write_over_the_images(tmp_path):
    images, exams = small_dataset(tmp_path)
    with pytest.raises(ValueError, match=r"is the images directory: cropping would overwrite the original mammograms; "
                                         r"choose another --output-dir$"):
        crop_dataset(images, exams, images / ".." / "images", iterations=0, buffer_size=3, progress=False)


def test_the_crop_stage_records_what_it_computed(tmp_path):
    images, exams = small_dataset(tmp_path)
    report = StageReport("crop")
    cropped, failures = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False,
                                     report=report)
    assert failures == [] and report.computed == 2
    meta = cropped[0].image_metadata
    assert meta["window_location"] == {"L-CC": [(2, 18, 0, 17)], "R-CC": [(2, 18, 13, 30)], "L-MLO": [], "R-MLO": []}
    assert meta["original_shape"]["L-CC"] == [(20, 30)]
    # a damaged journal entry is computed again rather than used
    journal = tmp_path / "out" / ".crop_journal.jsonl"
    text = journal.read_text()
    assert text.count('"warnings": ["') == 2
    journal.write_text(text.replace('"warnings": ["', '"warnings": [1, "', 1))  # a warning that is not a string
    report = StageReport("crop")
    again, _ = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False,
                            report=report)
    assert again == cropped and (report.computed, report.reused) == (1, 1)


def test_an_unwritable_cropped_exam_list_is_reported(tmp_path):
    images, exams = small_dataset(tmp_path)
    (tmp_path / "out" / CROPPED_EXAM_LIST).mkdir(parents=True)  # a directory where the file should go
    report = StageReport("crop")
    cropped, failures = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False,
                                     report=report)
    assert [f.name for f in failures] == [CROPPED_EXAM_LIST] and report.output_failed
    assert report.failures == failures and len(cropped[0].image_names()) == 2


def test_crop_info_is_a_value():
    info = crop_info(breast(), "right", iterations=0, buffer_size=3)
    assert info == CropInfo((2, 18, 0, 17), ((5, 12), 11), (12, (0, 11)), 0)
