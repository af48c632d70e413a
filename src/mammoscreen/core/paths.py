"""Names are names, not paths: the one place where a name from a file becomes a path on disk.

Image names come from exam lists, prediction CSVs and run summaries - files that may come from anyone. A
name such as ``../../home/me/scan`` or ``/etc/passwd`` must never make mammoscreen read outside ``--images``
or write outside ``--output-dir``. So:

* :func:`check_name` validates a name once, where it enters (the exam-list boundary): no path separator,
  not ``.`` or ``..``, not absolute, no NUL or other control character, at most :data:`MAX_NAME_BYTES`
  bytes in UTF-8 (room for the suffixes mammoscreen adds within the usual 255-byte file-name limit);
* :func:`name_path` joins a checked name to a directory (inputs: images, masks);
* :func:`output_path` builds every output path: its parts are checked names, and the result, with every
  symbolic link on the way resolved, must still lie inside the output directory - a link planted in a
  shared output directory cannot redirect a write elsewhere.

Input images are opened only from inside ``--images`` by name. Symbolic links that the user placed inside
``--images`` themselves (a "link farm" into an archive is a common layout) are followed: the threat is a
crafted name, which cannot escape, not the user's own directory.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_NAME_BYTES = 200
"""Longest accepted name, in UTF-8 bytes."""

_SEPARATORS = ("/", "\\")


class UnsafePathError(ValueError):
    """A name is not a plain file name, or a path would leave its directory."""


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a plain file name, or None if it is one."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} names a directory"
    if any(sep in name for sep in _SEPARATORS):
        return "it contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character such as NUL or a newline"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "it is not valid Unicode text"
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long (at most {MAX_NAME_BYTES})"
    return None


def check_name(name: object, what: str = "name") -> str:
    """``name`` if it is a plain file name, else :class:`UnsafePathError` saying why."""
    problem = name_problem(name)
    if problem is not None:
        raise UnsafePathError(f"{what} {name!r} is not a plain file name: {problem}; names are file names "
                              "without directories")
    return name  # type: ignore[return-value]


def name_path(directory: str | os.PathLike, name: str, suffix: str = "", what: str = "name") -> Path:
    """``directory/<name><suffix>`` for a checked ``name`` (it cannot point outside ``directory``)."""
    return Path(directory) / (check_name(name, what) + suffix)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def output_path(output_dir: str | os.PathLike, *parts: str) -> Path:
    """``output_dir/part/part/...`` after checking that it stays inside ``output_dir``.

    Every part must be a plain name (sub-directories are separate parts). The path is resolved through
    any symbolic links that exist already; if it would lead outside the resolved output directory,
    :class:`UnsafePathError` is raised and nothing is written.
    """
    root = Path(output_dir)
    path = root.joinpath(*(check_name(part, "output name") for part in parts))
    resolved_root = root.resolve()
    resolved = path.resolve()
    if not _inside(resolved, resolved_root):
        raise UnsafePathError(f"{path} leads outside the output directory {root} (to {resolved}, through a "
                              "symbolic link); refusing to write there")
    return path


def inside_directory(path: str | os.PathLike, directory: str | os.PathLike) -> bool:
    """Whether ``path``, with symbolic links resolved, lies inside ``directory`` (also resolved)."""
    return _inside(Path(path).resolve(), Path(directory).resolve())


class OutputLocationError(ValueError):
    """An output directory cannot be used: it is a file, or cannot be created or written."""


def ensure_output_dir(directory: str | os.PathLike, what: str = "output directory") -> Path:
    """Create ``directory`` (and its parents) if needed and check that files can be written in it.

    Raises :class:`OutputLocationError` with one line naming the directory and the problem (a file of that
    name, a read-only or missing parent, no write permission) before any work starts.
    """
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise OutputLocationError(f"{what} {path} is a file, not a directory; pass a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputLocationError(f"{what} {path}: a parent of it is a file, not a directory") from None
    except NotADirectoryError:
        raise OutputLocationError(f"{what} {path}: a parent of it is a file, not a directory") from None
    except PermissionError:
        raise OutputLocationError(f"cannot create the {what} {path}: permission denied") from None
    except OSError as e:
        raise OutputLocationError(f"cannot create the {what} {path}: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputLocationError(f"{what} {path} is not writable (read-only or no permission); choose another "
                                  "directory or fix its permissions")
    return path
