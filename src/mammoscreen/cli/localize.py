"""``mammoscreen localize``: Dice and pointing game of saved saliency maps against lesion masks."""

from __future__ import annotations

import argparse
import sys

from .common import SEED, existing_dir, existing_file, float_range, non_negative_int, output_dir, report_failures


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "localize", help="localisation of saliency maps: Dice and pointing game per class, with bootstrap CIs",
        description="Compare the saliency maps saved by 'predict --save-maps' with lesion masks "
                    "(<image>_benign.png / <image>_malignant.png, in the frame of the original image, the cropped "
                    "image or the model window - see docs/localization.md): Dice of the "
                    "min-max normalised map thresholded at the best threshold of a grid (and optionally at "
                    "--threshold), and the pointing-game hit rate, per class, with percentile bootstrap 95% CIs "
                    "over images. Writes localization.json and localization_per_image.csv.")
    p.add_argument("--maps", required=True, type=existing_dir,
                   help="the maps/ directory written by predict --save-maps")
    p.add_argument("--segmentations", required=True, type=existing_dir,
                   help="directory of lesion masks (original, cropped or window frame, told from their size)")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where the two output files go")
    p.add_argument("--exam-list", type=existing_file,
                   help="cropped exam list; needed only for maps written before they stored view and window_location "
                        "(it also gives them original_shape, to check the masks' size, when it records it)")
    p.add_argument("--bootstrap", type=non_negative_int, default=2000, metavar="N",
                   help="bootstrap replicates for 95%% CIs (default: %(default)s; 0 = no CIs)")
    p.add_argument("--seed", type=SEED, default=0, help="bootstrap random seed (default: %(default)s)")
    p.add_argument("--threshold", type=float_range(0, 1), metavar="T",
                   help="also report Dice at this fixed threshold on the normalised map (0-1: the map is min-max "
                        "normalised)")
    p.set_defaults(handler=run_localize)


def run_localize(args: argparse.Namespace) -> int:
    from ..explain.localize import format_localization, localize_maps

    result = localize_maps(args.maps, args.segmentations, args.output_dir, exam_list=args.exam_list,
                           n_bootstrap=args.bootstrap, seed=args.seed, threshold=args.threshold, log=None)
    sys.stdout.write(format_localization(result))
    report_failures(result.skipped, result.n_maps, "maps")
    print(f"Wrote to {args.output_dir}: {result.json_path.name}, {result.csv_path.name}")
    return 0
