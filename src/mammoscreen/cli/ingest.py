"""Data-in commands: ``convert-dicom``, ``inspect``, ``validate``, ``synth`` and ``import-dataset``."""

from __future__ import annotations

import argparse
import sys

from . import UserError
from ..engine.choice import open_engine
from .common import (
    SEED,
    add_image_inputs,
    existing_dir,
    existing_file,
    float_range,
    int_range,
    output_dir,
    report_failures,
)
from .engine import add_execution_options, engine_choice, print_engine


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_convert(subparsers)
    _register_inspect(subparsers)
    _register_validate(subparsers)
    _register_synth(subparsers)
    _register_import(subparsers)


def _add_pixel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--voi", choices=("none", "window", "lut", "minmax"), default="none",
                   help="VOI step: none (default; pixel data as stored, as the NYU models were trained), "
                        "window (Window Center/Width), lut (VOI LUT Sequence), minmax")
    p.add_argument("--voi-index", type=int_range(0, 1000), default=0,
                   help="which window or VOI LUT to use (default: 0)")
    p.add_argument("--bit-depth", type=int_range(1, 16), default=None,
                   help="bit depth of the values before the rescale to 16 bits, 1-16 (default: from Bits Stored)")
    p.add_argument("--accept-for-processing", action="store_true",
                   help="also convert (or import) For Processing (raw) images")
    p.add_argument("--accept-synthesized-2d", action="store_true",
                   help="also convert 2-D images synthesised from tomosynthesis")


