"""Input windows, the parts the parity tests reach only through whole networks: the noise rules of the official
augmentation spelled out independently, mapping window pixels back to the image, what a maps file records."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mammoscreen.data.exams import ImageRecord
from mammoscreen.preprocess.windows import (ImageOrigin, WindowGeometry, align_to_window, extract_window,
                                            model_input, placement_arrays, standardize, window_geometry)


def official_noisy_window(shape, window, center, view, seed, crop_noise, size_noise):
    """The official ``random_augmentation_best_center`` for an image larger than the window plus its noise, written
    out step by step from its description (no padding): window around the centre, shifted inside, position noise
    towards the side with room, then the size noise of each border, scaled to the window's aspect ratio."""
    rng = np.random.RandomState(seed)
    height, width = shape
    h, w = window
    m = rng.uniform(-1, 1, 2) if any(crop_noise) else np.zeros(2)
    top = min(max(center[0] - h // 2, 0), height - h)
    left = min(max(center[1] - w // 2, 0), width - w)
    bottom, right = top + h, left + w
    if top == 0:
        m[0] = abs(m[0])
    elif bottom == height:
        m[0] = -abs(m[0])
    if left == 0:
        m[1] = abs(m[1])
    elif right == width:
        m[1] = -abs(m[1])
    room_y = height - bottom if m[0] >= 0 else top
    room_x = width - right if m[1] >= 0 else left
    dy = int(round(min(crop_noise[0], room_y) * m[0]))
    dx = int(round(min(crop_noise[1], room_x) * m[1]))
    top, bottom, left, right = top + dy, bottom + dy, left + dx, right + dx
    s = rng.uniform(-1, 1, 4)
    noise = min(size_noise, top, height - bottom, left, width - right)
    if h >= w:
        nv, nh = noise, round(noise * w / h)
    else:
        nv, nh = round(noise * h / w), noise
    return (top + int(round(nv * s[0])), bottom + int(round(nv * s[1])), left + int(round(nh * s[2])),
            right + int(round(nh * s[3])))


@pytest.mark.parametrize("view", ["L-CC", "R-MLO"])
@pytest.mark.parametrize("center, window", [((60, 50), (40, 30)), ((10, 5), (40, 30)), ((115, 95), (40, 30)),
                                            ((60, 50), (30, 40)), ((20, 90), (30, 40)),
                                            ((96, 82), (40, 30)), ((96, 82), (30, 40))])  # less room than noise
def test_noisy_windows_follow_the_official_rules(view, center, window):
    for seed in range(12):
        g = window_geometry((120, 100), window, center, view, rng=np.random.RandomState(seed),
                            max_crop_noise=(12, 9), max_crop_size_noise=7)
        assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 0, 0)
        assert g.borders == official_noisy_window((120, 100), window, center, view, seed, (12, 9), 7), seed


def test_position_noise_alone_moves_without_resizing():
    shifts = set()
    for seed in range(20):
        g = window_geometry((120, 100), (40, 30), (60, 50), "L-CC", rng=np.random.RandomState(seed),
                            max_crop_noise=(10, 10))
        assert (g.bottom - g.top, g.right - g.left) == (40, 30)
        assert g.borders == official_noisy_window((120, 100), (40, 30), (60, 50), "L-CC", seed, (10, 10), 0)
        shifts.add((g.top - 40, g.left - 35))
    assert len(shifts) > 10 and all(abs(y) <= 10 and abs(x) <= 10 for y, x in shifts)


def test_padding_makes_room_for_the_noise():
    # CC: rows short of window + 2 * noise are padded on both sides; MLO: at the bottom only; columns: right only.
    g = window_geometry((45, 30), (40, 20), (22, 10), "L-CC", rng=np.random.RandomState(0), max_crop_noise=(5, 5))
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (2, 3, 0)  # 40 + 2 * 5 - 45 = 5 rows: 2 above, 3 below
    assert 0 <= g.top and g.bottom <= 50 and g.bottom - g.top == 40
    g = window_geometry((50, 30), (40, 20), (25, 10), "L-CC", rng=np.random.RandomState(0), max_crop_noise=(5, 5))
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 0, 0)  # exactly window + 2 * noise: no padding
    g = window_geometry((44, 22), (40, 20), (25, 10), "L-MLO", rng=np.random.RandomState(0), max_crop_noise=(5, 5))
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 1, 3)
    g = window_geometry((44, 22), (40, 20), (22, 11), "L-CC", rng=np.random.RandomState(0), max_crop_noise=(0, 0),
                        max_crop_size_noise=3)
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (1, 1, 1)


def test_noise_needs_a_generator_and_views_must_be_known():
    with pytest.raises(ValueError, match=r"^window noise needs a random number generator \(rng\)$"):
        window_geometry((100, 80), (40, 32), (50, 40), "L-CC", max_crop_noise=(0, 3))
    with pytest.raises(ValueError, match=r"^window noise needs a random number generator \(rng\)$"):
        window_geometry((100, 80), (40, 32), (50, 40), "L-CC", max_crop_size_noise=1)
    with pytest.raises(ValueError, match=r"^unknown view 'L-XCCL'$"):
        window_geometry((100, 80), (40, 32), (50, 40), "L-XCCL")


def test_window_pixels_map_back_to_the_image():
    g = WindowGeometry(pad_top=5, pad_bottom=0, pad_right=0, top=10, bottom=50, left=4, right=24)
    rows, cols = g.to_image(np.array([0, 1, 19.5]), np.array([0, 3, 9]), (20, 10))
    assert rows.tolist() == [5, 7, 44] and cols.tolist() == [4, 10, 22]  # 2x in both directions, minus the padding
    assert g.borders == (10, 50, 4, 24)


def test_a_resized_window_is_resampled_bicubically():
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    g = WindowGeometry(0, 0, 0, 0, 8, 0, 8)
    out = extract_window(image, g, (4, 4))
    assert out.shape == (4, 4) and out.dtype == np.float32
    # a linear ramp stays linear under bicubic resampling (away from the edges): rows step 16, columns 2
    assert np.allclose(np.diff(out[1:3, 1:3], axis=0), 16) and np.allclose(np.diff(out[1:3, 1:3], axis=1), 2)
    channels = extract_window(np.stack([image, -image], axis=2), g, (4, 4))
    assert channels.shape == (4, 4, 2) and np.allclose(channels[..., 1], -out)


def test_model_input_is_flip_window_standardise():
    rng = np.random.default_rng(3)
    cropped = rng.random((50, 40)).astype(np.float32) * 1000
    out = model_input(cropped, "R-CC", "NO", (25, 20), (20, 16))
    mirrored = cropped[:, ::-1]
    window = mirrored[15:35, 12:28]
    expected = (window - window.mean(dtype=np.float32)) / window.std(dtype=np.float32)
    assert out.shape == (20, 16) and np.allclose(out, expected, atol=1e-5)
    assert np.allclose(model_input(cropped, "L-CC", "NO", (25, 20), (20, 16)),
                       standardize(cropped[15:35, 12:28]))


def test_standardize_floors_a_tiny_spread():
    x = np.array([[1.0, 1.0 + 2e-6]], np.float32)  # std 1e-6 < 1e-5: divided by 1e-5, not by its std
    out = standardize(x)
    assert np.allclose(out, (x - x.mean()) / 1e-5, rtol=1e-3)


def test_the_origin_of_an_image_and_its_placement_arrays():
    record = ImageRecord(0, "L-MLO", 0, "a", "YES", {"window_location": (np.int64(1), 2, 3, 4),
                                                       "original_shape": [np.int32(100), 80]})
    origin = ImageOrigin.of(record)
    assert origin == ImageOrigin("L-MLO", "YES", (1, 2, 3, 4), (100, 80))
    assert all(type(v) is int for v in origin.crop_location + origin.original_shape)
    assert ImageOrigin.of(ImageRecord(0, "R-CC", 0, "b", "NO", {})) == ImageOrigin("R-CC", "NO", None, None)
    g = WindowGeometry(1, 2, 3, 4, 5, 6, 7)
    arrays = placement_arrays(g, (30, 20), origin)
    assert set(arrays) == {"window_borders", "window_padding", "cropped_shape", "view", "horizontal_flip",
                           "window_location", "original_shape"}
    assert arrays["window_borders"].tolist() == [4, 5, 6, 7] and arrays["window_borders"].dtype == np.int64
    assert arrays["window_padding"].tolist() == [1, 2, 3] and arrays["window_padding"].dtype == np.int64
    assert arrays["cropped_shape"].tolist() == [30, 20] and arrays["cropped_shape"].dtype == np.int64
    assert str(arrays["view"]) == "L-MLO" and str(arrays["horizontal_flip"]) == "YES"
    assert arrays["window_location"].tolist() == [1, 2, 3, 4] and arrays["window_location"].dtype == np.int64
    assert arrays["original_shape"].tolist() == [100, 80] and arrays["original_shape"].dtype == np.int64
    bare = placement_arrays(g, (30, 20), ImageOrigin("R-CC", "NO"))
    assert "window_location" not in bare and "original_shape" not in bare


def test_a_one_sided_pad_starts_the_window_at_the_image_edge():
    # MLO rows (44 < 40 + 5) and columns (22 < 20 + 5) are padded at the far side only; the window starts at row 0
    # and column 0, so the position noise can only move it down and right. RandomState(0) draws 0.0976 and 0.4304:
    # round(5 * 0.0976) = 0 rows and round(5 * 0.4304) = 2 columns of the 5 of room on each axis.
    g = window_geometry((44, 22), (40, 20), (25, 10), "L-MLO", rng=np.random.RandomState(0), max_crop_noise=(5, 5))
    assert g.borders == (0, 40, 2, 22)


def test_standardize_computes_in_float32_whatever_the_input_type():
    image = np.random.default_rng(4).integers(0, 4096, (30, 20)).astype(np.uint16)
    out = standardize(image)
    assert out.dtype == np.float32
    assert np.array_equal(out, standardize(image.astype(np.float32)))
    assert not np.array_equal(out, ((image - image.mean()) / image.std()).astype(np.float32))  # float64 differs


def test_aligning_arrays_of_every_frame():
    g = window_geometry((12, 10), (8, 6), (6, 5), "R-CC")
    rng = np.random.default_rng(6)
    cropped = rng.random((12, 10)).astype(np.float32)
    # channels follow the same window as a 2-D array
    both = align_to_window(np.stack([cropped, 2 * cropped], axis=2), "R-CC", "NO", g, (8, 6), (12, 10))
    single = align_to_window(cropped, "R-CC", "NO", g, (8, 6), (12, 10))
    assert both.shape == (8, 6, 2) and np.array_equal(both[..., 0], single) and np.array_equal(both[..., 1], 2 * single)
    # an array already in window coordinates comes back as float32, unchanged
    mask = np.zeros((8, 6), bool)
    mask[2, 3] = True
    as_window = align_to_window(mask, "R-CC", "NO", g, (8, 6), (12, 10))
    assert as_window.dtype == np.float32 and as_window.tolist() == mask.astype(np.float32).tolist()
    # an original image whose crop box reaches its last row and column is cut to the crop
    original = np.zeros((20, 13), np.float32)
    original[8:20, 3:13] = cropped
    assert np.array_equal(align_to_window(original, "R-CC", "NO", g, (8, 6), (12, 10), (8, 20, 3, 13)), single)
    with pytest.raises(ValueError, match=r"^array of shape \(19, 13\) matches neither the window \(8, 6\), the cropped "
                                         r"image \(12, 10\) nor the original image$"):
        align_to_window(original[:19], "R-CC", "NO", g, (8, 6), (12, 10), (8, 20, 3, 13))


def test_an_odd_window_has_its_extra_row_and_column_after_the_centre():
    # 21 x 15 around (25, 20): rows 25 - 10 .. 25 + 11, columns 20 - 7 .. 20 + 8 (bottom and right exclusive)
    g = window_geometry((50, 40), (21, 15), (25, 20), "L-CC")
    assert g.borders == (15, 36, 13, 28)
    assert window_geometry((50, 40), (21, 15), (25, 20), "R-MLO").borders == (15, 36, 13, 28)


def test_each_axis_pads_for_its_own_noise():
    # rows need 40 + 2 * 5 = 50 > 45: padded; columns need 20 + 0 = 20 <= 30: not padded
    g = window_geometry((45, 30), (40, 20), (22, 10), "L-CC", rng=np.random.RandomState(0), max_crop_noise=(5, 0))
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (2, 3, 0)
    # and the other way round
    g = window_geometry((60, 22), (40, 20), (30, 10), "L-CC", rng=np.random.RandomState(0), max_crop_noise=(0, 5))
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 0, 3)


