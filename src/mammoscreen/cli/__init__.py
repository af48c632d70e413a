"""The ``mammoscreen`` command: a thin layer that parses arguments and calls the Python API.

Each module of this package registers one group of sub-commands; to add a command, add a module with
a ``register(subparsers)`` function and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import pickle
import sys
import traceback
import warnings
from typing import Sequence

from .. import __version__
from ..core.limits import DEFAULTS, limits_override

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


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the message and where to look), exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Accepted before or after the command name; the command's copy must not reset the top-level value.
    default = {} if top else {"default": argparse.SUPPRESS}
    parser.add_argument("--debug", action="store_true", **({"default": False} if top else default),
                        help="on an error, show the Python traceback (also MAMMOSCREEN_DEBUG=1)")
    parser.add_argument("--max-pixels", type=_positive_int, metavar="N", **({"default": None} if top else default),
                        help="refuse images whose header declares more than N pixels, before decoding them "
                             f"(default {DEFAULTS.max_pixels:,} or $MAMMOSCREEN_MAX_PIXELS; see docs/security.md)")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="mammoscreen",
        description="Screening-mammography AI: run, explain, train and evaluate published classifiers.")
    parser.add_argument("--version", action="version", version=f"mammoscreen {__version__}")
    _add_global_options(parser, top=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for command in subparsers.choices.values():
        _add_global_options(command, top=False)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # Users of the command line need the message, not the source line that raised it.
    print(f"mammoscreen: warning: {_one_line(str(message))}", file=file or sys.stderr)


def _unquoted(text: str) -> str:
    # str() of a KeyError-like exception is the quoted repr of its message; anything else is kept as it is
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" else text


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


# Exceptions that mean "the input (a file, an argument) is wrong": exit status 2. Everything else that ends a
# command is a failure of the run (exit status 1): the disk, the memory, or a bug.
def _input_errors() -> tuple[type[BaseException], ...]:
    from ..data.images import ImageFileError
    from ..models.weights import WeightsError

    return (UserError, ValueError, WeightsError, ImageFileError, pickle.UnpicklingError, FileNotFoundError,
            NotADirectoryError, IsADirectoryError, FileExistsError)


def describe_failure(error: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception that ended a command."""
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        # A system call failed on a file: name the file and the reason, not Python's errno tuple.
        where = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
        message = f"{where}: {error.strerror}"
        if isinstance(error, PermissionError):
            message += " (read-only location or no permission)"
        elif error.errno == errno.ENOSPC:
            message += " (free some space; finished work is kept - re-run the same command to continue)"
        return (2 if isinstance(error, _input_errors()) else 1), message
    if isinstance(error, _input_errors()):
        return 2, _one_line(_unquoted(str(error)))
    if isinstance(error, MemoryError):
        return 1, "out of memory (an input far larger than expected? see docs/security.md for the limits)"
    if isinstance(error, RecursionError):
        return 1, "an input is nested too deeply to process"
    if isinstance(error, OSError):
        return 1, _one_line(error.strerror or str(error))
    return 1, (f"internal error ({type(error).__name__}: {_one_line(str(error))[:300]}); please report it with "
               "the output of the same command run with --debug")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command as typed, recorded by commands whose outputs keep their provenance (run -> report).
    args.command_line = ["mammoscreen", *(sys.argv[1:] if argv is None else argv)]
    debug = bool(args.debug) or os.environ.get("MAMMOSCREEN_DEBUG", "").strip() not in ("", "0")
    warnings.showwarning = _show_warning
    try:
        with contextlib.ExitStack() as scope:
            if args.max_pixels is not None:  # for this command only (and its worker processes)
                scope.enter_context(limits_override(max_pixels=args.max_pixels))
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"mammoscreen {args.command}: interrupted; finished work is kept - re-run the same command to "
              "continue", file=sys.stderr)
        return 130
    except Exception as error:  # every failure ends in one line; --debug shows where it came from
        if debug:
            traceback.print_exc()
        status, message = describe_failure(error)
        print(f"mammoscreen {args.command}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
