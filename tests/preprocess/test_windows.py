"""Input windows: official padding rules, random draws in the official order, standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.preprocess.windows import (align_to_window, extract_window, flip_to_face_right, standardize,
                                            window_geometry)


def test_short_cc_image_is_padded_evenly_and_narrow_image_on_the_right():
    image = np.arange(1, 1 + 30 * 20, dtype=np.float32).reshape(30, 20)
    g = window_geometry(image.shape, (40, 32), (15, -5), "L-CC")
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (5, 5, 12)
    out = extract_window(image, g, (40, 32))
    expected = np.zeros((40, 32), np.float32)
    expected[5:35, :20] = image
    assert np.array_equal(out, expected)


def test_short_mlo_image_is_padded_at_the_bottom_only():
    image = np.ones((30, 40), np.float32)
    g = window_geometry(image.shape, (40, 32), (20, 20), "R-MLO")
    assert (g.pad_top, g.pad_bottom, g.pad_right) == (0, 10, 0)
    out = extract_window(image, g, (40, 32))
    assert out[:30].all() and not out[30:].any()


def test_large_image_window_is_centred_and_shifted_inside():
    image = np.random.default_rng(0).random((100, 80)).astype(np.float32)
    g = window_geometry(image.shape, (40, 32), (50, 40), "L-CC")
    assert g.borders == (30, 70, 24, 56)
    assert np.array_equal(extract_window(image, g, (40, 32)), image[30:70, 24:56])
    g = window_geometry(image.shape, (40, 32), (95, 75), "L-CC")  # would stick out: shifted inside
    assert g.borders == (60, 100, 48, 80)


def test_test_time_window_draws_four_uniforms_like_the_official_code():
    rng, reference = np.random.RandomState(0), np.random.RandomState(0)
    window_geometry((100, 80), (40, 32), (50, 40), "L-CC", rng=rng)
    reference.uniform(-1, 1, size=4)
    assert rng.uniform() == reference.uniform()


def test_noisy_window_draws_six_uniforms_and_stays_inside():
    for seed in range(30):
        rng = np.random.RandomState(seed)
        g = window_geometry((120, 90), (60, 40), (60, 70), "L-MLO", rng=rng, max_crop_noise=(10, 10),
                            max_crop_size_noise=10)
        reference = np.random.RandomState(seed)
        reference.uniform(-1, 1, size=2)
        reference.uniform(-1, 1, size=4)
        assert rng.uniform() == reference.uniform()
        assert 0 <= g.top < g.bottom <= 120 + g.pad_top + g.pad_bottom and 0 <= g.left < g.right <= 90 + g.pad_right
        out = extract_window(np.ones((120, 90), np.float32), g, (60, 40))
        assert out.shape == (60, 40)


def test_auxiliary_channels_follow_the_window():
    image = np.random.default_rng(1).random((50, 30, 3)).astype(np.float32)
    g = window_geometry((50, 30), (40, 20), (25, 10), "L-CC")
    out = extract_window(image, g, (40, 20))
    assert out.shape == (40, 20, 3)
    assert np.array_equal(out[..., 2], extract_window(image[..., 2], g, (40, 20)))


def test_standardize_matches_the_formula_and_floors_the_std():
    x = np.random.default_rng(2).random((20, 10)).astype(np.float32) * 4000
    out = standardize(x)
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5
    assert np.array_equal(standardize(np.full((4, 4), 7, np.float32)), np.zeros((4, 4), np.float32))
    assert np.array_equal(x, np.random.default_rng(2).random((20, 10)).astype(np.float32) * 4000)  # input untouched


def test_flip_convention():
    image = np.arange(6).reshape(2, 3)
    assert np.array_equal(flip_to_face_right(image, "R-CC", "NO"), image[:, ::-1])
    assert np.array_equal(flip_to_face_right(image, "L-CC", "NO"), image)
    assert np.array_equal(flip_to_face_right(image, "L-MLO", "YES"), image[:, ::-1])


@pytest.mark.parametrize("view", ["L-CC", "R-CC"])
def test_masks_in_any_frame_align_with_the_window(view):
    original = np.zeros((80, 60), np.uint8)
    original[30:40, 35:45] = 1
    crop = (10, 70, 20, 60)  # top, bottom, left, right
    cropped = original[10:70, 20:60]
    image = flip_to_face_right(cropped.astype(np.float32), view, "NO")
    g = window_geometry(image.shape, (64, 48), (30, 20), view)
    expected = extract_window(image, g, (64, 48))
    assert expected.sum() == 100
    assert np.array_equal(align_to_window(cropped, view, "NO", g, (64, 48), cropped.shape), expected)
    assert np.array_equal(align_to_window(original, view, "NO", g, (64, 48), cropped.shape, crop), expected)
    assert np.array_equal(align_to_window(expected, view, "NO", g, (64, 48), cropped.shape), expected)
    with pytest.raises(ValueError, match="matches neither"):
        align_to_window(np.zeros((5, 5)), view, "NO", g, (64, 48), cropped.shape)
