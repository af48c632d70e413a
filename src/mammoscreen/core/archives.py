"""Zip archives from untrusted files (PyTorch checkpoints, ``.npz`` maps): sizes checked before anything is
decompressed.

A zip entry declares its decompressed size in the central directory; reading it never yields more than
that. So the declared sizes are checked first - in total against ``max_array_bytes`` and, per compressed
entry, against ``max_expansion`` times its stored size (a deflate stream of a few kilobytes can declare and
produce gigabytes of zeros).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .limits import InputLimitError, check_expansion, get_limits, limit_message


def check_zip(path: str | Path, what: str = "archive") -> list[zipfile.ZipInfo]:
    """The entries of the zip file ``path`` after checking their declared sizes (see the module docstring).

    Raises :class:`zipfile.BadZipFile` for a file that is not a zip archive and :class:`InputLimitError`
    for one that would expand beyond the limits.
    """
    limit = get_limits().max_array_bytes
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    total = 0
    for entry in entries:
        if entry.compress_type != zipfile.ZIP_STORED:
            check_expansion(entry.compress_size, entry.file_size, f"{path}: {what} entry {entry.filename}")
        total += entry.file_size
        if total > limit:
            raise InputLimitError(f"{path}: {what} entries add up to more than {limit:,} bytes "
                                  f"({limit_message('max_array_bytes')})")
    return entries


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, never a pickled object, within the size limits.

    Raises :class:`InputLimitError` for an archive beyond the limits and ``ValueError`` (with the cause)
    for a file that is not a readable ``.npz`` of plain arrays.
    """
    try:
        check_zip(path, ".npz")
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except InputLimitError:
        raise
    except Exception as e:  # zipfile, numpy's header parser and the OS raise many types for a foreign file
        raise ValueError(f"{path}: not a readable .npz of arrays ({type(e).__name__}: {e})") from None
