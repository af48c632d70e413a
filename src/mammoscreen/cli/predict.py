"""``mammoscreen predict`` and ``mammoscreen run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_quiet_option, add_workers_option, positive_int, report_failures


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="gmic", help="registered model name (see 'mammoscreen models'; default gmic)")
    p.add_argument("--weights", required=True,
                   help="checkpoint file, a directory holding the official file names, or 'official' (cache/download)")
    p.add_argument("--model-index", "--variant", dest="variant", default=None,
                   help="model variant; for GMIC 1-5 or 'ensemble' (default 1); for the DMV-CNN models image_only "
                        "or image_heatmaps (or use --heatmaps)")
    p.add_argument("--model-option", dest="model_options", action="append", default=[], metavar="KEY=VALUE",
                   help="model-specific setting passed to the model's builder, e.g. mean_pixel_intensity=nyu for "
                        "end2end (see docs/models/<model>.md); repeatable")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda if available)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per forward pass (default 1)")
    p.add_argument("--save-maps", action="store_true", help="write maps/<image>.npz (saliency, patches, outputs)")
    p.add_argument("--visualize", action="store_true", help="write visualization/<image>.png")
    p.add_argument("--segmentations", type=Path, default=None,
                   help="directory of <image>_benign.png / <image>_malignant.png masks to draw in the figures")
    _add_dmv_options(p)
    add_quiet_option(p)


def _add_dmv_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("DMV-CNN models (nyu_model, nyu_model_single)")
    g.add_argument("--heatmaps", action="store_true",
                   help="use the image+heatmaps variant: patch-classifier heatmaps as extra inputs "
                        "(needs --patch-weights)")
    g.add_argument("--patch-weights", default=None,
                   help="patch classifier checkpoint (sample_patch_model.p), a directory holding it, or 'official'")
    g.add_argument("--seed", type=int, default=None,
                   help="seed of the random input windows and heatmap patch grids (default 0: the official numbers)")
    g.add_argument("--epochs", type=positive_int, default=None,
                   help="average over this many random input windows (default 1, as the meta-repository)")
    g.add_argument("--every-image", action="store_true",
                   help="nyu_model_single: predict every image of a view, not one drawn at random as the "
                        "official script does")
    g.add_argument("--heatmap-batch-size", type=positive_int, default=None,
                   help="patches per patch-classifier batch (default 32)")
    g.add_argument("--save-heatmap-pngs", action="store_true",
                   help="also write the heatmaps as 16-bit PNGs to DIR/heatmaps/heatmap_{benign,malignant}/<image>.png")


def _build_options(args: argparse.Namespace, spec, model_output_dir: Path) -> tuple[str | None, dict]:
    """(variant, keyword options for spec.build) from the model options that were given."""
    import inspect

    variant = args.variant
    options: dict = {}
    if args.heatmaps:
        if variant not in (None, "image_heatmaps"):
            raise ValueError(f"--heatmaps contradicts --variant {variant}")
        variant = "image_heatmaps"
    given = {"patch_weights": args.patch_weights, "seed": args.seed, "epochs": args.epochs,
             "every_image": args.every_image or None, "heatmap_batch_size": args.heatmap_batch_size,
             "heatmap_png_dir": model_output_dir / "heatmaps" if args.save_heatmap_pngs else None}
    accepted = inspect.signature(spec.build).parameters
    for key, value in given.items():
        if value is None:
            continue
        if key not in accepted:
            flag = {"heatmap_png_dir": "save-heatmap-pngs"}.get(key, key.replace("_", "-"))
            raise ValueError(f"model {spec.name} does not take --{flag}")
        options[key] = value
    if args.heatmaps and "patch_weights" not in accepted:
        raise ValueError(f"model {spec.name} has no image+heatmaps variant")
    generic = _model_options(args, spec)
    both = sorted(set(generic) & set(options))
    if both:
        raise ValueError(f"{', '.join(both)} given twice (as an option and as --model-option)")
    return variant, {**generic, **options}


def _options(args: argparse.Namespace):
    from ..predict import PredictOptions

    if args.segmentations is not None and not args.segmentations.is_dir():
        raise FileNotFoundError(f"segmentation directory not found: {args.segmentations}")
    return PredictOptions(device=args.device, batch_size=args.batch_size, save_maps=args.save_maps,
                          visualize=args.visualize, segmentations=args.segmentations, progress=not args.quiet)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict", help="run a model on preprocessed images",
        description="Run a model on cropped images with optimal centres (from 'mammoscreen centers') and write "
                    "DIR/predictions.csv (image_index, predictions, labels), optionally maps and figures.")
    p.add_argument("--images", required=True, type=Path, help="directory of cropped PNGs")
    p.add_argument("--exam-list", required=True, type=Path, help="exam list with best_center (data.pkl)")
    p.add_argument("--output-dir", required=True, type=Path)
    _add_model_options(p)
    p.set_defaults(handler=run_predict)

    p = subparsers.add_parser(
        "run", help="crop, compute centres and predict in one go (resumable)",
        description="The whole pipeline from original 16-bit PNGs: crop -> optimal centres -> predict. "
                    "Intermediate outputs are kept in OUTPUT_DIR; a re-run skips finished stages.")
    p.add_argument("--images", required=True, type=Path, help="directory of the original 16-bit PNGs")
    p.add_argument("--exam-list", required=True, type=Path, help="exam list before cropping (.pkl or .json)")
    p.add_argument("--output-dir", required=True, type=Path)
    _add_model_options(p)
    add_workers_option(p)
    p.set_defaults(handler=run_run)


def _model_options(args: argparse.Namespace, spec) -> dict[str, str]:
    """--model-option KEY=VALUE pairs, checked against the model builder's keyword arguments."""
    import inspect

    options = {}
    for item in args.model_options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    accepted = [name for name, p in inspect.signature(spec.build).parameters.items()
                if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)]
    accepted = [name for name in accepted if name not in ("device", "variant", "allow_download")]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ValueError(f"model {spec.name} has no option {', '.join(unknown)}; its options: "
                         f"{', '.join(accepted) or 'none'}")
    return options


