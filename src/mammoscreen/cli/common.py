"""Options and output helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..batch import Failure, InputWarning


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_workers_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=min(4, os.cpu_count() or 1),
                        help="parallel worker processes (default: %(default)s)")


def add_quiet_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


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
