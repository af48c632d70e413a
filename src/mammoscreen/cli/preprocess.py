"""``mammoscreen crop`` and ``mammoscreen centers``: the official NYU preprocessing."""

from __future__ import annotations

import argparse

from ..data.exams import load_exam_list
from .common import (add_quiet_option, add_workers_option, existing_dir, existing_file, int_range, output_dir,
                     output_file, report_failures)

# A side of a mammogram or model window, in pixels (validate calls more than 10,000 implausible).
SIDE = int_range(1, 10000)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "crop", help="crop mammograms around the breast (official NYU preprocessing)",
        description="Crop each mammogram around the breast and write the cropped 16-bit PNGs and "
                    "DIR/cropped_exam_list.pkl. Images that cannot be cropped are reported and left out.")
    p.add_argument("--images", required=True, type=existing_dir, help="directory of the original PNGs")
    p.add_argument("--exam-list", required=True, type=existing_file, help="exam list (.pkl or .json)")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where cropped PNGs and the exam list go")
    # 0 iterations would mean "until nothing changes" to scipy's morphology, not "none"
    p.add_argument("--iterations", type=int_range(1, 1000), default=100,
                   help="erosion/dilation iterations, 1-1000 (default: 100)")
    p.add_argument("--buffer-size", type=int_range(0, 10000), default=50,
                   help="margin around the breast in pixels, 0-10000 (default: 50)")
    add_workers_option(p)
    add_quiet_option(p)
    p.set_defaults(handler=run_crop)

    p = subparsers.add_parser(
        "centers", help="compute the optimal input-window centre of each cropped image",
        description="Add 'best_center' to every image of a cropped exam list (official window search).")
    p.add_argument("--images", required=True, type=existing_dir, help="directory of the cropped PNGs")
    p.add_argument("--exam-list", required=True, type=existing_file, help="cropped exam list from 'mammoscreen crop'")
    p.add_argument("--output", required=True, type=output_file, help="exam list to write (.pkl or .json)")
    p.add_argument("--window", type=SIDE, nargs=2, metavar=("ROWS", "COLS"), default=(2944, 1920),
                   help="model input window, 1-10000 pixels a side (default: GMIC's 2944 1920)")
    add_workers_option(p)
    add_quiet_option(p)
    p.set_defaults(handler=run_centers)


def run_crop(args: argparse.Namespace) -> int:
    from ..preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    exams = load_exam_list(args.exam_list)
    cropped, failures = crop_dataset(args.images, exams, args.output_dir, workers=args.workers,
                                     iterations=args.iterations, buffer_size=args.buffer_size,
                                     progress=not args.quiet)
    total = sum(len(v) for e in exams for v in e.images.values())
    report_failures(failures, total)
    print(f"cropped {total - len(failures)} of {total} images -> {args.output_dir / CROPPED_EXAM_LIST}")
    return 0


def run_centers(args: argparse.Namespace) -> int:
    from ..preprocess.centers import centers_dataset

    exams = load_exam_list(args.exam_list)
    window = tuple(args.window)
    _, failures = centers_dataset(args.images, exams, args.output, windows={"CC": window, "MLO": window},
                                  workers=args.workers, progress=not args.quiet)
    total = sum(len(v) for e in exams for v in e.images.values())
    report_failures(failures, total)
    print(f"computed centres for {total - len(failures)} of {total} images -> {args.output}")
    return 0
