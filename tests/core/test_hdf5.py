"""HDF5 reads are bounded and stay inside the file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mammoscreen.core.hdf5 import H5Reader, HDF5InputError
from mammoscreen.core.limits import InputLimitError, limits_override


def test_plain_datasets_and_attributes(tmp_path):
    path = tmp_path / "ok.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = '{"class_name": "Model"}'
        f.create_dataset("model_weights/dense/kernel:0", data=np.arange(6, dtype=np.float32).reshape(2, 3))
    with H5Reader(path) as reader:
        assert reader.attr("/", "model_config") == '{"class_name": "Model"}'
        assert reader.attr("/", "absent", "x") == "x"
        assert reader.read("model_weights/dense/kernel:0").tolist() == [[0, 1, 2], [3, 4, 5]]
        assert reader.contains("model_weights/dense") and not reader.contains("model_weights/conv")


def test_datasets_that_would_expand_are_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as f:
        # No data written: reading returns the fill value for all 2 GiB; and a gzip-compressed block of zeros.
        f.create_dataset("empty", shape=(2 ** 28,), dtype=np.float64)
        f.create_dataset("zeros", data=np.zeros(2 ** 22), chunks=(2 ** 20,), compression="gzip")
    assert path.stat().st_size < 2 ** 20
    with H5Reader(path) as reader:
        with pytest.raises(InputLimitError, match="empty.*MAMMOSCREEN_MAX_EXPANSION"):
            reader.read("empty")
        with pytest.raises(InputLimitError, match="zeros"):
            reader.read("zeros")
    with limits_override(max_expansion=10 ** 6, max_array_bytes=2 ** 20):
        with H5Reader(path) as reader:
            with pytest.raises(HDF5InputError, match="MAMMOSCREEN_MAX_ARRAY_BYTES"):
                reader.read("zeros")


def test_links_and_storage_outside_the_file_are_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype=np.float32).tobytes())
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("w", data=np.ones(3))
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as f:
        f["outside"] = h5py.ExternalLink(str(other), "/w")
        f.create_dataset("raw", shape=(8,), dtype=np.float32, external=[(str(secret), 0, 32)])
        f.create_dataset("text", data=np.array([b"abc"]))
    with H5Reader(path) as reader:
        with pytest.raises(HDF5InputError, match="link to another file"):
            reader.read("outside")
        with pytest.raises(HDF5InputError, match="keeps its data in another file"):
            reader.read("raw")
        with pytest.raises(HDF5InputError, match="not numbers"):
            reader.read("text")


def test_a_file_that_is_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(HDF5InputError, match="not an HDF5 file"):
        H5Reader(tmp_path / "x.h5")
