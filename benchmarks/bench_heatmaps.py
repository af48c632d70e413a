"""Heatmap stage and DMV-CNN timings: mammoscreen against the official implementation's way, in one run.

    python benchmarks/bench_heatmaps.py                    # exam 0 of the reference data, 1 repeat
    python benchmarks/bench_heatmaps.py --repeat 2 --images 0_L-CC,0_R-CC --json out.json
    python benchmarks/bench_heatmaps.py --skip-baseline     # ours only (the baseline takes minutes)

Heatmaps. ``baseline`` reproduces the official heatmap stage's data path (``run_producer.py``): all
patches of an exam as float64 arrays, stacked to three channels in batches of 100, converted with
``torch.FloatTensor`` (which keeps the NHWC-permuted layout), the reference DenseNet-121 (one
``torch.cat`` of all earlier features per dense layer, explicit "SAME" padding, separate BatchNorm and
ReLU), softmax, then the float32 averaging loop, with the default allocator. ``ours`` is
:class:`mammoscreen.models.nyu_model.patch_heatmaps.PatchClassifier` (fused network, background patches classified
once, malloc tuned by :mod:`mammoscreen.core.memory`). ``--allocator-ablation`` adds the baseline with the malloc tuning
and ours without it, to show how much of the difference is the allocator. All run on the same images and
patch grids (exam 0's official grids: ``random.seed(0)`` once for the run), each in its own process (so
that its peak memory is its own), alternately when repeated. The heatmaps of ours and the baseline are
compared. ``--bfloat16`` adds ours with ``--heatmap-precision bfloat16`` (an approximation, on CPUs
with native bfloat16 arithmetic) and its largest difference from the baseline.

Roofline. A separate process measures this machine's matrix-multiply throughput (float32 and bfloat16,
4096x4096, same threads) and counts the fused network's FLOPs per patch; the report gives the fraction of
that peak the heatmap stage reaches and the throughput a 5x speed-up over the official figures would need.

DMV-CNN. Forward time per exam (four views) of the view-wise model and per image of the image-wise
model, image-only and image+heatmaps, on the official input windows.

Official figures (2-core machine, quiet, from ../shared/reference/nyu_model*/README.md) are printed
beside ours. Timings depend on the machine's load: compare the ratio columns of one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mammoscreen.core.memory import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
EXAM0 = ["0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO"]
WORKERS = ["baseline", "ours", "baseline_tuned_malloc", "ours_default_malloc", "ours_bfloat16"]
OFFICIAL = {
    "heatmaps_exam0_seconds": 112.0,  # nyu_model README: exam 0, 1371 patches (other jobs running part of the time)
    "heatmaps_seconds_per_patch": (0.067, 0.070),  # quiet machine, batches of 100
    "nyu_model_forward_seconds_per_exam": (0.44, 0.54),  # image-only; image+heatmaps 0.50-0.53
    "nyu_model_single_forward_seconds_per_image": (0.13, 0.17),
}


def _build_reference_checkpoint(reference: Path, manifest: str, out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_checkpoint", reference / "tools" / "make_checkpoint.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return Path(tool.build_checkpoint(reference / "manifests" / f"{manifest}.json", out / f"{manifest}.p"))


def _exam_images(reference: Path, names: list[str]):
    """Cropped images (oriented as nyu_model takes its patches: right views mirrored) and their official grids."""
    from mammoscreen.data.images import read_png
    from mammoscreen.models.nyu_model.patch_heatmaps import plan_patch_grids

    images = []
    for name in names:
        image = read_png(reference / "gmic" / "cropped" / f"{name}.png")
        images.append(image[:, ::-1] if "_R" in name else image)
    grids = plan_patch_grids([(n, img.shape) for n, img in zip(names, images)], seed=0)
    return images, [grids[n] for n in names]


# ----------------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------------

def official_style_probabilities(model, images64, grids, batch_size: int = 100) -> list[np.ndarray]:
    """Patch probabilities computed the way the official heatmap stage does (see the module docstring)."""
    import torch

    patches, counts = [], []
    for image, grid in zip(images64, grids):
        offsets = grid.offsets()
        patches += [image[r:r + 256, c:c + 256][:, :, None] for r, c in offsets]
        counts.append(len(offsets))
    out = np.zeros((len(patches), 4))
    for start in range(0, len(patches), batch_size):
        chunk = patches[start:start + batch_size]
        x = np.stack((chunk,) * 3, axis=-1).reshape(-1, 256, 256, 3).transpose(0, 3, 1, 2)
        with torch.no_grad():
            out[start:start + len(chunk)] = torch.softmax(model(torch.FloatTensor(x)), dim=1).numpy()
    out = out.astype(np.float32)
    return list(np.split(out, np.cumsum(counts)[:-1]))


def heatmap_worker(args: argparse.Namespace) -> dict:
    import torch

    from mammoscreen.models.nyu_model.patch_heatmaps import (
        BENIGN_CLASS,
        MALIGNANT_CLASS,
        PatchClassifier,
        accumulate_heatmap,
        standardize_float64,
    )
    from mammoscreen.models.nyu_model.predictor import load_patch_classifier

    torch.set_num_threads(args.threads)
    names = args.images.split(",")
    images, grids = _exam_images(args.reference, names)
    model = load_patch_classifier(args.patch_weights)
    result = {"kind": args.worker, "images": names, "patches": [len(g) for g in grids]}
    wall, cpu = time.perf_counter(), time.process_time()
    if args.worker.endswith("tuned_malloc"):
        from mammoscreen.core.memory import keep_freed_memory

        result["malloc_tuned"] = keep_freed_memory()
    if args.worker.startswith("baseline"):
        standardized = [standardize_float64(img) for img in images]
        probabilities = official_style_probabilities(model, standardized, grids)
        heatmaps = [(accumulate_heatmap(p[:, BENIGN_CLASS], g), accumulate_heatmap(p[:, MALIGNANT_CLASS], g))
                    for p, g in zip(probabilities, grids)]
    else:
        precision = "bfloat16" if args.worker == "ours_bfloat16" else "float32"
        classifier = PatchClassifier(model, "cpu", batch_size=args.batch_size, fast=True, precision=precision)
        result["classified_patches"] = _classified_patches(classifier, images, grids)
        out = classifier.heatmaps(images, grids)
        probabilities = [h.patch_probabilities for h in out]
        heatmaps = [(h.benign, h.malignant) for h in out]
    result["seconds"] = time.perf_counter() - wall
    result["cpu_seconds"] = time.process_time() - cpu
    result["peak_rss_mb"] = peak_rss_mb()
    np.savez(args.output, **{f"benign_{n}": b for n, (b, _) in zip(names, heatmaps)},
             **{f"malignant_{n}": m for n, (_, m) in zip(names, heatmaps)},
             **{f"probs_{n}": p for n, p in zip(names, probabilities)})
    return result


def _classified_patches(classifier, images, grids) -> int:
    """Patches that go through the network (background patches are classified once per image)."""
    from mammoscreen.models.nyu_model.patch_heatmaps import _background_patches, standardize_float64

    total = 0
    for image, grid in zip(images, grids):
        background = _background_patches(standardize_float64(image), grid.offsets(), grid.patch_size)
        total += len(grid) - int(background.sum()) + int(background.any())
    return total


def roofline_worker(args: argparse.Namespace) -> dict:
    """This machine's matmul GFLOP/s (float32, bfloat16) and the fused patch network's FLOPs per patch."""
    import torch

    from mammoscreen.models.layers.densenet import densenet121, fuse_densenet

    torch.set_num_threads(args.threads)
    result: dict = {"kind": "roofline"}
    n = 4096
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        torch.mm(a, b)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - start)
        result[f"matmul_gflops_{str(dtype).split('.')[-1]}"] = 2 * n ** 3 / min(times) / 1e9
    fused = fuse_densenet(densenet121())
    fused.fused_relu = False  # every convolution through its module, so that the hooks see it
    macs = [0]

    def count(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.weight[0].numel()  # in/groups x kh x kw
            macs[0] += output.numel() * k
        else:
            macs[0] += module.weight.numel() * (output.numel() // module.out_features)

    for m in fused.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(count)
    before, after = fused.stem_padding()
    with torch.inference_mode():
        size = 256 + before + after
        fused(torch.zeros(1, 1, size, size).contiguous(memory_format=torch.channels_last))
    result["gflop_per_patch"] = 2 * macs[0] / 1e9
    return result


def dmv_worker(args: argparse.Namespace) -> dict:
    """Forward seconds of the DMV-CNN models on exam 0's official windows (heatmap channels: zeros)."""
    import torch

    from mammoscreen.data import load_exam_list
    from mammoscreen.models.nyu_model.predictor import build_nyu_model, load_image_wise, load_view_wise, to_batch

    torch.set_num_threads(args.threads)
    out = Path(args.output).parent
    cpu = torch.device("cpu")
    exams = load_exam_list(args.reference / "nyu_model" / "center_data.pkl")[:1]
    cropped = args.reference / "gmic" / "cropped"
    windows_of = build_nyu_model(_build_reference_checkpoint(args.reference, "nyu_model_image_only", out), device="cpu")
    windows_of.plan(exams, cropped)
    image_windows = {s.view: s.window for s in windows_of.prepare(0, exams[0], cropped).samples}

    def median_seconds(run) -> float:
        times = []
        with torch.inference_mode():
            for _ in range(args.dmv_repeat + 1):  # the first run warms up
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
        return float(np.median(times[1:]))

    result = {"kind": "dmv"}
    for variant in ("image_only", "image_heatmaps"):
        windows = image_windows
        if variant == "image_heatmaps":
            windows = {v: np.concatenate([w, np.zeros(w.shape[:2] + (2,), np.float32)], axis=2)
                       for v, w in image_windows.items()}
        model = load_view_wise(_build_reference_checkpoint(args.reference, f"nyu_model_{variant}", out))
        result[f"nyu_model_{variant}_seconds_per_exam"] = median_seconds(lambda: model.heads(
            {v: model.pooled_features(to_batch([w], cpu), v) for v, w in windows.items()}))
        single = load_image_wise(_build_reference_checkpoint(args.reference, f"nyu_model_single_{variant}", out))
        result[f"nyu_model_single_{variant}_seconds_per_image"] = median_seconds(
            lambda: [single(to_batch([w], cpu), v) for v, w in windows.items()]) / len(windows)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------

