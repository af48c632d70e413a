"""The crop's window and landmark points on small images counted by hand, and the crop stage's refusals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mammoscreen.data import exams_from_data, write_png
from mammoscreen.core.stages import InputWarning, StageReport
from mammoscreen.preprocess.crop import (CROPPED_EXAM_LIST, CropError, CropInfo, crop_dataset, crop_info, dilate,
                                         largest_component)


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
    assert failures[0].stage == "crop" and failures[0].io_error
    _, unreported = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False)
    assert [(f.name, f.stage) for f in unreported] == [(CROPPED_EXAM_LIST, "crop")]  # without a report as well
    assert CROPPED_EXAM_LIST in failures[0].reason and "directory" in failures[0].reason.lower()
    assert report.failures == failures and len(cropped[0].image_names()) == 2


def test_crop_info_is_a_value():
    info = crop_info(breast(), "right", iterations=0, buffer_size=3)
    assert info == CropInfo((2, 18, 0, 17), ((5, 12), 11), (12, (0, 11)), 0)


def test_the_official_defaults_are_100_iterations_and_a_50_pixel_buffer():
    # A 201 x 201 square at rows and columns 150-350 of a 600 x 600 image: its centre (250, 250) is the only pixel
    # more than 100 steps (taxicab) from the background, so 100 erosions keep it, 101 leave nothing, and 100
    # dilations grow it back into the diamond |dr| + |dc| <= 100, whose bounding box is the square again.
    image = np.zeros((600, 600), np.uint16)
    image[150:351, 150:351] = 1000
    info = crop_info(image, "right")
    assert info == crop_info(image, "right", iterations=100, buffer_size=50)
    # rows 150-350 plus 50 above and below; columns from 150, plus 50 on the nipple side (right)
    assert info.window_location == (100, 401, 150, 401)
    assert info.distance_from_starting_side == 150
    # the diamond's bottom tip is the single pixel (350, 250): crop row 250, crop column 250 - 150 = 100
    assert info.bottommost_points == (250, (100, 100))
    assert info.rightmost_points == ((150, 150), 200)  # its right tip (250, 350)
    with pytest.raises(CropError, match=r"^no non-zero region is left after erosion \(is the image empty or very "
                                        r"small\?\)$"):
        crop_info(image, "right", iterations=101)


def test_the_nipple_search_skips_a_third_of_the_rows_not_of_the_columns():
    # crop of 9 rows x 3 columns: int(9 / 3) = 3 rows skipped (a third of the columns would be 1)
    image = np.zeros((9, 5), np.uint16)
    image[:, 0] = 700
    image[1, 0:3] = 700  # row 1 reaches column 2, inside the skipped rows
    image[5, 0:2] = 700  # row 5 reaches column 1
    info = crop_info(image, "right", iterations=0, buffer_size=0)
    assert info.window_location == (0, 9, 0, 3)
    assert info.rightmost_points == ((5, 5), 1)


def test_bottom_points_are_counted_from_the_crop_when_the_breast_is_away_from_the_edge():
    shifted = np.zeros((20, 30), np.uint16)
    shifted[:, 4:] = breast("right")[:, :26]  # the block at columns 4-15, its bottom row 14
    info = crop_info(shifted, "right", iterations=0, buffer_size=3)
    assert info.window_location == (2, 18, 4, 21)
    assert info.bottommost_points == (12, (0, 11))


def test_an_integer_mask_gives_the_same_component_as_a_boolean_one():
    mask = np.zeros((6, 8), np.int64)
    mask[1:3, 1:3] = 255
    mask[3:6, 5:8] = 1
    expected = np.zeros((6, 8), bool)
    expected[3:6, 5:8] = True
    assert np.array_equal(largest_component(mask), expected)
    assert np.array_equal(largest_component(mask.astype(np.uint16)), expected)


def test_the_stage_names_itself_in_warnings_and_failures_without_a_report(tmp_path):
    images, exams = small_dataset(tmp_path)
    write_png(images / "c.png", np.zeros((20, 30), np.uint16))  # blank: cannot be cropped
    exams = exams_from_data([{"horizontal_flip": "NO", "L-CC": ["a"], "R-CC": ["b"], "L-MLO": ["c"]}])
    cropped, failures = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False)
    assert [(f.name, f.stage, f.io_error) for f in failures] == [("c", "crop", False)]
    assert failures[0].reason.endswith("c.png: cannot crop: no non-zero region is left after erosion (is the image "
                                       "empty or very small?)")
    report = StageReport("crop")
    crop_dataset(images, exams, tmp_path / "out2", iterations=0, buffer_size=3, progress=False, report=report)
    # both images hold two grey levels (0 and 500)
    levels = "only 2 distinct grey levels: 8-bit data rescaled to 16 bits?"
    assert report.warnings == [InputWarning("a", levels, "crop"), InputWarning("b", levels, "crop")]


def test_changed_settings_are_computed_again_not_taken_from_the_journal(tmp_path):
    images, exams = small_dataset(tmp_path)
    crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3, progress=False)
    # one erosion keeps rows 6-13, columns 1-10 and (6, 11) (row 6 reaches column 13); one dilation gives back
    # rows 5-14 and columns 0-12: with a 1-pixel buffer (4, 16, 0, 14)
    for settings, window in (({"iterations": 0, "buffer_size": 1}, (4, 16, 0, 15)),
                             ({"iterations": 1, "buffer_size": 1}, (4, 16, 0, 14))):
        report = StageReport("crop")
        cropped, _ = crop_dataset(images, exams, tmp_path / "out", progress=False, report=report, **settings)
        assert (report.computed, report.reused) == (2, 0)
        assert cropped[0].image_metadata["window_location"]["L-CC"] == [window]
    report = StageReport("crop")
    crop_dataset(images, exams, tmp_path / "out", iterations=1, buffer_size=1, progress=False, report=report)
    assert (report.computed, report.reused) == (0, 2)


def test_progress_is_shown_unless_switched_off(tmp_path, capsys):
    images, exams = small_dataset(tmp_path)
    crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3)
    assert "crop: 100%" in capsys.readouterr().err
    crop_dataset(images, exams, tmp_path / "out2", iterations=0, buffer_size=3, progress=False)
    assert capsys.readouterr().err == ""


def test_a_given_pool_runs_the_crops(tmp_path):
    images, exams = small_dataset(tmp_path)
    submitted = []

    class CountingPool(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(args)
            return super().submit(fn, *args, **kwargs)

    with CountingPool(max_workers=1) as pool:
        cropped, failures = crop_dataset(images, exams, tmp_path / "out", iterations=0, buffer_size=3,
                                         progress=False, pool=pool)
    assert sorted(submitted) == [(("a", "L-CC", "NO"),), (("b", "R-CC", "NO"),)] and failures == []
    assert cropped[0].image_metadata["window_location"]["L-CC"] == [(2, 18, 0, 17)]


def test_the_stage_uses_the_official_defaults(tmp_path):
    image = np.zeros((600, 600), np.uint16)
    image[150:351, 150:351] = 1000  # the square of test_the_official_defaults_are_100_iterations_and_a_50_pixel_buffer
    write_png(tmp_path / "images" / "s.png", image)
    exams = exams_from_data([{"horizontal_flip": "NO", "L-CC": ["s"]}])
    cropped, failures = crop_dataset(tmp_path / "images", exams, tmp_path / "out", progress=False)
    assert failures == [] and cropped[0].image_metadata["window_location"]["L-CC"] == [(100, 401, 150, 401)]
