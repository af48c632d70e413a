"""The ``mammoscreen`` command: a thin layer that parses arguments and calls the Python API.

Each module of this package registers one group of sub-commands; to add a command, add a module with
a ``register(subparsers)`` function and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from typing import Sequence

from .. import __version__

COMMAND_MODULES = [
    "mammoscreen.cli.preprocess",
    "mammoscreen.cli.predict",
    "mammoscreen.cli.ingest",
    "mammoscreen.cli.evaluate",
    "mammoscreen.cli.models",
    "mammoscreen.cli.train",
    "mammoscreen.cli.localize",
    "mammoscreen.cli.report",
    "mammoscreen.cli.demo",
    "mammoscreen.cli.reader_app",
]


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mammoscreen",
        description="Screening-mammography AI: run, explain, train and evaluate published classifiers.")
    parser.add_argument("--version", action="version", version=f"mammoscreen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Users of the command line need the message, not the source line that raised it.
    print(f"mammoscreen: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from ..data.exams import ExamListError
    from ..data.images import ImageFileError
    from ..models.weights import WeightsError

    parser = build_parser()
    args = parser.parse_args(argv)
    # The command as typed, recorded by commands whose outputs keep their provenance (run -> report).
    args.command_line = ["mammoscreen", *(sys.argv[1:] if argv is None else argv)]
    warnings.showwarning = _show_warning
    try:
        return int(args.handler(args) or 0)
    except (UserError, ExamListError, ImageFileError, FileNotFoundError, WeightsError, ValueError) as e:
        print(f"mammoscreen {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mammoscreen {args.command}: interrupted; finished work is kept - re-run the same command to "
              "continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
