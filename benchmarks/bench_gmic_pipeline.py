"""GMIC pipeline benchmark on the reference images: time per stage, end-to-end throughput, baselines.

For each of the six reference mammograms it times every stage of the pipeline in isolation (best of
``--repeat`` runs): PNG decode, crop, cropped-PNG encode, optimal centre, window + standardisation,
model forward, explanation figure and CSV writing. Two stages are compared with a baseline in the
same run: the crop against the official algorithm (100 iterations of scipy binary erosion and
dilation, a Python loop over the connected components), and the figure against an official-style
figure (full-resolution arrays drawn at 500 dpi). Then it times ``mammoscreen run`` end to end (all
stages, fresh output directory) with and without maps and figures, and reports its time per image
as a ratio to the model forward alone.

    python benchmarks/bench_gmic_pipeline.py [--reference ../shared/reference] [--repeat 3] [--threads 2]

Numbers depend on the machine and on what else runs on it; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mammoscreen import __version__  # noqa: E402
from mammoscreen.data import iter_images, load_exam_list, read_png  # noqa: E402
from mammoscreen.data.images import encode_png  # noqa: E402
from mammoscreen.engine import PredictOptions, write_predictions_csv  # noqa: E402
from mammoscreen.explain.visualize import gmic_figure  # noqa: E402
from mammoscreen.models.gmic.predictor import load_gmic  # noqa: E402
from mammoscreen.models.factory import PredictorRequest  # noqa: E402
from mammoscreen.workflows.pipeline import run_pipeline  # noqa: E402
from mammoscreen.preprocess.centers import optimal_center  # noqa: E402
from mammoscreen.preprocess.crop import apply_crop, breast_facing, crop_info  # noqa: E402
from mammoscreen.preprocess.windows import extract_window, flip_to_face_right, standardize, window_geometry  # noqa: E402
from _timing import best_time  # noqa: E402


def official_style_crop(image, facing, iterations=100):
    """The official crop's expensive part, as its code does it: scipy morphology and a loop over labels."""
    from scipy import ndimage

    mask = ndimage.binary_erosion(image > 0, iterations=iterations)
    labels, count = ndimage.label(mask)
    sizes = {i: int(np.sum(labels == i)) for i in range(1, count + 1)}
    largest = labels == max(sizes, key=sizes.get)
    return ndimage.binary_dilation(largest, iterations=iterations)


