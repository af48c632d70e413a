"""``mammoscreen predict`` and ``mammoscreen run``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..core.stages import FAILURES_CSV, WARNINGS_CSV
from ..engine.choice import open_engine
from .common import (
    add_image_inputs,
    SEED,
    existing_dir,
    non_negative_int,
    output_dir,
    positive_int,
    report_failures,
    report_warnings,
    weights_source,
)
from .engine import add_execution_options, engine_choice, print_engine

WEIGHTS_HELP = ("weights: a checkpoint file, a directory holding the official file names, or 'official' "
                "(cache/download). With several models give each its own as MODEL=PATH (repeat the option); "
                "a plain value applies to every model not named")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="registered model name (see 'mammoscreen models'; default gmic)")
    p.add_argument("--weights", action="append", default=[], type=weights_source, metavar="[MODEL=]PATH",
                   help=WEIGHTS_HELP)
    p.add_argument("--model-index", "--variant", dest="variant", action="append", default=[],
                   metavar="[MODEL=]VARIANT",
                   help="model variant, e.g. GMIC 1-5 or 'ensemble' (default 1), GLAM model_joint or model_sep; "
                        "with several models MODEL=VARIANT")
    p.add_argument("--model-option", dest="model_options", action="append", default=[], metavar="KEY=VALUE",
                   help="model-specific setting given to every model whose options declare it, e.g. "
                        "mean_pixel_intensity=nyu for end2end (see docs/models/<model>.md); repeatable")
    p.add_argument("--allow-unverified", action="store_true",
                   help="with 'official' weights, also download files published without a sha256 (GLAM, DMV-CNN); "
                        "the sha256 they had is printed and recorded in run_summary.json so they can be pinned")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="arithmetic of the forward pass: fp32 (default: the official numbers) or bf16/fp16 autocast "
                        "(faster on GPUs, approximate; recorded in run_summary.json, see docs/scale-out.md#gpus)")
    p.add_argument("--save-maps", action="store_true", help="write maps/<image>.npz (saliency, patches, outputs)")
    p.add_argument("--visualize", action="store_true", help="write visualization/<image>.png")
    p.add_argument("--segmentations", type=existing_dir, default=None,
                   help="directory of <image>_benign.png / <image>_malignant.png masks to draw in the figures "
                        "('run' also localises the saved saliency maps against them)")
    p.add_argument("--ignore-unknown-views", action="store_true",
                   help="leave out (with a warning naming them) the images of exam-list keys that look like views "
                        "but are not L-CC, R-CC, L-MLO or R-MLO (e.g. 'L-XCCL'); by default such a key is an error")
    _add_dmv_options(p)


def _add_dmv_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("DMV-CNN models (nyu_model, nyu_model_single)")
    g.add_argument("--heatmaps", action="store_true",
                   help="use the image+heatmaps variant: patch-classifier heatmaps as extra inputs "
                        "(needs --patch-weights)")
    g.add_argument("--patch-weights", default=None, type=weights_source,
                   help="patch classifier checkpoint (sample_patch_model.p), a directory holding it, or 'official'")
    g.add_argument("--seed", type=SEED, default=None,
                   help="seed of the random input windows and heatmap patch grids (default 0: the official numbers)")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="average over this many random input windows (default 1, as the meta-repository)")
    g.add_argument("--every-image", action="store_true",
                   help="nyu_model_single: predict every image of a view, not one drawn at random as the "
                        "official script does")
    g.add_argument("--heatmap-batch-size", type=positive_int, default=None,
                   help="patches per patch-classifier batch (default 32)")
    g.add_argument("--heatmap-precision", choices=("float32", "bfloat16"), default=None,
                   help="arithmetic of the patch classifier: float32 (default: the official heatmaps) or bfloat16 "
                        "(opt-in, about 1.7x faster on CPUs with AVX512-BF16/AMX; probabilities differ by up to a "
                        "few 1e-3, see docs/models/nyu_model.md#speed)")
    g.add_argument("--save-heatmap-pngs", action="store_true",
                   help="also write the heatmaps as 16-bit PNGs to DIR/heatmaps/heatmap_{benign,malignant}/<image>.png")


def _build_options(args: argparse.Namespace, spec, variant: str | None, model_output_dir: Path,
                   strict: bool = True) -> tuple[str | None, dict]:
    """(variant, keyword options for spec.build) from the model options that were given.

    With ``strict`` an option the model does not take is an error; otherwise (several models in one
    run) it is simply not passed to this model.
    """
    options: dict = {}
    accepted = spec.options.names()
    heatmaps_variant = _heatmaps_variant(spec)
    if args.heatmaps and heatmaps_variant:
        if variant not in (None, heatmaps_variant):
            raise ValueError(f"--heatmaps contradicts --variant {variant}")
        variant = heatmaps_variant
    elif args.heatmaps and strict:
        raise ValueError(f"model {spec.name} has no image+heatmaps variant")
    given = {"patch_weights": args.patch_weights, "seed": args.seed, "epochs": args.epochs,
             "every_image": args.every_image or None, "heatmap_batch_size": args.heatmap_batch_size,
             "heatmap_precision": args.heatmap_precision,
             "heatmap_png_dir": model_output_dir / "heatmaps" if args.save_heatmap_pngs else None}
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            if strict:
                flag = {"heatmap_png_dir": "save-heatmap-pngs"}.get(key, key.replace("_", "-"))
                raise ValueError(f"model {spec.name} does not take --{flag}")
            continue
        options[key] = value
    generic = _parse_model_options(args)
    both = sorted(set(generic) & set(options))
    if both:
        raise ValueError(f"{', '.join(both)} given twice (as an option and as --model-option)")
    if not strict:
        generic = {k: v for k, v in generic.items() if k in _builder_options(spec)}
    return variant, {**generic, **options}


def _heatmaps_variant(spec) -> str:
    """The variant --heatmaps selects: the one the model's preprocessing record names for heatmap inputs ('': none)."""
    return spec.preprocessing.heatmaps_variant if spec.preprocessing is not None else ""


