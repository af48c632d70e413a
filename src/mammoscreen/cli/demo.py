"""``mammoscreen demo``: the whole system, offline, on freshly generated synthetic exams."""

from __future__ import annotations

import argparse

from .common import SEED, int_range, non_negative_int, output_dir, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..workflows.demo import DEFAULT_N_EXAMS, DEFAULT_OUTPUT_DIR, DEFAULT_SEED

    p = subparsers.add_parser(
        "demo", help="run the whole system offline on synthetic exams with the bundled demo model",
        description="Generate held-out synthetic four-view exams, then crop, compute centres, predict with the "
                    "bundled gmic_demo model (trained by the project on synthetic mammograms only - not for "
                    "clinical use), draw the figures, evaluate with bootstrap CIs, measure localisation against "
                    "the lesion masks and write one self-contained report.html. No network needed.")
    p.add_argument("--output-dir", type=output_dir, default=DEFAULT_OUTPUT_DIR, help=f"default: {DEFAULT_OUTPUT_DIR}")
    p.add_argument("--exams", type=int_range(2, 100000), default=DEFAULT_N_EXAMS,
                   help=f"number of exams, at least 2 (default {DEFAULT_N_EXAMS})")
    p.add_argument("--seed", type=SEED, default=DEFAULT_SEED,
                   help=f"generator seed of the held-out exams (default {DEFAULT_SEED})")
    p.add_argument("--bootstrap", type=non_negative_int, default=2000,
                   help="bootstrap replicates for the CIs (default 2000)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--workers", type=positive_int, default=1, help="processes for synthesis and cropping (default 1)")
    p.add_argument("--no-figures", action="store_true", help="skip the per-image figures (and the gallery)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from ..workflows.demo import format_headline, run_demo

    result = run_demo(args.output_dir, n_exams=args.exams, seed=args.seed, device=args.device,
                      workers=args.workers, n_bootstrap=args.bootstrap, visualize=not args.no_figures,
                      progress=not args.quiet, command=getattr(args, "command_line", None))
    print(format_headline(result))
    return 0