def _run_worker(kind: str, args: argparse.Namespace, output: Path) -> dict:
    env = dict(os.environ)
    if kind == "ours_default_malloc":
        env["MAMMOSCREEN_KEEP_MALLOC"] = "1"
    command = [sys.executable, __file__, "--worker", kind, "--reference", str(args.reference), "--images", args.images,
               "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--output", str(output),
               "--dmv-repeat", str(args.dmv_repeat)]
    if args.patch_weights:
        command += ["--patch-weights", str(args.patch_weights)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--images", default=",".join(EXAM0), help="comma-separated reference image names (exam 0)")
    parser.add_argument("--repeat", type=int, default=1, help="alternating baseline/ours runs (default 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=32, help="our patch batch size")
    parser.add_argument("--patch-weights", type=Path, default=None, help="default: the reference checkpoint")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-dmv", action="store_true")
    parser.add_argument("--dmv-repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--allocator-ablation", action="store_true",
                        help="also run the baseline with mammoscreen's malloc tuning and ours without it")
    parser.add_argument("--bfloat16", action="store_true",
                        help="also run ours with --heatmap-precision bfloat16 (an approximation)")
    parser.add_argument("--skip-roofline", action="store_true")
    parser.add_argument("--worker", choices=WORKERS + ["dmv", "roofline"], help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        worker = {"dmv": dmv_worker, "roofline": roofline_worker}.get(args.worker, heatmap_worker)
        result = worker(args)
        print(json.dumps(result))
        return 0
    if not (args.reference / "README.md").is_file():
        parser.error(f"reference data not found at {args.reference} (--reference or $MAMMOSCREEN_REFERENCE_DIR)")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.patch_weights is None:
            args.patch_weights = _build_reference_checkpoint(args.reference, "patch_classifier_densenet121", tmp)
        kinds = ["ours"] if args.skip_baseline else ["baseline", "ours"]
        if args.allocator_ablation:
            kinds += ["ours_default_malloc"] + ([] if args.skip_baseline else ["baseline_tuned_malloc"])
        if args.bfloat16:
            kinds.append("ours_bfloat16")
        runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
        for r in range(args.repeat):
            for kind in (kinds if r % 2 == 0 else kinds[::-1]):
                result = _run_worker(kind, args, tmp / f"{kind}.npz")
                runs[kind].append(result)
                print(f"  {kind:21s} run {r + 1}: {result['seconds']:.1f} s wall, {result['cpu_seconds']:.1f} s CPU, "
                      f"peak RSS {result['peak_rss_mb']:.0f} MB", flush=True)
        ours = runs["ours"]
        n_patches = sum(ours[0]["patches"])
        report = {"images": args.images.split(","), "patches": n_patches, "threads": args.threads,
                  "batch_size": args.batch_size, "runs": runs, "official": OFFICIAL}
        print(f"\nHeatmap stage, {len(report['images'])} images, {n_patches} patches, {args.threads} threads")
        best = {k: min(v, key=lambda x: x["seconds"]) for k, v in runs.items() if v}
        base = best.get("baseline")
        for kind, result in best.items():
            ratio = ""
            if base:
                ratio = (f"  {base['seconds'] / result['seconds']:5.2f}x wall, "
                         f"{base['cpu_seconds'] / result['cpu_seconds']:5.2f}x CPU vs baseline")
            print(f"  {kind:21s} {result['seconds']:8.1f} s  ({result['seconds'] / n_patches:.4f} s/patch, "
                  f"{result['cpu_seconds'] / n_patches:.4f} CPU s/patch), "
                  f"peak RSS {result['peak_rss_mb']:.0f} MB{ratio}")
        if base:
            a, b = np.load(tmp / "baseline.npz"), np.load(tmp / "ours.npz")
            diff = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
            report.update(speedup_wall=base["seconds"] / best["ours"]["seconds"],
                          speedup_cpu=base["cpu_seconds"] / best["ours"]["cpu_seconds"], max_abs_difference=diff)
            print(f"  ours vs baseline: max |heatmap or probability difference| {diff:.2e}")
            if "ours_bfloat16" in best:
                c = np.load(tmp / "ours_bfloat16.npz")
                report["bfloat16_max_abs_difference"] = max(float(np.abs(a[k] - c[k]).max()) for k in a.files)
                print(f"  ours_bfloat16 vs baseline: max |heatmap or probability difference| "
                      f"{report['bfloat16_max_abs_difference']:.2e} (an approximation)")
        per_patch = best["ours"]["seconds"] / n_patches
        lo, hi = OFFICIAL["heatmaps_seconds_per_patch"]
        print(f"  official (README): {lo}-{hi} s/patch on a quiet machine, exam 0 took "
              f"{OFFICIAL['heatmaps_exam0_seconds']:.0f} s for 1371 patches; ours here {per_patch:.4f} s/patch "
              f"({lo / per_patch:.1f}-{hi / per_patch:.1f}x)")

        if not args.skip_roofline:
            roof = _run_worker("roofline", args, tmp / "roofline.npz")
            report["roofline"] = roof
            flop = roof["gflop_per_patch"]
            peak32, peak16 = roof["matmul_gflops_float32"], roof["matmul_gflops_bfloat16"]
            print(f"\nRoofline ({args.threads} threads): matmul peak {peak32:.0f} GFLOP/s float32, {peak16:.0f} "
                  f"bfloat16; fused patch network {flop:.2f} GFLOP per patch")
            for kind in ("ours", "ours_bfloat16"):
                if kind in best:
                    rate = flop * best[kind]["classified_patches"] / best[kind]["seconds"]
                    peak = peak16 if kind == "ours_bfloat16" else peak32
                    report[f"{kind}_gflops"] = rate
                    print(f"  {kind:21s} {rate:6.0f} GFLOP/s on the classified patches = {rate / peak:.0%} of the "
                          f"{'bfloat16' if kind == 'ours_bfloat16' else 'float32'} matmul peak")
            classified = best["ours"]["classified_patches"] / n_patches  # background patches are reused
            needed = 5 * flop * classified / lo
            report["gflops_needed_for_5x_official"] = needed
            print(f"  5x the official {lo} s/patch = {lo / 5:.4f} s/patch needs {needed:.0f} GFLOP/s with "
                  f"{classified:.0%} of the patches classified "
                  f"= {needed / peak32:.1f}x this machine's float32 matmul peak ({needed / peak16:.1f}x bfloat16)")
            if base:
                needed = 5 * flop * best["ours"]["classified_patches"] / base["seconds"]
                report["gflops_needed_for_5x_baseline"] = needed
                print(f"  5x the baseline of this run = {base['seconds'] / 5:.1f} s needs {needed:.0f} GFLOP/s "
                      f"= {needed / peak32:.1f}x the float32 matmul peak ({needed / peak16:.1f}x bfloat16)")

        if not args.skip_dmv:
            dmv = _run_worker("dmv", args, tmp / "dmv.npz")
            report["dmv"] = dmv
            lo, hi = OFFICIAL["nyu_model_forward_seconds_per_exam"]
            print("\nDMV-CNN forward (exam 0, official windows, median of "
                  f"{args.dmv_repeat}), peak RSS {dmv['peak_rss_mb']:.0f} MB")
            for variant in ("image_only", "image_heatmaps"):
                print(f"  nyu_model {variant:15s} {dmv[f'nyu_model_{variant}_seconds_per_exam']:.2f} s/exam "
                      f"(official {lo}-{hi})")
            lo, hi = OFFICIAL["nyu_model_single_forward_seconds_per_image"]
            for variant in ("image_only", "image_heatmaps"):
                print(f"  nyu_model_single {variant:15s} {dmv[f'nyu_model_single_{variant}_seconds_per_image']:.2f} "
                      f"s/image (official {lo}-{hi})")
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