def _options(args: argparse.Namespace):
    from ..engine import PredictOptions

    if args.segmentations is not None and not args.segmentations.is_dir():
        raise FileNotFoundError(f"segmentation directory not found: {args.segmentations}")
    return PredictOptions(device=args.device, batch_size=args.batch_size, save_maps=args.save_maps,
                          visualize=args.visualize, segmentations=args.segmentations, progress=not args.quiet,
                          precision=args.precision)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="run a model on preprocessed images",
        description="Run a model on cropped images with optimal centres (from 'mammoscreen centers') and write "
                    "DIR/predictions.csv (image_index, predictions, labels), optionally maps and figures.")
    add_image_inputs(p, "directory of cropped PNGs", "exam list with best_center (data.pkl)")
    p.add_argument("--output-dir", required=True, type=output_dir)
    _add_model_options(p)
    add_execution_options(p, workers=False)
    p.set_defaults(handler=run_predict)

    p = subparsers.add_parser(
        "run", help="crop, compute centres and predict in one go (resumable)",
        description="The whole pipeline from original 16-bit PNGs: crop -> optimal centres -> predict. "
                    "Intermediate outputs are kept in OUTPUT_DIR; a re-run skips finished stages.")
    add_image_inputs(p, "directory of the original 16-bit PNGs", "exam list before cropping (.pkl or .json)")
    p.add_argument("--output-dir", required=True, type=output_dir)
    _add_model_options(p)
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                   help="do not evaluate the predictions (by default each model is evaluated against the exam "
                        "list's labels, with bootstrap CIs, and several models are compared; with --segmentations "
                        "and --save-maps the saliency maps of GMIC/GLAM models are localised against the masks)")
    p.add_argument("--bootstrap", type=non_negative_int, default=2000, metavar="N",
                   help="bootstrap replicates of the evaluation's and localisation's CIs (default 2000; 0: none)")
    p.add_argument("--by", action="append", default=None, metavar="KEY[,KEY...]",
                   help="subgroup analysis by these metadata keys of the exam list (default: those of density, age, "
                        "manufacturer, site, machine_id, implant, dataset it has; --by '' for none)")
    p.add_argument("--bins", action="append", default=[], metavar="[KEY=]EDGES|qN",
                   help="bins of numeric subgroup keys, as 'mammoscreen evaluate --bins' (default for age: 50,60,70)")
    p.add_argument("--models", action="append", default=[], metavar="MODEL[,MODEL...]",
                   help="run several models on the shared preprocessing, e.g. --models gmic,nyu_glam "
                        "(a model whose weights are missing is reported and skipped)")
    add_execution_options(p)
    p.set_defaults(handler=run_run)