@pytest.mark.parametrize("view, shape", [("L-CC", (50, 25)), ("R-MLO", (45, 25))])
def test_an_image_exactly_as_large_as_window_plus_noise_is_not_padded(view, shape):
    # CC rows need window + 2 * noise, MLO rows window + noise, columns window + noise: exactly that is enough, and
    # the window sits around an off-centre point as in an image of any larger size
    for seed in range(8):
        g = window_geometry(shape, (40, 20), (30, 14), view, rng=np.random.RandomState(seed), max_crop_noise=(5, 5))
        assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 0, 0)
        assert g.borders == official_noisy_window(shape, (40, 20), (30, 14), view, seed, (5, 5), 0), seed


def test_extracting_a_window_that_reaches_past_the_image():
    image = np.arange(1, 41, dtype=np.float32).reshape(8, 5)
    # two padded rows on top, the window ending above the image's bottom: window rows -2..3 of the image
    out = extract_window(image, WindowGeometry(2, 2, 0, 0, 6, 0, 5), (6, 5))
    assert np.array_equal(out[:2], np.zeros((2, 5))) and np.array_equal(out[2:], image[:4])
    # a window starting inside and ending in the right padding
    out = extract_window(image, WindowGeometry(0, 0, 3, 1, 5, 2, 8), (4, 6))
    assert np.array_equal(out[:, :3], image[1:5, 2:5]) and not out[:, 3:].any()
    # a window wholly in the right padding holds nothing
    assert not extract_window(image, WindowGeometry(0, 0, 9, 0, 8, 6, 10), (8, 4)).any()


