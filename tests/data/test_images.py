"""PNG reading and writing: bit depth kept, colour and 8-bit inputs reported."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mammoscreen.data import ImageFileError, read_mammogram, read_png, write_png
from mammoscreen.data.images import EightBitImageWarning


def test_16_bit_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65536, size=(37, 53), dtype=np.uint16)
    write_png(tmp_path / "a.png", image)
    back = read_png(tmp_path / "a.png")
    assert back.dtype == np.uint16 and np.array_equal(back, image)
    assert Image.open(tmp_path / "a.png").mode.startswith("I;16")


def test_colour_png_is_rejected_with_the_file_name(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "rgb.png")
    with pytest.raises(ImageFileError, match=r"rgb.png: RGB image; mammograms must be single-channel"):
        read_png(tmp_path / "rgb.png")


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(ImageFileError, match="file not found"):
        read_png(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ImageFileError, match="not a readable PNG"):
        read_png(tmp_path / "junk.png")


def test_8_bit_image_reads_with_a_warning(tmp_path):
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "eight.png")
    with pytest.warns(EightBitImageWarning, match="8-bit PNG"):
        image = read_mammogram(tmp_path / "eight.png")
    assert image.dtype == np.uint8 and image[0, 0] == 7


def test_write_refuses_float_images(tmp_path):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_png(tmp_path / "f.png", np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("fmt, name", [("JPEG", "JPEG"), ("TIFF", "TIFF"), ("BMP", "BMP")])
def test_other_formats_renamed_png_are_named(tmp_path, fmt, name):
    """Issue 16.6: a JPEG renamed .png was described as "an 8-bit PNG"; name the real format."""
    Image.new("L", (20, 20), 128).save(tmp_path / "scan.png", format=fmt)
    with pytest.raises(ImageFileError, match=rf"scan\.png: a {name} file with a \.png name, not a PNG; mammograms "
                                             r"must be 16-bit PNGs"):
        read_png(tmp_path / "scan.png")
    with pytest.raises(ImageFileError, match=rf"a {name} file"):
        read_mammogram(tmp_path / "scan.png")