def _parse_model_options(args: argparse.Namespace) -> dict[str, str]:
    """--model-option KEY=VALUE pairs."""
    options = {}
    for item in args.model_options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    return options


def _builder_options(spec) -> list[str]:
    """The options a model declares (its ModelOptions dataclass)."""
    return list(spec.options.names())


def _check_model_options(options: dict[str, str], specs) -> None:
    """Every option must be taken by at least one of the requested models."""
    accepted = {name for spec in specs for name in _builder_options(spec)}
    unknown = [key for key in options if key not in accepted]
    if unknown:
        names = " / ".join(spec.name for spec in specs)
        raise ValueError(f"model {names} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(sorted(accepted)) or 'none'}")


def _requests(args: argparse.Namespace, names: list[str]):
    from ..models.weights import allow_unverified_downloads
    from .model_args import model_requests, split_model_names

    if args.allow_unverified:  # before any weights are checked or fetched
        allow_unverified_downloads(True)
    try:
        names = split_model_names(names)
    except KeyError as e:
        raise ValueError(str(e).strip("'\"")) from None
    if not args.weights:
        from ..models.registry import get_model_spec

        # Models shipping their own weights (gmic_demo) need no --weights.
        if all(any(wf.bundled for wf in get_model_spec(n).weights.values()) for n in names):
            return model_requests(names, ["official"], args.variant)
        raise ValueError("no weights given: pass --weights PATH (or MODEL=PATH for each model, a directory of "
                         "official files, or 'official')")
    return model_requests(names, args.weights, args.variant)


def run_predict(args: argparse.Namespace) -> int:
    from ..data.exams import load_exam_list
    from ..engine import run_prediction
    from ..models.factory import build_predictor
    from ..models.registry import get_model_spec
    from ..models.weights import WeightsError, weights_problem

    choice = engine_choice(args)  # before any work: an option error is one line
    request = _requests(args, [args.model or "gmic"])[0]
    spec = get_model_spec(request.model)
    problem = weights_problem(spec, request.weights, request.variant)
    if problem:
        raise WeightsError(problem)
    options = _options(args)
    exams = load_exam_list(args.exam_list, ignore_unknown_views=args.ignore_unknown_views)
    model_options = _parse_model_options(args)
    _check_model_options(model_options, [spec])
    variant, build_options = _build_options(args, spec, request.variant, args.output_dir)
    predictor = build_predictor(replace(request, variant=variant, device=options.device, options=build_options))
    provenance = predictor.provenance()
    print(f"{spec.name} variant {provenance.get('variant', '-')} on {getattr(predictor, 'device', '')}")
    if provenance.get("heatmap_precision", "float32") != "float32":
        print(f"heatmaps in {provenance['heatmap_precision']}: approximate, not the official numbers")
    with open_engine(choice) as engine:
        if engine.executor is not None:
            options.executor = engine.executor
        run = run_prediction(predictor, exams, args.images, args.output_dir, options)
        engine.note_stage(spec.name)
    print_engine(engine)
    report_failures(run.failures, len(run.rows) + len(run.failures),
                    "exams" if spec.output_level == "breast" else "images")
    if run.csv_written:
        print(f"{len(run.rows)} predictions -> {run.csv_path}")
    if run.incomplete:
        print(f"mammoscreen predict: incomplete - {incomplete_advice(run.failures)}", file=sys.stderr)
        return 1
    return 1 if run.failures and not run.rows else 0


