"""Grey-level transforms: expected values worked out by hand from the DICOM standard's formulas."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.data import voi


def test_rescale_12_to_16_bits_matches_hand_values():
    # round(x * 65535 / 4095): 1 -> 16.0037 -> 16; 2048 -> 32775.99 -> 32776; 100 -> 1600.37 -> 1600
    out = voi.rescale_to_16bit(np.array([0, 1, 100, 2048, 4094, 4095]), 12)
    assert out.dtype == np.uint16
    assert out.tolist() == [0, 16, 1600, 32776, 65519, 65535]


def test_rescale_agrees_with_floating_point_rounding_for_every_12_bit_value():
    values = np.arange(4096)
    expected = np.floor(values * 65535.0 / 4095.0 + 0.5).astype(np.uint16)
    assert np.array_equal(voi.rescale_to_16bit(values, 12), expected)


def test_rescale_other_depths():
    assert voi.rescale_to_16bit(np.array([0, 512, 1023]), 10).tolist() == [0, 32800, 65535]  # 512*65535/1023 = 32799.53
    assert voi.rescale_to_16bit(np.array([0, 7, 65535]), 16).tolist() == [0, 7, 65535]


def test_rescale_rejects_values_beyond_the_bit_depth():
    with pytest.raises(ValueError, match="12-bit range"):
        voi.rescale_to_16bit(np.array([4096]), 12)
    with pytest.raises(ValueError, match="bit depth"):
        voi.rescale_to_16bit(np.array([1]), 17)


def test_invert_uses_the_fixed_range_not_the_image_maximum():
    assert voi.invert(np.array([0, 100, 4095]), 12).tolist() == [4095, 3995, 0]
    # an image whose brightest pixel is 3000: max(x) - x would give [3000, 0]
    assert voi.invert(np.array([0, 3000]), 12).tolist() == [4095, 1095]


def test_linear_window_identity_case():
    # C=2048, W=4096 on 12 bits: ((x - 2047.5) / 4095 + 0.5) * 4095 = x
    x = np.array([0, 1, 2048, 4094, 4095])
    assert voi.apply_window(x, 2048, 4096, 12).tolist() == x.tolist()


def test_linear_window_hand_values():
    # C=1000, W=201, 8 bits: below 899.5 -> 0, above 1099.5 -> 255, else ((x - 999.5) / 200 + 0.5) * 255
    x = np.array([899, 900, 950, 1000, 1099, 1100])
    # 900: 0.6375 -> 1; 950: 64.3875 -> 64; 1000: 128.1375 -> 128; 1099: 254.3625 -> 254
    assert voi.apply_window(x, 1000, 201, 8).tolist() == [0, 1, 64, 128, 254, 255]


def test_linear_exact_and_sigmoid_hand_values():
    x = np.array([900, 1000, 1050, 1101])
    # LINEAR_EXACT: ((x - 1000) / 200 + 0.5) * 255; 1000 -> 127.5 -> 128 (half up); 1050 -> 191.25 -> 191
    assert voi.apply_window(x, 1000, 200, 8, "LINEAR_EXACT").tolist() == [0, 128, 191, 255]
    # SIGMOID: 255 / (1 + exp(-4 (x - 1000) / 200)); 1000 -> 127.5 -> 128; 1101 -> 255/(1+e^-2.02) = 224.97 -> 225
    assert voi.apply_window(np.array([1000, 1101]), 1000, 200, 8, "SIGMOID").tolist() == [128, 225]


def test_window_rejects_bad_parameters():
    with pytest.raises(ValueError, match="Window Width"):
        voi.apply_window(np.array([1]), 10, 0, 8)
    with pytest.raises(ValueError, match="VOI LUT Function"):
        voi.apply_window(np.array([1]), 10, 10, 8, "CUBIC")


def test_minmax_hand_values_and_constant_image():
    assert voi.minmax_scale(np.array([10, 20, 30]), 8).tolist() == [0, 128, 255]  # 127.5 rounds up
    with pytest.raises(ValueError, match="constant"):
        voi.minmax_scale(np.array([5, 5]), 8)
