"""``mammoscreen evaluate``, ``compare``, ``reader-study`` and ``mrmc``: metrics and statistics."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Callable

from . import UserError
from .common import SEED, existing_file, float_range, int_range, non_negative_int, output_dir

_fraction = float_range(0, 1, low_open=True, high_open=True)


def _add_bootstrap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", type=non_negative_int, default=2000, metavar="N",
                        help="bootstrap replicates for 95%% CIs (default: %(default)s; 0 = no CIs)")
    parser.add_argument("--seed", type=SEED, default=0,
                        help="bootstrap random seed (default: %(default)s)")
    parser.add_argument("--confidence", type=_fraction, default=0.95,
                        help="confidence level of the intervals (default: %(default)s)")


def _add_subgroup_options(parser: argparse.ArgumentParser, source: str = "exam list's metadata") -> None:
    group = parser.add_argument_group("subgroups and operating points")
    group.add_argument("--by", action="append", default=[], metavar="KEY[,KEY...]",
                       help=f"metrics per subgroup of these keys of the {source} (e.g. density,age), with CIs, "
                            "tests of the difference from the whole set and of heterogeneity, a forest plot and ROC "
                            "curves per subgroup")
    group.add_argument("--bins", action="append", default=[], metavar="[KEY=]EDGES|qN",
                       help="bins of numeric keys: left-closed edges (50,60,70 -> <50, [50,60), [60,70), >=70) or "
                            "quantiles (q4); KEY=... for one key (default for age: 50,60,70; other numeric keys "
                            "with more than 8 values: q4)")
    group.add_argument("--operating-points", nargs="+", default=None, metavar="RULE",
                       help="thresholds chosen on the whole set and applied to every subgroup: specificity=0.9, "
                            "sensitivity=0.8, recall_rate=0.1 (share of exams recalled), threshold=0.5"
                            + (", readers (the readers' mean specificity; the default)" if "reader" in source
                               else " (default: specificity=0.9)"))


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


def _print_outputs(paths: list[Path], directory: Path) -> None:
    names = ", ".join(p.name for p in paths)
    print(f"Wrote to {directory}: {names}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="AUROC/AUPRC with bootstrap CIs of one prediction file (meta-repository metrics)",
        description="Evaluate a prediction CSV as the meta-repository's score.py does - AUROC, AUPRC (trapezoidal), "
                    "plus average precision and benign AUROC - at image and breast level, with percentile bootstrap "
                    "CIs, ROC and PR plots (PNG, SVG) and metrics.json. Image-level files: image_index,"
                    "malignant_pred,malignant_label[,benign_pred,benign_label]; breast-level files: left_malignant,"
                    "right_malignant[,left_benign,right_benign], one row per exam of the exam list.")
    p.add_argument("--predictions", required=True, type=existing_file, help="prediction CSV")
    p.add_argument("--exam-list", type=existing_file, help="exam list (.pkl or .json); needed for breast level")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where metrics.json, metrics.txt and plots go")
    p.add_argument("--level", choices=("image", "breast", "both"), default="both",
                   help="which levels to evaluate (default: %(default)s, as far as the inputs allow)")
    p.add_argument("--strict", action="store_true",
                   help="stop with an error when the file's labels disagree with the exam list's cancer_label "
                        "(default: a warning with the number of disagreeing rows)")
    _add_bootstrap_options(p)
    _add_subgroup_options(p)
    p.add_argument("--resample", choices=("exam", "case"), default="exam",
                   help="bootstrap unit of the subgroup analysis: whole exams (default) or single cases")
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser(
        "compare", help="compare models on the same cases: DeLong tests, paired bootstrap, operating points",
        description="Compare several prediction files on the same exams: every model's metrics with CIs, overlaid "
                    "ROC/PR/calibration plots, a paired DeLong test and paired-bootstrap CI for each pair's AUROC "
                    "difference, and sensitivity at given specificities (and the reverse) with CIs.")
    p.add_argument("predictions", nargs="+", type=existing_file, help="prediction CSVs, one per model")
    p.add_argument("--names", nargs="+", help="model names, one per file (default: file names)")
    p.add_argument("--exam-list", type=existing_file, help="exam list (.pkl or .json); needed for breast level")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where comparison.json, .txt and plots go")
    p.add_argument("--level", choices=("image", "breast"),
                   help="level to compare (default: breast with an exam list, else image)")
    p.add_argument("--specificities", nargs="*", type=_fraction, default=[0.9, 0.95], metavar="S",
                   help="report sensitivity at these specificities (default: 0.9 0.95)")
    p.add_argument("--sensitivities", nargs="*", type=_fraction, default=[0.8, 0.9], metavar="S",
                   help="report specificity at these sensitivities (default: 0.8 0.9)")
    p.add_argument("--calibration-bins", type=int_range(2, 1000), default=10,
                   help="bins of the reliability diagram, 2-1000 (default: 10)")
    _add_bootstrap_options(p)
    _add_subgroup_options(p)
    p.set_defaults(handler=run_compare)

    p = subparsers.add_parser(
        "reader-study", help="readers' and models' AUROC/AUPRC with CIs, readers' mean, reader+model hybrids",
        description="Evaluate a reader study in the meta-repository's results.pkl layout (columns case_ID, side, "
                    "label, Reader01_POM ..., AI_<model>_POM): each reader and model with bootstrap CIs, the readers' "
                    "mean, each reader's hybrid with each model (mean of the two probabilities), and an ROC plot. "
                    "A .pkl is read without running code: only DataFrames of numbers and strings are accepted.")
    p.add_argument("file", type=existing_file, help="reader-study table (.csv or .pkl)")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where reader_study.json, .txt and the plot go")
    p.add_argument("--readers", nargs="+", help="reader columns or regexes (default: *_POM not starting AI_)")
    p.add_argument("--models", nargs="+", help="model columns or regexes (default: AI_*_POM)")
    p.add_argument("--hybrid-models", nargs="*", help="models for reader hybrids (default: all; none if empty)")
    p.add_argument("--resample", choices=("case", "row"), default="case",
                   help="bootstrap unit: whole exams by case_ID (default) or single rows")
    _add_bootstrap_options(p)
    _add_subgroup_options(p, source="reader-study table's columns")
    p.add_argument("--reader-threshold", type=float, default=0.0, metavar="P",
                   help="a reader calls a breast positive when their probability is above P (default 0: any "
                        "suspicion); gives each reader's sensitivity and specificity and the readers' mean "
                        "specificity at which the models are compared")
    p.set_defaults(handler=run_reader_study)

    p = subparsers.add_parser(
        "mrmc", help="multi-reader multi-case ROC analysis (Obuchowski-Rockette, Hillis ddf)",
        description="Obuchowski-Rockette MRMC analysis of the empirical AUC with Hillis's degrees of freedom: random "
                    "readers and cases (RRRC), fixed readers (FRRC), fixed cases (RRFC), OR and DBM variance "
                    "components; "
                    "optionally a standalone model against the readers (1T-RRRC) with a non-inferiority margin. "
                    "Input: iMRMC .imrmc, a tidy CSV reader,case,modality,score,truth, or a reader-study table "
                    "(results.pkl layout; the readers form one modality).")
    p.add_argument("file", type=existing_file, help=".imrmc, tidy .csv, or reader-study table (.csv / .pkl)")
    p.add_argument("--output-dir", required=True, type=output_dir, help="where mrmc.json and mrmc.txt go")
    p.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                   help="covariance of the AUCs over cases (default: %(default)s)")
    p.add_argument("--confidence", type=_fraction, default=0.95, help="confidence level (default: %(default)s)")
    p.add_argument("--modalities", nargs="+", help="analyse only these modalities")
    p.add_argument("--readers", nargs="+", help="analyse only these readers (reader IDs, or columns/regexes of a "
                                                 "reader-study table)")
    p.add_argument("--ai", help="standalone model to compare with the readers: a reader ID of the MRMC file, or a "
                                "model column of a reader-study table (e.g. AI_GMIC_top5_POM)")
    p.add_argument("--margin", type=_fraction, help="non-inferiority margin for --ai, on the AUC scale (e.g. 0.05)")
    p.add_argument("--hybrid", metavar="MODEL",
                   help="reader-study tables: add modality 'hybrid' = (reader + MODEL) / 2")
    p.set_defaults(handler=run_mrmc)


@_user_errors
def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate.predictions import evaluate_predictions
    from ..evaluate.result_files import format_evaluation, write_evaluation

    result = evaluate_predictions(args.predictions, args.exam_list, level=args.level, n_bootstrap=args.bootstrap,
                                  seed=args.seed, confidence=args.confidence, strict=args.strict)
    paths = write_evaluation(result, args.output_dir)
    sys.stdout.write(format_evaluation(result))
    if args.by or args.operating_points:
        from ..evaluate.subgroup_evaluation import evaluate_subgroups

        subgroups = evaluate_subgroups(args.predictions, args.exam_list, args.by, bins=args.bins, level=args.level,
                                       operating_points=_operating_points(args), n_bootstrap=args.bootstrap,
                                       seed=args.seed, confidence=args.confidence, resample=args.resample)
        paths += _write_subgroups(subgroups, args.output_dir)
    _print_outputs(paths, args.output_dir)
    return 0


def _operating_points(args: argparse.Namespace, default: tuple[str, ...] = ("specificity=0.9",)) -> list[str]:
    return list(args.operating_points) if args.operating_points else list(default)


def _write_subgroups(subgroups, output_dir: Path) -> list[Path]:
    from ..evaluate.subgroup_files import format_subgroups, write_subgroups

    paths = write_subgroups(subgroups, output_dir)
    sys.stdout.write("\n" + format_subgroups(subgroups))
    return paths


@_user_errors
def run_compare(args: argparse.Namespace) -> int:
    from ..evaluate.compare import compare_models
    from ..evaluate.result_files import format_comparison, write_comparison

    result = compare_models(args.predictions, args.names, args.exam_list, level=args.level,
                            n_bootstrap=args.bootstrap, seed=args.seed, confidence=args.confidence,
                            specificities=args.specificities, sensitivities=args.sensitivities,
                            calibration_bins=args.calibration_bins)
    paths = write_comparison(result, args.output_dir)
    sys.stdout.write(format_comparison(result))
    if args.by or args.operating_points:
        from ..evaluate.subgroup_evaluation import compare_subgroups

        subgroups = compare_subgroups(args.predictions, args.names, args.exam_list, args.by, bins=args.bins,
                                      level=result.level, operating_points=_operating_points(args),
                                      n_bootstrap=args.bootstrap, seed=args.seed, confidence=args.confidence)
        paths += _write_subgroups(subgroups, args.output_dir)
    _print_outputs(paths, args.output_dir)
    return 0


@_user_errors
def run_reader_study(args: argparse.Namespace) -> int:
    from ..evaluate.readers import evaluate_reader_study
    from ..evaluate.result_files import format_reader_study, write_reader_study

    result = evaluate_reader_study(args.file, readers=args.readers, models=args.models,
                                   hybrid_models=args.hybrid_models, n_bootstrap=args.bootstrap, seed=args.seed,
                                   confidence=args.confidence, resample=args.resample)
    paths = write_reader_study(result, args.output_dir)
    sys.stdout.write(format_reader_study(result))
    if result.models and result.readers:
        from ..evaluate.subgroup_evaluation import reader_study_subgroups

        # The readers' operating point (and, with --by, every subgroup) comes with every reader study
        # that has readers and models: the meta-repository paper's comparison.
        subgroups = reader_study_subgroups(args.file, args.by, readers=args.readers, models=args.models,
                                           bins=args.bins, operating_points=_operating_points(args, ("readers",)),
                                           reader_threshold=args.reader_threshold, n_bootstrap=args.bootstrap,
                                           seed=args.seed, confidence=args.confidence,
                                           resample="case" if args.resample == "case" else "row")
        paths += _write_subgroups(subgroups, args.output_dir)
    elif args.by:
        raise UserError("--by needs both readers and models in the reader-study table")
    _print_outputs(paths, args.output_dir)
    return 0


@_user_errors
def run_mrmc(args: argparse.Namespace) -> int:
    from ..evaluate.mrmc import analyse_mrmc_file
    from ..evaluate.result_files import format_mrmc, write_mrmc

    if args.margin is not None and args.ai is None:
        raise UserError("--margin needs --ai (the model to test for non-inferiority)")
    result, ai_results = analyse_mrmc_file(args.file, covariance=args.covariance, confidence=args.confidence,
                                           modalities=args.modalities, readers=args.readers, ai=args.ai,
                                           margin=args.margin, hybrid_with=args.hybrid)
    paths = write_mrmc(result, args.output_dir, ai_results)
    sys.stdout.write(format_mrmc(result, ai_results))
    _print_outputs(paths, args.output_dir)
    return 0
