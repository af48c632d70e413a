"""``mammoscreen report``: the self-contained HTML report of a run's output directory."""

from __future__ import annotations

import argparse
from .common import existing_dir, int_range, output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write one self-contained report.html for a 'mammoscreen run' output directory",
        description="Provenance, metrics with CIs, ROC/PR curves, calibration, localisation and a gallery of the "
                    "figures sorted by malignant score, in one HTML file that opens offline.")
    p.add_argument("run_dir", type=existing_dir, metavar="RUN_DIR", help="the --output-dir of 'mammoscreen run'")
    p.add_argument("--output", type=output_file, default=None, help="report file (default RUN_DIR/report.html)")
    p.add_argument("--segmentations", type=existing_dir, default=None, metavar="DIR",
                   help="lesion masks <image>_benign.png / <image>_malignant.png, to outline the ground truth in "
                        "the gallery when the run's figures do not show it")
    p.add_argument("--title", default=None, help="page title")
    p.add_argument("--max-gallery", type=int_range(0, 100000), default=None, metavar="N",
                   help="figures per model in the gallery (0: none)")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    from ..report import DEFAULT_MAX_GALLERY, build_report

    path = build_report(args.run_dir, args.output, title=args.title, segmentation_dir=args.segmentations,
                        max_gallery=DEFAULT_MAX_GALLERY if args.max_gallery is None else args.max_gallery)
    print(f"report written: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0