def _policies(args: argparse.Namespace):
    from ..data.dicom import AcceptPolicy, PixelPolicy

    try:
        pixel = PixelPolicy(voi=args.voi, voi_index=args.voi_index, bit_depth=args.bit_depth)
    except ValueError as e:
        raise UserError(str(e)) from None
    return pixel, AcceptPolicy(for_processing=args.accept_for_processing,
                               synthesized_2d=args.accept_synthesized_2d)


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-dicom", help="convert a directory of DICOM mammograms to 16-bit PNGs and an exam list",
        description="Convert every 2-D For Presentation mammogram (CC/MLO) under INPUT_DIR to a 16-bit PNG, "
                    "group images into exams by Study Instance UID and write DIR/exam_list.pkl, a JSON "
                    "sidecar per image (DIR/sidecars) and DIR/manifest.csv. Other files are skipped with "
                    "a reason; a re-run skips images already converted.")
    p.add_argument("input_dir", type=existing_dir, metavar="INPUT_DIR")
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--labels", type=existing_file,
                   help="CSV with columns study (Study Instance UID), laterality (L/R), malignant (0/1), benign (0/1)")
    _add_pixel_options(p)
    add_execution_options(p)
    p.set_defaults(handler=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    from ..data.convert import convert_dicom_dir, read_labels_csv, summarise

    choice = engine_choice(args)  # before any work: an option error is one line
    pixel, accept = _policies(args)
    labels = None
    if args.labels is not None:
        try:
            labels = read_labels_csv(args.labels)
        except ValueError as e:
            raise UserError(str(e)) from None
    with open_engine(choice) as engine:
        report = convert_dicom_dir(args.input_dir, args.output_dir, policy=pixel, accept=accept, labels=labels,
                                   workers=engine.stage_workers(args.workers), progress=not args.quiet,
                                   pool=engine.pool)
        engine.note_stage("convert")
    print_engine(engine)
    report_failures(report.failures, len(report.converted) + len(report.failures), "files")
    print(summarise(report))
    print(f"exam list: {args.output_dir / 'exam_list.pkl'}; per-file report: {args.output_dir / 'manifest.csv'}")
    return 0 if report.converted or not report.failures else 1


def _register_inspect(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("inspect", help="print the DICOM attributes that matter for conversion",
                              description="Print the attributes of a DICOM file that decide how it is "
                                          "converted, and what convert-dicom would do with it.")
    p.add_argument("file", type=existing_file, metavar="FILE.dcm")
    p.add_argument("--pixels", action="store_true", help="also decode the pixels and show the conversion steps")
    _add_pixel_options(p)
    p.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from ..data.dicom import DicomFileError, inspect_dicom, png_pixels, read_dicom

    pixel, accept = _policies(args)
    try:
        rows = inspect_dicom(args.file, accept)
    except DicomFileError as e:
        raise UserError(str(e)) from None
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.pixels:
        try:
            _, record = png_pixels(read_dicom(args.file, pixels=True), pixel, str(args.file))
        except DicomFileError as e:
            raise UserError(str(e)) from None
        print("conversion:")
        for key, value in record.items():
            print(f"  {key}: {value}")
    return 0


def _register_validate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate", help="check an exam list and its images before running a model",
        description="Check that every image of the exam list exists and is a single-channel 16-bit PNG of "
                    "plausible size with a breast on a zero background, facing the way its view and "
                    "horizontal_flip say, and that labels are well-formed; reports the coverage of the exam list's "
                    "metadata (age, density ...: exams and images that have each key, and its values). Exits with "
                    "1 on errors.")
    add_image_inputs(p, "directory of the PNGs", "exam list (.pkl or .json)")
    p.add_argument("--max-issues", type=int_range(0), default=50,
                   help="issues printed (default: 50; 0: none; all are counted)")
    add_execution_options(p, engine=False)
    p.set_defaults(handler=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    from ..data.validate import validate_dataset

    report = validate_dataset(args.images, args.exam_list, workers=args.workers, progress=not args.quiet)
    ordered = report.errors + report.warnings
    for issue in ordered[:args.max_issues]:
        print(issue)
    if len(ordered) > args.max_issues:
        print(f"... and {len(ordered) - args.max_issues} more")
    for message, count in report.notes.items():
        print(f"note: {count} image(s): {message}")
    if report.metadata:
        print("metadata coverage:")
        for coverage in report.metadata:
            print(f"  {coverage.describe(report.exams, report.images)}")
    print(report.summary())
    return 0 if report.ok else 1


def _register_synth(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate synthetic four-view exams with lesions, masks and labels",
        description="Generate reproducible synthetic screening exams: 16-bit PNGs (12-bit values), lesion "
                    "masks DIR/segmentation/<image>_benign.png and _malignant.png, DIR/exam_list.pkl with "
                    "labels, and optionally DICOM files in several encodings with DIR/labels.csv.")
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--exams", required=True, type=int_range(1, 1_000_000), help="number of exams")
    p.add_argument("--seed", type=SEED, default=0, help="dataset seed (default: 0)")
    p.add_argument("--format", choices=("png", "dicom", "both"), default="png", help="output files (default: png)")
    p.add_argument("--scale", type=float_range(0.05, 2), default=1.0,
                   help="image size relative to 3328x2560 at 0.07 mm (default: 1; 0.25 for quick experiments)")
    p.add_argument("--bits", type=int, choices=(12, 16), default=12,
                   help="12: store 12-bit values as they are (default); 16: rescale to the 16-bit range")
    p.add_argument("--p-benign", type=float_range(0, 1), default=0.3,
                   help="chance a breast has a benign mass (default: 0.3)")
    p.add_argument("--p-malignant", type=float_range(0, 1), default=0.3,
                   help="chance a breast has a malignant lesion (0.3)")
    p.add_argument("--contrast", type=float_range(0, 100, low_open=True), default=1.0,
                   help="lesion contrast multiplier (default: 1)")
    p.add_argument("--no-label-text", action="store_true", help="do not burn view labels into the background")
    p.add_argument("--background-noise", type=float_range(0, 1), default=0.0,
                   help="fraction of background pixels set to small values (default: 0)")
    p.add_argument("--start", type=int_range(0, 10**9), default=0, help="number of the first exam (default: 0)")
    p.add_argument("--prefix", default="", help="prefix of every image name")
    p.add_argument("--compression", choices=("jpeg2000", "rle"), default=None, help="compress the DICOM files")
    add_execution_options(p, engine=False)
    p.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from ..data.synth import SynthOptions, generate_exams

    try:
        options = SynthOptions(scale=args.scale, p_benign=args.p_benign, p_malignant=args.p_malignant,
                               contrast=args.contrast, label_text=not args.no_label_text,
                               background_noise=args.background_noise)
    except ValueError as e:
        raise UserError(str(e)) from None
    exams = generate_exams(args.exams, args.output_dir, args.seed, options=options, fmt=args.format, bits=args.bits,
                           start=args.start, prefix=args.prefix, dicom_compression=args.compression,
                           workers=args.workers, progress=not args.quiet)
    malignant = sum(e.cancer_label["malignant"] for e in exams if e.cancer_label)
    benign = sum(e.cancer_label["benign"] for e in exams if e.cancer_label)
    print(f"generated {len(exams)} exam(s) ({malignant} with a malignant, {benign} with a benign lesion) "
          f"in {args.output_dir}")
    return 0


# Listed here rather than imported so that building the parser does not load pandas (tested equal).
DATASETS = ("cbis-ddsm", "cmmd", "inbreast", "rsna", "vindr-mammo")


def _register_import(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-dataset", help="build an exam list with labels from a public dataset's metadata",
        description="Read a public dataset's published metadata and write DIR/exam_list.pkl with labels and "
                    "DIR/sources.csv (image name -> source file). With --convert, also convert the listed "
                    "DICOM files into DIR/images. See docs/data.md for each dataset's label definition.")
    p.add_argument("dataset", choices=DATASETS, help="which dataset layout to read")
    p.add_argument("--root", required=True, type=existing_dir,
                   help="the dataset's top directory, as downloaded (or the folder just above it)")
    p.add_argument("--output-dir", required=True, type=output_dir)
    p.add_argument("--convert", action="store_true", help="convert the images too")
    _add_pixel_options(p)
    add_execution_options(p, engine=False)
    p.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    from ..data.importers import ImporterError, import_dataset

    pixel, accept = _policies(args)
    try:
        result = import_dataset(args.dataset, args.root, args.output_dir, convert=args.convert, policy=pixel,
                                accept=accept, workers=args.workers, progress=not args.quiet)
    except ImporterError as e:
        raise UserError(str(e)) from None
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if result.failures:
        report_failures(result.failures, result.images + len(result.failures), "images")
    print(f"{args.dataset}: {len(result.exams)} exam(s), {result.images} image(s) -> "
          f"{args.output_dir / 'exam_list.pkl'}")
    return 0
