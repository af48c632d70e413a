"""``mammoscreen evaluate``, ``compare``, ``reader-study`` and ``mrmc``: metrics and statistics."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

from . import UserError
from .common import positive_int


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {value}")
    return value


def _add_bootstrap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", type=_non_negative_int, default=2000, metavar="N",
                        help="bootstrap replicates for 95%% CIs (default: %(default)s; 0 = no CIs)")
    parser.add_argument("--seed", type=_non_negative_int, default=0,
                        help="bootstrap random seed (default: %(default)s)")
    parser.add_argument("--confidence", type=_fraction, default=0.95,
                        help="confidence level of the intervals (default: %(default)s)")


def _user_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Report bad input as one line (via UserError) rather than a traceback."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        from ..evaluate.validation import EvaluationInputError

        try:
            return handler(args)
        except EvaluationInputError as e:
            raise UserError(str(e)) from None

    return wrapped


def _print_outputs(paths: list[Path], output_dir: Path) -> None:
    names = ", ".join(p.name for p in paths)
    print(f"Wrote to {output_dir}: {names}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="AUROC/AUPRC with bootstrap CIs of one prediction file (meta-repository metrics)",
        description="Evaluate a prediction CSV as the meta-repository's score.py does - AUROC, AUPRC (trapezoidal), "
                    "plus average precision and benign AUROC - at image and breast level, with percentile bootstrap "
                    "CIs, ROC and PR plots (PNG, SVG) and metrics.json. Image-level files: image_index,"
                    "malignant_pred,malignant_label[,benign_pred,benign_label]; breast-level files: left_malignant,"
                    "right_malignant[,left_benign,right_benign], one row per exam of the exam list.")
    p.add_argument("--predictions", required=True, type=Path, help="prediction CSV")
    p.add_argument("--exam-list", type=Path, help="exam list (.pkl or .json); needed for breast level")
    p.add_argument("--output-dir", required=True, type=Path, help="where metrics.json, metrics.txt and plots go")
    p.add_argument("--level", choices=("image", "breast", "both"), default="both",
                   help="which levels to evaluate (default: %(default)s, as far as the inputs allow)")
    _add_bootstrap_options(p)
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser(
        "compare", help="compare models on the same cases: DeLong tests, paired bootstrap, operating points",
        description="Compare several prediction files on the same exams: every model's metrics with CIs, overlaid "
                    "ROC/PR/calibration plots, a paired DeLong test and paired-bootstrap CI for each pair's AUROC "
                    "difference, and sensitivity at given specificities (and the reverse) with CIs.")
    p.add_argument("predictions", nargs="+", type=Path, help="prediction CSVs, one per model")
    p.add_argument("--names", nargs="+", help="model names, one per file (default: file names)")
    p.add_argument("--exam-list", type=Path, help="exam list (.pkl or .json); needed for breast level")
    p.add_argument("--output-dir", required=True, type=Path, help="where comparison.json, .txt and plots go")
    p.add_argument("--level", choices=("image", "breast"),
                   help="level to compare (default: breast with an exam list, else image)")
    p.add_argument("--specificities", nargs="*", type=_fraction, default=[0.9, 0.95], metavar="S",
                   help="report sensitivity at these specificities (default: 0.9 0.95)")
    p.add_argument("--sensitivities", nargs="*", type=_fraction, default=[0.8, 0.9], metavar="S",
                   help="report specificity at these sensitivities (default: 0.8 0.9)")
    p.add_argument("--calibration-bins", type=positive_int, default=10, help="bins of the reliability diagram")
    _add_bootstrap_options(p)
    p.set_defaults(handler=run_compare)

    p = subparsers.add_parser(
        "reader-study", help="readers' and models' AUROC/AUPRC with CIs, readers' mean, reader+model hybrids",
        description="Evaluate a reader study in the meta-repository's results.pkl layout (columns case_ID, side, "
                    "label, Reader01_POM ..., AI_<model>_POM): each reader and model with bootstrap CIs, the readers' "
                    "mean, each reader's hybrid with each model (mean of the two probabilities), and an ROC plot. "
                    "A .pkl is read without running code: only DataFrames of numbers and strings are accepted.")
    p.add_argument("file", type=Path, help="reader-study table (.csv or .pkl)")
    p.add_argument("--output-dir", required=True, type=Path, help="where reader_study.json, .txt and the plot go")
    p.add_argument("--readers", nargs="+", help="reader columns or regexes (default: *_POM not starting AI_)")
    p.add_argument("--models", nargs="+", help="model columns or regexes (default: AI_*_POM)")
    p.add_argument("--hybrid-models", nargs="*", help="models for reader hybrids (default: all; none if empty)")
    p.add_argument("--resample", choices=("case", "row"), default="case",
                   help="bootstrap unit: whole exams by case_ID (default) or single rows")
    _add_bootstrap_options(p)
    p.set_defaults(handler=run_reader_study)

    p = subparsers.add_parser(
        "mrmc", help="multi-reader multi-case ROC analysis (Obuchowski-Rockette, Hillis ddf)",
        description="Obuchowski-Rockette MRMC analysis of the empirical AUC with Hillis's degrees of freedom: random "
                    "readers and cases (RRRC), fixed readers (FRRC), fixed cases (RRFC), OR and DBM variance components; "
                    "optionally a standalone model against the readers (1T-RRRC) with a non-inferiority margin. "
                    "Input: iMRMC .imrmc, a tidy CSV reader,case,modality,score,truth, or a reader-study table "
                    "(results.pkl layout; the readers form one modality).")
    p.add_argument("file", type=Path, help=".imrmc, tidy .csv, or reader-study table (.csv / .pkl)")
    p.add_argument("--output-dir", required=True, type=Path, help="where mrmc.json and mrmc.txt go")
    p.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                   help="covariance of the AUCs over cases (default: %(default)s)")
    p.add_argument("--confidence", type=_fraction, default=0.95, help="confidence level (default: %(default)s)")
    p.add_argument("--modalities", nargs="+", help="analyse only these modalities")
    p.add_argument("--readers", nargs="+", help="analyse only these readers (reader IDs, or columns/regexes of a "
                                                 "reader-study table)")
    p.add_argument("--ai", help="standalone model to compare with the readers: a reader ID of the MRMC file, or a "
                                "model column of a reader-study table (e.g. AI_GMIC_top5_POM)")
    p.add_argument("--margin", type=_fraction, help="non-inferiority margin for --ai, on the AUC scale (e.g. 0.05)")
    p.add_argument("--hybrid", metavar="MODEL", help="reader-study tables: add modality 'hybrid' = (reader + MODEL) / 2")
    p.set_defaults(handler=run_mrmc)


@_user_errors
def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate.predictions import evaluate_predictions
    from ..evaluate.reports import format_evaluation, write_evaluation

    result = evaluate_predictions(args.predictions, args.exam_list, level=args.level, n_bootstrap=args.bootstrap,
                                  seed=args.seed, confidence=args.confidence)
    paths = write_evaluation(result, args.output_dir)
    sys.stdout.write(format_evaluation(result))
    _print_outputs(paths, args.output_dir)
    return 0


@_user_errors
def run_compare(args: argparse.Namespace) -> int:
    from ..evaluate.compare import compare_models
    from ..evaluate.reports import format_comparison, write_comparison

    result = compare_models(args.predictions, args.names, args.exam_list, level=args.level,
                            n_bootstrap=args.bootstrap, seed=args.seed, confidence=args.confidence,
                            specificities=args.specificities, sensitivities=args.sensitivities,
                            calibration_bins=args.calibration_bins)
    paths = write_comparison(result, args.output_dir)
    sys.stdout.write(format_comparison(result))
    _print_outputs(paths, args.output_dir)
    return 0


@_user_errors
def run_reader_study(args: argparse.Namespace) -> int:
    from ..evaluate.readers import evaluate_reader_study
    from ..evaluate.reports import format_reader_study, write_reader_study

    result = evaluate_reader_study(args.file, readers=args.readers, models=args.models,
                                   hybrid_models=args.hybrid_models, n_bootstrap=args.bootstrap, seed=args.seed,
                                   confidence=args.confidence, resample=args.resample)
    paths = write_reader_study(result, args.output_dir)
    sys.stdout.write(format_reader_study(result))
    _print_outputs(paths, args.output_dir)
    return 0


@_user_errors
def run_mrmc(args: argparse.Namespace) -> int:
    from ..evaluate.mrmc import analyse_mrmc_file
    from ..evaluate.reports import format_mrmc, write_mrmc

    if args.margin is not None and args.ai is None:
        raise UserError("--margin needs --ai (the model to test for non-inferiority)")
    result, ai_results = analyse_mrmc_file(args.file, covariance=args.covariance, confidence=args.confidence,
                                           modalities=args.modalities, readers=args.readers, ai=args.ai,
                                           margin=args.margin, hybrid_with=args.hybrid)
    paths = write_mrmc(result, args.output_dir, ai_results)
    sys.stdout.write(format_mrmc(result, ai_results))
    _print_outputs(paths, args.output_dir)
    return 0
