"""Fuzzing PNG headers: dimensions, bit depths, colour types, truncated and corrupt chunks.

Every file is either read as a 2-D single-channel array within the pixel limit or refused with
ImageFileError; a header declaring more pixels than the limit is refused before any pixel is decoded.
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from testutils import examples

from fuzzing import bounded_call, ihdr_png
from mammoscreen.core.limits import limits_override
from mammoscreen.data.images import ImageFileError, image_size, read_png

WORK = Path(tempfile.mkdtemp(prefix="mammoscreen-fuzz-png-"))
LIMIT = 2_000_000  # pixels, lowered for the fuzzing so that accepted images stay small
VALID_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}  # the PNG specification


@settings(max_examples=examples(300))
@given(width=st.one_of(st.integers(0, 3000), st.sampled_from([19000, 2 ** 31 - 1, 2 ** 32 - 1, 65536])),
       height=st.one_of(st.integers(0, 3000), st.sampled_from([19000, 2 ** 31 - 1, 1])),
       bit_depth=st.sampled_from([1, 2, 4, 8, 16, 3, 32, 0]), colour_type=st.sampled_from([0, 2, 3, 4, 6, 1, 7]),
       payload=st.sampled_from(["zeros", "short", "garbage", "none"]), cut=st.one_of(st.none(), st.integers(0, 80)))
def test_png_headers(width, height, bit_depth, colour_type, payload, cut):
    row = 1 + max(1, width * max(bit_depth, 8) // 8)
    idat = {"zeros": zlib.compress(b"\x00" * min(row * max(height, 1), 1 << 16)),
            "short": zlib.compress(b"\x00" * 10), "garbage": b"\x12\x34garbage", "none": b""}[payload]
    path = WORK / "image.png"
    path.write_bytes(ihdr_png(width, height, bit_depth, colour_type, idat, cut))
    with limits_override(max_pixels=LIMIT):
        _, size_error, _ = bounded_call(lambda: image_size(path), (ImageFileError,), 16 * 2 ** 20)
        array, error, _ = bounded_call(lambda: read_png(path), (ImageFileError,), 4 * LIMIT * 2 + 16 * 2 ** 20)
    if width * height > LIMIT and cut is None:
        assert error is not None and size_error is not None
        if bit_depth in VALID_DEPTHS.get(colour_type, ()) and width and height < 2 ** 31 and width < 2 ** 31:
            # a header Pillow accepts: refused by the pixel limit, from the header alone
            assert "refused before decoding" in str(error) and "refused before decoding" in str(size_error)
    if array is not None:
        assert isinstance(array, np.ndarray) and array.ndim == 2 and array.size <= LIMIT
        assert array.dtype in (np.uint8, np.uint16)


@settings(max_examples=examples(100))
@given(st.binary(max_size=200), st.integers(0, 100))
def test_random_bytes_after_a_png_signature(body, cut):
    path = WORK / "random.png"
    path.write_bytes((b"\x89PNG\r\n\x1a\n" + body)[: 8 + cut] if cut < 100 else b"\x89PNG\r\n\x1a\n" + body)
    bounded_call(lambda: read_png(path), (ImageFileError,), 64 * 2 ** 20)
