"""``mammoscreen crop`` and ``mammoscreen centers``: the official NYU preprocessing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from ..core.stages import FAILURES_CSV, WARNINGS_CSV, write_failures_csv, write_warnings_csv
from ..data.exams import load_exam_list
from .common import (
    add_image_inputs,
    int_range,
    output_dir,
    output_file,
    report_failures,
    report_warnings,
)

# A side of a mammogram or model window, in pixels (validate calls more than 10,000 implausible).
from ..engine.choice import open_engine
from .engine import add_execution_options, engine_choice, print_engine

SIDE = int_range(1, 10000)
IGNORE_UNKNOWN_VIEWS_HELP = ("leave out (with a warning naming them) the images of exam-list keys that look like "
                             "views but are not L-CC, R-CC, L-MLO or R-MLO; by default such a key is an error")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "crop", help="crop mammograms around the breast (official NYU preprocessing)",
        description="Crop each mammogram around the breast and write the cropped 16-bit PNGs and "
                    "DIR/cropped_exam_list.pkl. Images that cannot be cropped are reported and left out.")
    add_image_inputs(p, "directory of the original PNGs", "exam list (.pkl or .json)")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where cropped PNGs and the exam list go")
    # 0 iterations would mean "until nothing changes" to scipy's morphology, not "none"
    p.add_argument("--iterations", type=int_range(1, 1000), default=100,
                   help="erosion/dilation iterations, 1-1000 (default: 100)")
    p.add_argument("--buffer-size", type=int_range(0, 10000), default=50,
                   help="margin around the breast in pixels, 0-10000 (default: 50)")
    p.add_argument("--ignore-unknown-views", action="store_true", help=IGNORE_UNKNOWN_VIEWS_HELP)
    add_execution_options(p)
    p.set_defaults(handler=run_crop)

    p = subparsers.add_parser(
        "centers", help="compute the optimal input-window centre of each cropped image",
        description="Add 'best_center' to every image of a cropped exam list (official window search).")
    add_image_inputs(p, "directory of the cropped PNGs", "cropped exam list from 'mammoscreen crop'")
    p.add_argument("--output", required=True, type=output_file, help="exam list to write (.pkl or .json)")
    p.add_argument("--window", type=SIDE, nargs=2, metavar=("ROWS", "COLS"), default=None,
                   help="model input window, 1-10000 pixels a side (default: GMIC's, 2944 1920, read from its "
                        "preprocessing record)")
    p.add_argument("--ignore-unknown-views", action="store_true", help=IGNORE_UNKNOWN_VIEWS_HELP)
    add_execution_options(p)
    p.set_defaults(handler=run_centers)


def _finish(command: str, report, total: int, directory: Path, done_message: str) -> int:
    """Print and list (failures.csv, warnings.csv in ``directory``) how a stage went; its exit status."""
    report_failures(report.failures, total)
    for name, rows, write in ((FAILURES_CSV, report.failures, write_failures_csv),
                              (WARNINGS_CSV, report.warnings, write_warnings_csv)):
        try:
            write(directory / name, rows)
        except OSError as error:
            print(f"cannot write {directory / name}: {error}", file=sys.stderr)
    report_warnings(report.warnings, directory / WARNINGS_CSV)
    if not report.output_failed:
        print(done_message)
    if report.incomplete:
        print(f"mammoscreen {command}: incomplete - an I/O error stopped part of the work; free space or fix "
              "the output directory, then re-run the same command (finished images are kept)", file=sys.stderr)
        return 1
    return 1 if report.failures and not report.reused + report.computed else 0


def run_crop(args: argparse.Namespace) -> int:
    from ..core.stages import StageReport
    from ..preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    choice = engine_choice(args)  # before any work: an option error is one line
    exams = load_exam_list(args.exam_list, ignore_unknown_views=args.ignore_unknown_views)
    report = StageReport("crop")
    with open_engine(choice) as engine:
        crop_dataset(args.images, exams, args.output_dir, workers=engine.stage_workers(args.workers),
                     iterations=args.iterations, buffer_size=args.buffer_size, progress=not args.quiet,
                     report=report, pool=engine.pool)
        engine.note_stage("crop")
    print_engine(engine)
    done = report.reused + report.computed
    return _finish("crop", report, report.total, args.output_dir,
                   f"cropped {done} of {report.total} images -> {args.output_dir / CROPPED_EXAM_LIST}")


DEFAULT_WINDOW_MODEL = "gmic"
"""The model whose preprocessing record gives ``mammoscreen centers`` its window when --window is not given."""


def centre_windows(window: Sequence[int] | None) -> dict[str, tuple[int, int]]:
    """The windows per view angle of ``mammoscreen centers``: ``--window`` for every view, or the windows of
    the default model's preprocessing record."""
    if window is not None:
        rows, cols = window
        return {"CC": (rows, cols), "MLO": (rows, cols)}
    from ..models.registry import get_model_spec

    return dict(get_model_spec(DEFAULT_WINDOW_MODEL).center_windows or {})


def run_centers(args: argparse.Namespace) -> int:
    from ..core.stages import StageReport
    from ..preprocess.centers import centers_dataset

    choice = engine_choice(args)  # before any work: an option error is one line
    exams = load_exam_list(args.exam_list, ignore_unknown_views=args.ignore_unknown_views)
    report = StageReport("centres")
    with open_engine(choice) as engine:
        centers_dataset(args.images, exams, args.output, windows=centre_windows(args.window),
                        workers=engine.stage_workers(args.workers), progress=not args.quiet, report=report,
                        pool=engine.pool)
        engine.note_stage("centres")
    print_engine(engine)
    done = report.reused + report.computed
    return _finish("centers", report, report.total, args.output.parent,
                   f"computed centres for {done} of {report.total} images -> {args.output}")
