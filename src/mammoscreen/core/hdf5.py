"""HDF5 files from untrusted sources (Keras ``.h5`` weights), read within bounds and never beyond the file.

An HDF5 dataset declares its shape; its stored bytes can be far fewer (chunks compressed with gzip, or no
storage at all, read back as the fill value), so ``dataset[()]`` on a file of a few kilobytes can allocate
gigabytes. HDF5 can also point outside the file: external links, external raw storage and virtual datasets
read other files on the machine. :class:`H5Reader` checks each dataset before reading it - a plain numeric
array stored in this file, within ``max_expansion`` of its stored size and within the file's total budget
of ``max_array_bytes`` (:mod:`mammoscreen.core.limits`) - and refuses links to other files.

h5py is imported when a file is opened (it is a dependency of mammoscreen, needed only for Keras files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .limits import check_expansion, get_limits, limit_message


class HDF5InputError(ValueError):
    """An HDF5 file is unreadable, points outside itself, or holds more than the limits allow."""


class H5Reader:
    """Bounded read-only access to one HDF5 file; use as a context manager."""

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self._h5py = h5py
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise HDF5InputError(f"{self.path}: not an HDF5 file ({e})") from None
        self._budget = get_limits().max_array_bytes

    def __enter__(self) -> "H5Reader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    # -- navigation --------------------------------------------------------------------------

    def _object(self, path: str) -> Any:
        """The object at ``path`` (components separated by '/'), refusing links to other files."""
        node = self._file
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, self._h5py.Group) or part not in node:
                raise KeyError(path)
            link = node.get(part, getlink=True)
            if isinstance(link, self._h5py.ExternalLink):
                raise HDF5InputError(f"{self.path}: {path} is a link to another file ({link.filename}); refusing "
                                     "to follow it")
            node = node[part]
        return node

    def contains(self, path: str) -> bool:
        try:
            self._object(path)
        except KeyError:
            return False
        return True

    def keys(self, path: str = "/") -> Iterator[str]:
        node = self._object(path)
        return iter(node.keys()) if isinstance(node, self._h5py.Group) else iter(())

    # -- attributes ----------------------------------------------------------------------------

    def attr(self, path: str, name: str, default: Any = None) -> Any:
        """Attribute ``name`` of the object at ``path`` (``default`` if absent), size-checked first."""
        attrs = self._object(path).attrs
        if name not in attrs:
            return default
        attr_id = attrs.get_id(name)
        declared = int(np.prod(attr_id.shape or (1,), dtype=np.int64)) * max(attr_id.dtype.itemsize, 1)
        limit = get_limits().max_file_bytes
        if declared > limit:
            raise HDF5InputError(f"{self.path}: attribute {name!r} of {path} declares {declared:,} bytes "
                                 f"({limit_message('max_file_bytes')})")
        return attrs[name]

    def has_attr(self, path: str, name: str) -> bool:
        return name in self._object(path).attrs

    # -- datasets ------------------------------------------------------------------------------

    def read(self, path: str) -> np.ndarray:
        """A numeric dataset as an array, after checking where its data lives and how large it is."""
        dataset = self._object(path)
        where = f"{self.path}: dataset {path}"
        if not isinstance(dataset, self._h5py.Dataset):
            raise HDF5InputError(f"{where} is not a dataset")
        if dataset.external:
            raise HDF5InputError(f"{where} keeps its data in another file ({dataset.external[0][0]!r}); refusing "
                                 "to read it")
        if dataset.is_virtual:
            raise HDF5InputError(f"{where} is a virtual dataset mapped onto other files; refusing to read it")
        if dataset.dtype.kind not in "biuf":
            raise HDF5InputError(f"{where} holds {dataset.dtype} values, not numbers")
        nbytes = int(np.prod(dataset.shape or (1,), dtype=np.int64)) * dataset.dtype.itemsize
        check_expansion(dataset.id.get_storage_size(), nbytes, where)
        if nbytes > self._budget:
            raise HDF5InputError(f"{where}: the file's arrays add up to more than {get_limits().max_array_bytes:,} "
                                 f"bytes ({limit_message('max_array_bytes')})")
        self._budget -= nbytes
        try:
            return np.asarray(dataset[()])
        except (OSError, ValueError) as e:
            raise HDF5InputError(f"{where}: unreadable ({e})") from None
