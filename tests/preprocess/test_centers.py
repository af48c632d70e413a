"""The optimal-centre window search."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.preprocess.centers import optimal_center


def brute_force_cc_center(image, rightmost_x, window):
    """The documented rule, by direct counting: right edge pinned at the nipple column, the row whose
    window covers most non-zero pixels (windows off the top are shifted down, off the bottom clipped),
    ties broken by distance to the image centre, then by order."""
    h, w = window
    height, width = image.shape
    col = rightmost_x - w // 2 - 1
    lowest, highest = h // 2, height - (h - h // 2)
    rows = [height // 2] if lowest >= highest else range(lowest, highest + 1)
    best, best_key = None, None
    for row in rows:
        t, l = row - h // 2, col - w // 2
        dy, dx = max(-t, 0), max(-l, 0)
        t0, l0 = max(t, 0), max(l, 0)
        b0, r0 = min(row + h - h // 2 + dy, height), min(col + w - w // 2 + dx, width)
        count = int((image[t0:b0, l0:r0] > 0).sum())
        key = (-count, (row - height // 2) ** 2 + (col - width // 2) ** 2)
        if best_key is None or key < best_key:
            best, best_key = (row, col), key
    return best


@pytest.mark.parametrize("seed", range(8))
def test_cc_search_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    height, width = rng.integers(60, 140), rng.integers(30, 80)
    image = np.zeros((height, width), np.uint16)
    for _ in range(4):
        r, c = rng.integers(0, height), rng.integers(0, width)
        image[r:r + rng.integers(5, 40), c:c + rng.integers(5, 30)] = 100
    window = (int(rng.integers(20, 70)), int(rng.integers(10, 50)))
    rightmost_x = int(rng.integers(5, width))
    assert optimal_center(image, "L-CC", rightmost_x, 0, window) == brute_force_cc_center(image, rightmost_x, window)


def test_cc_ties_go_to_the_row_closest_to_the_centre():
    image = np.ones((100, 20), np.uint16)  # every window covers the same number of pixels
    assert optimal_center(image, "R-CC", 15, 0, (40, 10)) == (50, 9)


def test_short_cc_image_uses_the_image_centre_row():
    image = np.ones((30, 20), np.uint16)
    assert optimal_center(image, "L-CC", 12, 0, (40, 10)) == (15, 6)


def test_mlo_pins_the_bottom_right_corner():
    image = np.zeros((100, 50), np.uint16)
    image[10:80, :] = 1
    # bottom-most breast row 90 is pulled up to the last non-zero row (79) ...
    assert optimal_center(image, "L-MLO", 30, 90, (40, 20)) == (79 - 20 - 1, 30 - 10 - 1)
    assert optimal_center(image, "L-MLO", 30, 60, (40, 20)) == (60 - 20 - 1, 30 - 10 - 1)
    # ... looking only at the window's width of columns from the right edge
    image[10:80, 30:] = 0
    assert optimal_center(image, "L-MLO", 30, 90, (40, 20)) == (90 - 20 - 1, 30 - 10 - 1)


def test_unknown_view_is_an_error():
    with pytest.raises(ValueError, match="CC or MLO"):
        optimal_center(np.ones((10, 10)), "L-XCCL", 5, 5, (4, 4))


@pytest.mark.parametrize("value", [1, 5])  # any non-zero pixel is tissue, 1 as well
def test_a_window_wider_than_the_image_counts_the_chest_wall_column(value):
    # 10 x 4 image, window 4 x 8: the window's left edge (column 2 - 4 - 1 - 4 = -7) is shifted to column 0 and
    # covers all four columns. Column 0 holds rows 6-9 (4 pixels), column 2 rows 0-2 (3 pixels): the best of the
    # candidate rows 2..8 (window rows r-2..r+1) is 8, which covers all of column 0's tissue.
    image = np.zeros((10, 4), np.uint16)
    image[6:10, 0] = value
    image[0:3, 2] = value
    assert optimal_center(image, "L-CC", rightmost_x=2, bottommost_y=9, window=(4, 8)) == (8, -3)


def test_ties_go_to_the_row_nearest_the_integer_image_centre():
    # 9 x 6 image, window 2 x 4 (rows r-1..r, columns 0-3 after the shift): row counts 2, 1, 1, 2 on rows 2-5 give
    # 3 pixels at r = 3 and r = 5 (2 at r = 4). The image centre is row 9 // 2 = 4: both are 1 row away and the
    # first wins (half a row further, 4.5, would pick 5).
    image = np.zeros((9, 6), np.uint16)
    image[2, 0:2] = image[5, 0:2] = 7
    image[3, 0] = image[4, 0] = 7
    assert optimal_center(image, "R-CC", rightmost_x=1, bottommost_y=5, window=(2, 4)) == (3, -2)
    # rows 1-4 holding 2, 1, 1, 2 pixels: 3 at r = 2 and r = 4, and r = 4 is the centre row itself
    image = np.zeros((9, 6), np.uint16)
    image[1, 0:2] = image[4, 0:2] = 7
    image[2, 0] = image[3, 0] = 7
    assert optimal_center(image, "R-CC", rightmost_x=1, bottommost_y=4, window=(2, 4)) == (4, -2)


def test_two_candidate_rows_are_compared_too():
    # 3 rows, window of 2: candidates 1 (rows 0-1) and 2 (rows 1-2); the tissue is in row 2
    image = np.zeros((3, 6), np.uint16)
    image[2, 0:3] = 9
    assert optimal_center(image, "L-CC", rightmost_x=2, bottommost_y=2, window=(2, 4)) == (2, -1)