def test_a_resized_window_is_bicubic_as_the_official_opencv_call():
    # a quadratic surface: bilinear and bicubic resampling differ on it
    rows, cols = np.mgrid[0:12, 0:10].astype(np.float32)
    image = rows ** 2 + 3 * cols ** 2
    g = WindowGeometry(0, 0, 0, 0, 12, 0, 10)
    out = extract_window(image, g, (5, 4))
    assert np.array_equal(out, cv2.resize(image, (4, 5), interpolation=cv2.INTER_CUBIC))
    assert not np.allclose(out, cv2.resize(image, (4, 5), interpolation=cv2.INTER_LINEAR))
    # a single auxiliary channel keeps its axis
    channel = extract_window(image[..., None], g, (5, 4))
    assert channel.shape == (5, 4, 1) and np.array_equal(channel[..., 0], out)


def test_placement_arrays_are_int64_whatever_integers_they_are_given():
    i = np.int32
    g = WindowGeometry(i(1), i(2), i(3), i(4), i(5), i(6), i(7))
    origin = ImageOrigin("L-CC", "NO", (i(1), i(2), i(3), i(4)), (i(100), i(80)))
    arrays = placement_arrays(g, (i(30), i(20)), origin)
    for key in ("window_borders", "window_padding", "cropped_shape", "window_location", "original_shape"):
        assert arrays[key].dtype == np.int64, key


@pytest.mark.parametrize("seed, center, window", [(4, (10, 30), (20, 20)), (47, (15, 15), (4, 4)),
                                                  (118, (15, 15), (4, 4))])
def test_a_window_outside_the_image_or_empty_is_refused(seed, center, window):
    # Only a negative size noise (a nonsensical setting) can move a border past the image or onto the opposite one;
    # these seeds do it to the top border alone, to the rows (top == bottom) and to the columns (left == right).
    with pytest.raises(ValueError, match=r"^window \[.*\] falls outside the padded image (60x60|30x30)$"):
        window_geometry((60, 60) if seed == 4 else (30, 30), window, center, "L-CC", rng=np.random.RandomState(seed),
                        max_crop_size_noise=-3 if seed == 4 else -2)
