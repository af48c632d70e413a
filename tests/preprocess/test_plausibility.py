"""Plausibility of a mammogram: each documented check fires on its case, and on nothing real or synthetic."""

from __future__ import annotations

import numpy as np
import pytest
from testutils import synthetic_breast

from mammoscreen.data.exams import iter_images, load_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.preprocess.plausibility import MIN_ZERO_FRACTION, plausibility_warnings


def _one(image) -> str:
    found = plausibility_warnings(image)
    assert len(found) == 1, found
    return found[0]


def test_a_plausible_mammogram_has_no_warning():
    assert plausibility_warnings(synthetic_breast(value_range=(200, 4000))) == []
    assert plausibility_warnings(synthetic_breast(value_range=(1000, 65000))) == []


def test_all_white():
    assert _one(np.full((300, 200), 4095, np.uint16)).startswith("all white: 100% of the pixels")
    image = synthetic_breast()
    image[:] = np.where(np.arange(image.size).reshape(image.shape) % 20 == 0, 1000, 4095)  # 95% saturated
    assert _one(image).startswith("all white: 95%")


def test_no_zero_background():
    image = synthetic_breast() + 30  # an offset: the background is dark grey, not zero
    assert _one(image).startswith("no zero background: only 0.0% of the pixels are zero")
    # The threshold: 1% of zero pixels is enough.
    rng = np.random.default_rng(0)
    keep = rng.random(image.shape) < 2 * MIN_ZERO_FRACTION
    assert plausibility_warnings(np.where(keep, 0, image).astype(np.uint16)) == []
    keep = rng.random(image.shape) < MIN_ZERO_FRACTION / 2
    assert "no zero background" in _one(np.where(keep, 0, image).astype(np.uint16))


def test_inverted_polarity():
    image = synthetic_breast(noise_line=False)
    inverted = (4095 - image).astype(np.uint16)  # MONOCHROME1 left as stored: white background
    message = _one(inverted)
    assert message.startswith("inverted polarity: the background is bright (median edge value 4095 of maximum 4095)")


@pytest.mark.parametrize("image, expected", [
    (synthetic_breast(value_range=(20, 250)), "8-bit data in a 16-bit PNG: the values never exceed"),
    (synthetic_breast(value_range=(20, 250)).astype(np.uint8), "8-bit PNG"),
    (synthetic_breast(value_range=(20, 250)) * 257, "distinct grey levels: 8-bit data rescaled to 16 bits"),
])
def test_eight_bit_data(image, expected):
    assert expected in _one(image.astype(image.dtype))


def test_no_warning_on_the_reference_mammograms(reference_dir):
    exams = load_exam_list(reference_dir / "exam_list_before_cropping.pkl")
    names = [r.name for r in iter_images(exams)]
    assert len(names) >= 4
    for name in names:
        assert plausibility_warnings(read_png(reference_dir / "images" / f"{name}.png")) == [], name


def test_no_warning_on_the_synthetic_data(synthetic_dataset):
    for record in iter_images(load_exam_list(synthetic_dataset / "exam_list.pkl")):
        assert plausibility_warnings(read_png(synthetic_dataset / "images" / f"{record.name}.png")) == []
