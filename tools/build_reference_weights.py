"""Build the reference checkpoints of all six models into one directory, under their official file names.

The reference data beside the repository (``../shared/reference``) describes random-weight checkpoints in
each model's official format and the tools that rebuild them deterministically. This script runs those
tools so that ``mammoscreen run --models ... --weights DIR`` can run every model on the sample images:

    python tools/build_reference_weights.py [--reference ../shared/reference] [--output reference-weights]

The weights are random: the predictions mean nothing clinically; they exist to show and test the pipeline.
Nothing built here may be committed.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

MANIFESTS = {  # manifest -> official file name
    "glam_model_joint.json": "model_joint.ckpt",
    "nyu_model_image_only.json": "sample_image_model.p",
    "nyu_model_image_heatmaps.json": "sample_imageheatmaps_model.p",
    "nyu_model_single_image_only.json": "ImageOnly__ModeImage_weights.p",
    "nyu_model_single_image_heatmaps.json": "ImageHeatmaps__ModeImage_weights.p",
    "patch_classifier_densenet121.json": "sample_patch_model.p",
}
END2END_FILE = "ddsm_resnet50_s10_[512-512-1024]x2.h5"
FRCNN_FILE = "vgg16_frcnn_cad.caffemodel"


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_all(reference: Path, output: Path, log=print) -> Path:
    """Build every reference checkpoint into ``output``; files already there are kept."""
    output.mkdir(parents=True, exist_ok=True)
    gmic = output / "sample_model_1.p"
    if not gmic.exists():
        shutil.copyfile(reference / "gmic" / "gmic_reference.p", gmic)
        log(f"gmic      -> {gmic.name}")
    make_checkpoint = _import(reference / "tools" / "make_checkpoint.py", "reference_make_checkpoint")
    for manifest, name in MANIFESTS.items():
        if not (output / name).exists():
            make_checkpoint.build_checkpoint(str(reference / "manifests" / manifest), str(output / name))
            log(f"{manifest:38s} -> {name}")
    if not (output / END2END_FILE).exists():
        make_h5 = _import(reference / "tools" / "make_h5.py", "reference_make_h5")
        make_h5.build_h5(reference / "end2end" / "end2end_h5_skeleton.json.gz", output / END2END_FILE)
        log(f"end2end   -> {END2END_FILE}")
    if not (output / FRCNN_FILE).exists():
        builder = _import(reference / "frcnn_cad" / "build_caffemodel.py", "reference_build_caffemodel")
        (output / FRCNN_FILE).write_bytes(builder.build(str(reference / "frcnn_cad" / "vgg16_frcnn_cad_test.prototxt")))
        log(f"frcnn_cad -> {FRCNN_FILE}")
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REPO.parent / "shared" / "reference")
    parser.add_argument("--output", type=Path, default=Path("reference-weights"))
    args = parser.parse_args()
    if not (args.reference / "manifests").is_dir():
        print(f"reference data not found in {args.reference}", file=sys.stderr)
        return 1
    build_all(args.reference, args.output)
    print(f"reference weights in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