def official_style_figure(window, saliency, patches, path):
    """A figure drawn like the official one: full-resolution arrays, figsize 30x3 inches, 500 dpi."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h, w = window.shape
    fig = plt.figure(figsize=(30, 3))
    for i in range(4):
        ax = fig.add_subplot(1, 10, i + 1)
        ax.imshow(window, cmap="gray", aspect="equal")
        if i >= 2:
            ax.imshow(cv2.resize(saliency[i - 2], (w, h)), cmap="Reds", alpha=0.5, clim=[0, 1])
        ax.axis("off")
    for k in range(len(patches)):
        ax = fig.add_subplot(1, 10, 5 + k)
        ax.imshow(patches[k], cmap="gray")
        ax.axis("off")
    fig.savefig(path, bbox_inches="tight", format="png", dpi=500)
    plt.close(fig)


def replicate_dataset(ref: Path, directory: Path, copies: int) -> tuple[Path, Path, int]:
    """The reference exams ``copies`` times under new names (image files linked, not copied)."""
    from mammoscreen.data import exams_to_data, save_exam_list
    from mammoscreen.data.exams import VIEWS, exams_from_data

    images = directory / "images"
    images.mkdir(parents=True)
    data = []
    for k in range(copies):
        for exam in exams_to_data(load_exam_list(ref / "exam_list_before_cropping.pkl")):
            for view in VIEWS:
                renamed = [f"c{k}_{name}" for name in exam[view]]
                for old, new in zip(exam[view], renamed):
                    os.symlink(ref / "images" / f"{old}.png", images / f"{new}.png")
                exam[view] = renamed
            data.append(exam)
    exam_list = save_exam_list(exams_from_data(data), directory / "exams.pkl")
    return images, exam_list, sum(len(e[v]) for e in data for v in VIEWS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REPO.parent / "shared" / "reference")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-baselines", action="store_true", help="do not time the slow official-style baselines")
    parser.add_argument("--copies", type=int, default=4,
                        help="end-to-end runs use the reference exams this many times (renamed copies), so that "
                             "start-up and model loading are amortised as on a real dataset (default 4)")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "gmic_pipeline.json")
    args = parser.parse_args()
    ref = args.reference
    if not (ref / "gmic" / "gmic_reference.p").is_file():
        print(f"reference data not found in {ref}", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")

    exams = load_exam_list(ref / "gmic" / "data.pkl")
    records = list(iter_images(exams))
    model = load_gmic(ref / "gmic" / "gmic_reference.p", percent_t=0.02)
    stages: dict[str, list[float]] = {k: [] for k in (
        "decode", "crop", "encode cropped PNG", "centres", "window + standardise", "model forward",
        "figure", "CSV")}
    baselines: dict[str, list[float]] = {"crop (official algorithm)": [], "figure (official style)": []}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in records:
            t, image = best_time(lambda: read_png(ref / "images" / f"{r.name}.png"), args.repeat)
            stages["decode"].append(t)
            facing = breast_facing(r.view, r.horizontal_flip)
            t, info = best_time(lambda: crop_info(image, facing), args.repeat)
            stages["crop"].append(t)
            cropped = apply_crop(image, info)
            stages["encode cropped PNG"].append(best_time(lambda: encode_png(cropped), args.repeat)[0])
            flipped = flip_to_face_right(cropped, r.view, r.horizontal_flip)
            meta = info.as_metadata()
            t, center = best_time(lambda: optimal_center(flipped, r.view, meta["rightmost_points"][1],
                                                         meta["bottommost_points"][0], (2944, 1920)), args.repeat)
            stages["centres"].append(t)

            def window_and_standardise():
                img = flip_to_face_right(cropped.astype(np.float32), r.view, r.horizontal_flip)
                g = window_geometry(img.shape, (2944, 1920), center, r.view)
                return standardize(extract_window(img, g, (2944, 1920)))

            t, window = best_time(window_and_standardise, args.repeat)
            stages["window + standardise"].append(t)
            x = torch.from_numpy(window)[None, None]
            with torch.inference_mode():
                model(x)  # warm-up
                t, out = best_time(lambda: model(x), args.repeat)
            stages["model forward"].append(t)
            saliency = out.saliency_map[0].numpy()
            patches = out.patches[0].numpy()
            t, _ = best_time(lambda: gmic_figure(window, saliency, out.patch_locations[0].numpy(), patches,
                                                 out.patch_attention[0].numpy(), tmp / "fig.png"), args.repeat)
            stages["figure"].append(t)
            rows = [{"image_index": r.name, "benign_pred": 0.5, "malignant_pred": 0.5, "benign_label": 0,
                     "malignant_label": 0}]
            stages["CSV"].append(best_time(lambda: write_predictions_csv(tmp / "p.csv", rows, list(rows[0])),
                                           args.repeat)[0])
            if not args.skip_baselines:
                baselines["crop (official algorithm)"].append(
                    best_time(lambda: official_style_crop(image, facing), 1)[0])
                baselines["figure (official style)"].append(
                    best_time(lambda: official_style_figure(window, saliency, patches, tmp / "off.png"), 1)[0])
            print(f"  {r.name}: forward {stages['model forward'][-1]:.2f} s", file=sys.stderr)

        images, exam_list, n_images = replicate_dataset(ref, tmp / "data", args.copies)
        end_to_end = {}
        for label, opts in (("run (predictions only)", {}), ("run (+ maps + figures)", {"save_maps": True,
                                                                                         "visualize": True})):
            out_dir = tmp / label.split()[1].strip("(")
            start = time.perf_counter()
            run_pipeline(images, exam_list, out_dir,
                         [PredictorRequest("gmic", ref / "gmic" / "gmic_reference.p", "1")], workers=2,
                         options=PredictOptions(device="cpu", progress=False, **opts), log=lambda m: None)
            end_to_end[label] = (time.perf_counter() - start) / n_images

    mean = {k: float(np.mean(v)) for k, v in stages.items()}
    forward = mean["model forward"]
    total_stages = sum(mean.values())
    print(f"\nGMIC pipeline, {len(records)} reference images, {args.threads} torch threads, "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, mammoscreen {__version__}")
    print(f"{'stage':28s} {'s/image':>9s} {'share':>7s}")
    for k, v in mean.items():
        print(f"{k:28s} {v:9.3f} {v / total_stages:7.1%}")
    print(f"{'sum of stages':28s} {total_stages:9.3f}   forward share {forward / total_stages:.1%}")
    for k, v in baselines.items():
        if v:
            ours = mean["crop"] if k.startswith("crop") else mean["figure"]
            print(f"{k:28s} {np.mean(v):9.3f}   ours is {np.mean(v) / ours:.1f}x faster")
    for k, v in end_to_end.items():
        print(f"{k:28s} {v:9.3f} s/image = {v / forward:.2f}x the forward alone, {1 / v:.2f} images/s "
              f"({args.copies} x {len(records)} images, start-up included)")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    baseline_means = {k: float(np.mean(v)) for k, v in baselines.items() if v}
    args.json.write_text(json.dumps({"stages": mean, "baselines": baseline_means,
                                     "end_to_end_s_per_image": end_to_end, "threads": args.threads,
                                     "torch": torch.__version__, "cpu_count": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