def run_run(args: argparse.Namespace) -> int:
    from ..models.registry import get_model_spec
    from ..workflows.pipeline import run_pipeline

    choice = engine_choice(args)  # before any work: an option error is one line
    names = ([args.model] if args.model else []) + list(args.models)
    requests = _requests(args, names or ["gmic"])
    specs = [get_model_spec(r.model) for r in requests]
    _check_model_options(_parse_model_options(args), specs)
    strict = len(requests) == 1
    if not strict and args.heatmaps and not any(_heatmaps_variant(s) for s in specs):
        raise ValueError("--heatmaps: none of the models has an image+heatmaps variant")
    for position, (request, spec) in enumerate(zip(requests, specs)):
        variant, options = _build_options(args, spec, request.variant, args.output_dir / spec.name, strict)
        requests[position] = replace(request, variant=variant, options={**request.options, **options})
    with open_engine(choice) as engine:
        result = run_pipeline(args.images, args.exam_list, args.output_dir, requests, workers=args.workers,
                              options=_options(args), command=getattr(args, "command_line", None),
                              ignore_unknown_views=args.ignore_unknown_views, engine=engine)
    print_engine(engine)
    for stage, failures in result.failures.items():
        outcome = result.outcomes.get(stage)
        if failures and outcome is not None and outcome.run is not None:
            print(f"{stage}:", file=sys.stderr)
            report_failures(failures, len(outcome.run.rows) + len(failures),
                            "exams" if outcome.spec.output_level == "breast" else "images")
        elif failures:
            print(f"{stage}:", file=sys.stderr)
            report = result.stages.get(stage)
            report_failures(failures, report.total if report is not None and report.total else len(failures))
    report_warnings(result.warnings, args.output_dir / WARNINGS_CSV)
    print(_summary_table(result))
    io_failures = list(result.incomplete)
    if args.evaluate:
        from ..workflows.run_evaluation import evaluate_run

        evaluation = evaluate_run(result, args.output_dir, n_bootstrap=args.bootstrap, by=args.by,
                                  bins=args.bins or None)
        late = list(evaluation.failures)
        if args.segmentations is not None:
            from ..workflows.run_evaluation import localize_run

            late += localize_run(result, args.output_dir, args.segmentations, n_bootstrap=args.bootstrap).failures
        if late:
            from ..workflows.pipeline import add_failures

            add_failures(args.output_dir, late)
            for failure in late:
                print(f"{failure.stage} failed for {failure.name}: {failure.reason}", file=sys.stderr)
            io_failures += sorted({f.stage for f in late})
    if io_failures:
        print(f"mammoscreen run: incomplete ({', '.join(io_failures)}) - "
              f"{incomplete_advice([f for found in result.failures.values() for f in found])}", file=sys.stderr)
        return 1
    if result.all_failed:
        print(f"mammoscreen run: every image failed in {', '.join(result.all_failed)} (see "
              f"{args.output_dir / FAILURES_CSV})", file=sys.stderr)
        return 1
    return 1 if result.skipped else 0


def incomplete_advice(failures) -> str:
    """What to do after I/O errors: fix the cause, re-run the same command (finished work is kept)."""
    reasons = [f.reason for f in failures if f.io_error]
    cause = f" ({reasons[0]})" if reasons else ""
    return (f"an I/O error stopped part of the work{cause}; free space or fix the output directory, then re-run the "
            "same command: finished images are kept and only the rest is done")


def _summary_table(result) -> str:
    rows = [("stage", "variant", "status", "images", "failed", "output / reason")]
    for name, report in result.stages.items():
        status = "failed" if report.output_failed else "incomplete" if report.incomplete else "done"
        output = result.cropped_exam_list if name == "crop" else next(
            (p for p in result.center_exam_lists.values() if f"centers-{p.stem}" == name), "")
        rows.append((name, "-", status, str(report.reused + report.computed), str(len(report.failures)),
                     "" if report.output_failed else str(output)))
    for name, outcome in result.outcomes.items():
        if outcome.run is not None:
            status = "incomplete" if outcome.run.incomplete else outcome.status
            rows.append((name, outcome.variant or "-", status, str(len(outcome.run.rows)),
                         str(len(outcome.run.failures)), str(outcome.run.csv_path) if outcome.run.csv_written else ""))
        else:
            rows.append((name, outcome.variant or "-", outcome.status, "-", "-", outcome.reason))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5] for r in rows)
