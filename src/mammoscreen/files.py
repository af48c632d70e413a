"""Safe file output: atomic writes, hashing, and resumable per-item journals.

Every file mammoscreen writes goes through :func:`atomic_write` (write to a temporary file in the
same directory, then rename), so an interrupted run never leaves a half-written output that a
re-run would mistake for a finished one. Long per-image stages record each finished item in a
:class:`Journal` so that a re-run continues where the last one stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .core.safejson import JSONInputError, as_json_data, loads_json

PathLike = str | os.PathLike


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files readable by the owner only; outputs should get the usual permissions.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open ``path`` for writing so that it appears only once complete.

    The data goes to a temporary file beside ``path`` which replaces it on success; on error the
    temporary file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports modes 'w' and 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, _FILE_MODE)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json_atomic(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metrics and metadata; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def sha256_file(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 digest of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_signature(path: PathLike) -> list[int] | None:
    """(size, modification time in ns) of a file, or None if it does not exist: cheap change detection."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns]


class Journal:
    """An append-only JSON-lines record of finished work items, keyed by a string.

    Each :meth:`record` call appends one line and flushes it to disk, so a crash loses at most the
    item in progress. Reading tolerates a truncated last line (the item that was being written when
    the process died) and ignores it. A journal is bound to a ``fingerprint`` of the settings that
    produced it: opening it with a different fingerprint starts it afresh, so changed parameters
    never mix with old results.
    """

    def __init__(self, path: PathLike, fingerprint: Any = None):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.entries: dict[str, Any] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = []
        for line in lines:
            try:
                records.append(loads_json(line, str(self.path)))
            except JSONInputError:
                break  # a torn final line from an interrupted run
        if not records or records[0].get("fingerprint") != _canonical(self.fingerprint):
            self.path.unlink()
            return
        for rec in records[1:]:
            self.entries[rec["key"]] = rec["value"]

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def __len__(self) -> int:
        return len(self.entries)

    def record(self, key: str, value: Any) -> None:
        """Append a finished item and flush it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new_file = not self.path.exists()
        with open(self.path, "a", encoding="utf-8") as f:
            if new_file:
                f.write(json.dumps({"fingerprint": _canonical(self.fingerprint)}) + "\n")
            f.write(json.dumps({"key": key, "value": value}, default=_json_default) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.entries[key] = value

    def remove(self) -> None:
        """Delete the journal file (once its stage's final output is written)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _canonical(obj: Any) -> Any:
    return as_json_data(obj, default=_json_default)
