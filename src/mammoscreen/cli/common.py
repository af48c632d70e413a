"""Options and output helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from ..core.stages import Failure, InputWarning

# Argument types that check ranges and paths while parsing, so that a bad value is refused at the door in
# argparse's terms (exit status 2, "mammoscreen CMD: error: argument --X: ...") instead of failing every image.


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer from ``low`` to ``high`` (inclusive; None: unbounded)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def float_range(low: float | None = None, high: float | None = None, *, low_open: bool = False,
                high_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between ``low`` and ``high`` (closed unless ``*_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if low is not None and (value <= low if low_open else value < low):
            bound = "more than" if low_open else "at least"
            raise argparse.ArgumentTypeError(f"must be {bound} {low:g}, got {value:g}")
        if high is not None and (value >= high if high_open else value > high):
            bound = "less than" if high_open else "at most"
            raise argparse.ArgumentTypeError(f"must be {bound} {high:g}, got {value:g}")
        return value

    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
SEED = int_range(0, 2**32 - 1)  # numpy's seed range


def existing_dir(text: str) -> Path:
    """An argparse type: a directory that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"directory not found: {path}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file, not a directory")
    return path


def existing_file(text: str) -> Path:
    """An argparse type: a file that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file not found: {path}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory, not a file")
    return path


def weights_source(text: str) -> str:
    """An argparse type for --weights / --patch-weights: 'official', or a checkpoint file or directory that exists,
    optionally as MODEL=... for one model."""
    model, sep, value = text.partition("=")
    if not (sep and model.replace("_", "").replace("-", "").isalnum()):
        value = text
    if value != "official" and not Path(value).exists():
        raise argparse.ArgumentTypeError(f"weights not found: {value} (give a checkpoint file, a directory holding "
                                         "the official file names, or 'official')")
    return text


def output_dir(text: str) -> Path:
    """An argparse type: a directory to write into - it may not exist yet, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; the output must be a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, so {path} cannot be created")
            break
    return path


def output_file(text: str) -> Path:
    """An argparse type: a file to write - it may not exist yet, but must not be a directory."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a directory; give a file name")
    output_dir(str(path.parent))
    return path


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="parallel worker processes (default: %(default)s)")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_image_inputs(parser: argparse.ArgumentParser, images_help: str, exam_list_help: str) -> None:
    """--images and --exam-list of a command over a set of images (both required, both checked to exist)."""
    parser.add_argument("--images", required=True, type=existing_dir, help=images_help)
    parser.add_argument("--exam-list", required=True, type=existing_file, help=exam_list_help)


def report_failures(failures: Sequence[Failure], total: int, what: str = "images") -> None:
    """Print a summary of skipped items to stderr."""
    if not failures:
        return
    print(f"{len(failures)} of {total} {what} skipped:", file=sys.stderr)
    for failure in failures:
        print(f"  {failure}", file=sys.stderr)


def report_warnings(found: Sequence[InputWarning], path: os.PathLike | str | None = None) -> None:
    """Print the input warnings of a stage to stderr (and where they are listed)."""
    if not found:
        return
    where = f" (listed in {path})" if path is not None else ""
    print(f"{len(found)} input warning(s){where}:", file=sys.stderr)
    for warning in found:
        print(f"  {warning}", file=sys.stderr)
