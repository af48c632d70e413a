"""What went wrong in a stage, item by item: failures, input warnings, and the files that list them.

Every per-item stage (crop, centres, each model's prediction, evaluation) reports the same way:

* a :class:`Failure` is an item that produced no result. ``io_error`` tells the two kinds apart: the
  item itself is bad (an unreadable or empty image, a model output that is not a number), or the
  machine refused (disk full, read-only or failing disk). Either way the item is not journaled, so
  the next run retries it; an I/O failure also makes the run *incomplete* (non-zero exit status);
* an :class:`InputWarning` is an item that was processed but looks wrong (e.g. an implausible
  mammogram);
* ``failures.csv`` (``stage,item,kind,reason``) and ``warnings.csv`` (``stage,item,warning``) list them
  in the output directory, and are removed when a later run has none.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .files import PathLike, write_text_atomic

FAILURES_CSV = "failures.csv"
WARNINGS_CSV = "warnings.csv"

# errno values that mean "the machine refused", not "this input is bad": retrying after fixing the
# environment (freeing space, remounting read-write, replacing a disk) will succeed.
IO_ERRNOS = frozenset(getattr(errno, name) for name in (
    "ENOSPC", "EDQUOT", "EIO", "EROFS", "EFBIG", "EACCES", "EPERM", "EMFILE", "ENFILE", "ESTALE", "ENOTDIR",
    "EISDIR") if hasattr(errno, name))


def is_io_error(error: BaseException) -> bool:
    """Whether ``error`` is the machine refusing a read or write (disk full, read-only, I/O error...)."""
    return isinstance(error, OSError) and error.errno in IO_ERRNOS


def describe_error(error: BaseException) -> str:
    """One line for a user: the exception's message, with its type when the message is bare."""
    message = str(error).strip() or type(error).__name__
    return message if isinstance(error, (OSError, ValueError)) else f"{type(error).__name__}: {message}"


@dataclass(frozen=True)
class Failure:
    """An item that could not be processed, and why."""

    name: str
    reason: str
    stage: str = ""
    io_error: bool = False  # the machine refused (disk full, read-only...): the run is incomplete

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"

    @classmethod
    def of(cls, name: str, error: BaseException, stage: str = "") -> "Failure":
        """The failure of ``name`` by ``error``, classified."""
        return cls(name, describe_error(error), stage, is_io_error(error))

    @property
    def kind(self) -> str:
        return "io" if self.io_error else "input"


@dataclass(frozen=True)
class InputWarning:
    """An item that was processed but looks wrong; the result is kept, the user is told."""

    name: str
    message: str
    stage: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


@dataclass
class StageReport:
    """How one stage went: items in total, reused from an earlier run, failed, and warnings."""

    stage: str
    total: int = 0
    reused: int = 0
    computed: int = 0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[InputWarning] = field(default_factory=list)
    output_failed: bool = False  # the stage's own output (e.g. its exam list) could not be written

    @property
    def incomplete(self) -> bool:
        """An I/O error stopped part of the stage: a re-run (after fixing the cause) must finish it."""
        return any(f.io_error for f in self.failures)

    @property
    def up_to_date(self) -> bool:
        return self.total > 0 and self.reused == self.total and not self.failures

    def summary(self) -> str:
        """One line: 'up to date (16 images)' / '3 computed, 13 reused, 1 failed'."""
        if self.up_to_date:
            return f"up to date ({self.total} images)"
        parts = [f"{self.computed} computed", f"{self.reused} reused"] if self.total else []
        if self.failures:
            io = sum(f.io_error for f in self.failures)
            parts.append(f"{len(self.failures)} failed" + (f" ({io} by I/O errors)" if io else ""))
        return ", ".join(parts) or "nothing to do"


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    if not rows:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def write_failures_csv(path: PathLike, failures: Iterable[Failure]) -> None:
    """``stage,item,kind,reason`` per failure (kind: 'input' or 'io'); the file is removed when there are none."""
    _write_rows(Path(path), ["stage", "item", "kind", "reason"],
                [[f.stage, f.name, f.kind, f.reason] for f in failures])


def write_warnings_csv(path: PathLike, found: Iterable[InputWarning]) -> None:
    """``stage,item,warning`` per warning; the file is removed when there are none."""
    _write_rows(Path(path), ["stage", "item", "warning"], [[w.stage, w.name, w.message] for w in found])


def read_warnings_csv(path: PathLike) -> list[InputWarning]:
    """The warnings a run wrote (empty when the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [InputWarning(row.get("item") or "", row.get("warning") or "", row.get("stage") or "")
                for row in csv.DictReader(f)]


def read_failures_csv(path: PathLike) -> list[Failure]:
    """The failures a run listed (empty when the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [Failure(row.get("item") or "", row.get("reason") or "", row.get("stage") or "",
                        row.get("kind") == "io") for row in csv.DictReader(f)]
