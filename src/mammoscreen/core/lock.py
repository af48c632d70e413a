"""One writer per output directory: an exclusive lock held for the duration of a stage or run.

Two runs writing into the same directory at the same time would interleave their journals and outputs.
:func:`output_lock` takes an exclusive ``flock`` on ``DIR/.mammoscreen.lock`` and writes the holder's PID
and command into it; a second process is refused at once with a message naming them. The operating
system releases the lock when the holder exits, however it exits (even killed), so there is never a
stale lock to remove by hand. Within one process the lock is re-entrant (a run that holds its output
directory may call stages that lock it again), and it is not inherited by forked worker processes.

Taking the lock also removes the temporary files that :func:`~mammoscreen.core.files.atomic_write` of a
killed process left behind (``.<name>.<8 characters>.tmp``): nobody else can be writing them. Folders
with a lock file of their own (a model's folder, ``cropped_images``) are left to their own owner.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterator, Sequence

from .safejson import loads_json

LOCK_FILE = ".mammoscreen.lock"


class OutputBusyError(ValueError):
    """Another process holds the output directory."""


class OutputLockError(ValueError):
    """The output directory cannot be locked (it cannot be created or written)."""


# How atomic_write names its temporary files (tempfile.mkstemp: 8 random characters).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")

_held: dict[str, list[int]] = {}  # real path of the directory -> [file descriptor, depth]
_guard = threading.Lock()


def _forget_inherited_locks() -> None:
    # A forked child shares the parent's lock; it must not keep it alive after the parent dies.
    for fd, _ in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


os.register_at_fork(after_in_child=_forget_inherited_locks)


def _holder(path: Path) -> str:
    try:
        info = loads_json(path.read_bytes()[:4096], str(path))
        return f"PID {int(info['pid'])}: {info.get('command') or '?'}"
    except (OSError, ValueError, KeyError, TypeError):
        return "PID unknown"


def _acquire(directory: Path, command: str) -> int:
    path = directory / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno in (errno.EROFS, errno.EACCES) and path.is_file():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # a read-only directory can still be locked
        else:
            raise OutputLockError(f"cannot lock the output directory {directory}: {error.strerror or error} "
                                  "(is it a writable directory?)") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise OutputBusyError(f"{directory} is in use by another mammoscreen process ({_holder(path)}); wait "
                                  "for it to finish or choose another output directory") from None
        raise
    with contextlib.suppress(OSError):  # who holds it is information only (and a full disk may refuse it)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command}).encode() + b"\n", 0)
    _remove_leftover_temporaries(directory)
    return fd


def _remove_leftover_temporaries(directory: Path, depth: int = 0) -> None:
    # Outputs lie at most three folders deep (OUT/<model>/heatmaps/heatmap_benign/); deeper is not ours.
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    if depth > 0 and any(e.name == LOCK_FILE for e in entries):
        return  # another stage's folder: it cleans up when it takes its own lock
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                if depth < 3:
                    _remove_leftover_temporaries(Path(entry.path), depth + 1)
            elif _TEMPORARY.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _this_command() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("mammoscreen", "__main__.py", "-c"):  # the console script, -m or -c
        argv[0] = "mammoscreen"
    return " ".join(argv) or "python"


@contextlib.contextmanager
def output_lock(directory: str | os.PathLike, command: str | Sequence[str] | None = None) -> Iterator[Path]:
    """Hold ``directory`` (created if needed) exclusively until the block ends.

    Raises :class:`OutputBusyError` naming the other process's PID and command when it is held, and
    :class:`OutputLockError` when the directory cannot be created or its lock file cannot be opened.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputLockError(f"cannot create the output directory {directory}: {error.strerror or error}") from None
    if command is None:
        command = _this_command()
    elif not isinstance(command, str):
        command = " ".join(map(str, command))
    key = os.path.realpath(directory)
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            _held[key] = [_acquire(directory, command), 1]
    try:
        yield directory
    finally:
        with _guard:
            entry = _held.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    del _held[key]
                    os.close(entry[0])