def _build(args: argparse.Namespace):
    from ..models.registry import get_model_spec

    try:
        spec = get_model_spec(args.model)
    except KeyError as e:
        raise ValueError(str(e).strip("'\"")) from None
    return spec


def run_predict(args: argparse.Namespace) -> int:
    from ..data.exams import load_exam_list
    from ..predict import run_prediction

    spec = _build(args)
    options = _options(args)
    exams = load_exam_list(args.exam_list)
    variant, build_options = _build_options(args, spec, args.output_dir)
    predictor = spec.build(args.weights, variant, device=options.device, **build_options)
    print(f"{spec.name} variant {predictor.provenance().get('variant', '-')} on {getattr(predictor, 'device', '')}")
    run = run_prediction(predictor, exams, args.images, args.output_dir, options)
    report_failures(run.failures, len(run.rows) + len(run.failures),
                    "exams" if spec.output_level == "breast" else "images")
    print(f"{len(run.rows)} predictions -> {run.csv_path}")
    return 0


def run_run(args: argparse.Namespace) -> int:
    from ..pipeline import ModelRequest, run_pipeline

    spec = _build(args)
    variant, build_options = _build_options(args, spec, args.output_dir / spec.name)
    result = run_pipeline(args.images, args.exam_list, args.output_dir,
                          [ModelRequest(spec.name, args.weights, variant, build_options)], workers=args.workers,
                          options=_options(args))
    for stage, failures in result.failures.items():
        if failures:
            print(f"{stage}:")
            report_failures(failures, len(failures))
    for name, run in result.predictions.items():
        print(f"{name}: {len(run.rows)} predictions -> {run.csv_path}")
    return 0
