"""ImageMagick auto-level and resize on generated images (exactness against ImageMagick is a parity test)."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.preprocess.magick import _sinc_fast, auto_level, contributions, magick_resize, resize_filter_name


def test_auto_level_stretches_min_to_0_and_max_to_65535_rounding_half_up():
    image = np.array([[100, 101, 102], [103, 104, 105]], dtype=np.uint16)
    out = auto_level(image)
    # 65535 * (v - 100) / 5 = 0, 13107, 26214, 39321, 52428, 65535 exactly
    assert out.tolist() == [[0, 13107, 26214], [39321, 52428, 65535]]
    halves = auto_level(np.array([[0, 1, 2]], dtype=np.uint16))  # 65535 / 2 = 32767.5 -> 32768
    assert halves.tolist() == [[0, 32768, 65535]]


def test_auto_level_leaves_constant_images_and_scales_8_bit_input():
    flat = np.full((4, 5), 1234, dtype=np.uint16)
    assert np.array_equal(auto_level(flat), flat)
    eight = np.array([[0, 255]], dtype=np.uint8)
    assert auto_level(eight).tolist() == [[0, 65535]]
    with pytest.raises(ValueError):
        auto_level(np.zeros((2, 2, 3), np.uint16))


def test_sinc_fast_approximates_sinc():
    x = np.linspace(0, 4, 401)
    assert np.allclose(_sinc_fast(x), np.sinc(x), atol=3e-8)
    assert np.allclose(_sinc_fast(np.array([5.5])), np.sinc(5.5), atol=1e-12)


@pytest.mark.parametrize("n_in,n_out", [(2023, 1152), (801, 896), (2560, 896), (100, 100), (10, 37)])
def test_contribution_weights_are_normalised(n_in, n_out):
    start, weights = contributions(n_in, n_out, resize_filter_name((n_in, 1), (n_out, 1)))
    assert np.allclose(weights.sum(1), 1.0, atol=1e-12)
    assert start.min() >= 0 and (start + (weights != 0).sum(1)).max() <= n_in


def test_filter_choice_follows_imagemagick():
    assert resize_filter_name((2023, 801), (1152, 896)) == "lanczos"  # wider but shorter: shrinks overall
    assert resize_filter_name((800, 600), (1152, 896)) == "mitchell"  # enlarged overall


def test_resize_keeps_constant_images_and_mirror_symmetry():
    flat = np.full((300, 200), 5000, dtype=np.uint16)
    assert np.array_equal(magick_resize(flat, (115, 89)), np.full((115, 89), 5000, dtype=np.uint16))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65536, (301, 200), dtype=np.uint16)
    out = magick_resize(image, (128, 96))
    mirrored = magick_resize(image[:, ::-1].copy(), (128, 96))
    # the sampling grid is symmetric, so mirroring commutes with resizing up to the epsilon ImageMagick adds
    assert np.abs(out[:, ::-1].astype(int) - mirrored.astype(int)).max() <= 1


def test_resize_of_a_smooth_ramp_stays_close_to_the_ramp():
    rows = np.linspace(0, 60000, 900)
    image = np.repeat(rows[:, None], 50, axis=1).round().astype(np.uint16)
    out = magick_resize(image, (300, 50)).astype(float)
    expected = np.interp((np.arange(300) + 0.5) * 3 - 0.5, np.arange(900), rows)
    assert np.abs(out[5:-5, 25] - expected[5:-5]).max() < 2  # interior: no edge effects
    assert np.array_equal(magick_resize(image, image.shape), image)  # same size: unchanged


def test_resize_rejects_bad_input():
    with pytest.raises(ValueError):
        magick_resize(np.zeros((10, 10), np.float32), (5, 5))
    with pytest.raises(ValueError):
        magick_resize(np.zeros((10, 10), np.uint16), (0, 5))
