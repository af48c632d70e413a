"""The model-zoo efficiency table: parameters, FLOPs, seconds per image / exam and peak memory of every
registered model, side by side with a ResNet-34 baseline measured in the same run (the comparison the
GMIC paper makes), plus the official timings the reference READMEs report.

    python benchmarks/bench_zoo.py                       # every registered model, reference checkpoints
    python benchmarks/bench_zoo.py --models nyu_glam --with-maps --images 6
    python benchmarks/bench_zoo.py --weights gmic=/path/sample_model_1.p --weights nyu_glam=/path/dir

Every model is iterated from the registry, so models added later appear automatically. Each is run
through the public prediction engine (``predict_images``: loading, preprocessing, forward, outputs) on
the reference mammograms after the official crop and centre search, in its own process so that its
peak memory (maximum resident set size) is its own. Timing excludes one warm-up image.

Weights: ``--weights`` as for ``mammoscreen run`` (MODEL=PATH, a directory of official file names, or
'official'); models without them use a reference checkpoint from ``--reference`` (official format,
seeded random values - fine for speed and memory): the ones listed in ``REFERENCE_CHECKPOINTS``, a
variant's ``spec.extra['reference_checkpoints']`` entry, or a manifest named ``<model>_<variant>.json``.
A model without any weights is listed with "no weights".

FLOPs are counted with forward hooks on every ``nn.Conv2d`` and ``nn.Linear`` (2 FLOPs per
multiply-accumulate; normalisation, activations and pooling are not counted) of the ``nn.Module``s the
predictor holds.

The timings depend on the machine and on its load: compare rows of one run (the ratio columns), not
runs on different days.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mammoscreen.core.memory import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO.parent / "shared" / "reference"))

# Reference checkpoints of models whose registry entry does not name one: model -> variant -> path
# relative to the reference directory (a checkpoint file, or a manifest for tools/make_checkpoint.py).
REFERENCE_CHECKPOINTS = {
    "gmic": {"1": "gmic/gmic_reference.p"},
    "nyu_glam": {"model_joint": "manifests/glam_model_joint.json"},
}

# Variants measured besides the default one, with the builder options they need ("patch_weights": the
# reference patch classifier). The image+heatmaps rows include the heatmap stage.
EXTRA_VARIANTS = {
    "nyu_model": {"image_heatmaps": ("patch_weights",)},
    "nyu_model_single": {"image_heatmaps": ("patch_weights",)},
}
PATCH_CLASSIFIER_MANIFEST = "patch_classifier_densenet121"

# Official timings from the reference READMEs (same 2-core machine, quiet): model -> (seconds, what).
# Keys: "model" or "model:variant" (the more specific one wins). The reference machine ran the identical
# DMV-CNN forward 1.5-1.8x faster than the 2-core development machine (docs/benchmarks.md), so compare
# these with care; the same-run ratios are the reliable ones.
OFFICIAL_SECONDS = {
    "nyu_glam": (2.14, "s/image, official forward, median (glam/README.md)"),
    "nyu_model:image_only": (0.49 / 4, "s/image, official forward 0.44-0.54 s per exam / 4 (nyu_model/README.md)"),
    "nyu_model:image_heatmaps": (112 / 4, "s/image, official heatmap stage (exam 0: 112 s) + forward "
                                          "(nyu_model/README.md)"),
    "nyu_model_single:image_only": (0.15, "s/image, official forward 0.13-0.17 (nyu_model_single/README.md)"),
    "nyu_model_single:image_heatmaps": (0.068 * 1371 / 4 + 0.135, "s/image, official patch stage at 0.068 s per "
                                        "patch for exam 0's patches + forward (nyu_model_single/README.md)"),
    "end2end": (0.96, "s/image, official tf_keras model.predict, warm (end2end/README.md)"),
}


# ----------------------------------------------------------------------------------------------
# Worker: one model in its own process
# ----------------------------------------------------------------------------------------------

def _find_modules(obj: Any, seen: set[int] | None = None) -> list:
    """Every torch module a predictor holds (attributes, lists, dicts), each once."""
    from torch import nn

    seen = set() if seen is None else seen
    found = []
    values = vars(obj).values() if hasattr(obj, "__dict__") and not isinstance(obj, nn.Module) else [obj]
    for value in values:
        if isinstance(value, nn.Module):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                found += _find_modules(item, seen) if isinstance(item, nn.Module) else []
        elif isinstance(value, dict):
            for item in value.values():
                found += _find_modules(item, seen) if isinstance(item, nn.Module) else []
    return found


class FlopCounter:
    """Multiply-accumulates of convolution and linear layers, counted with forward hooks.

    Counted: ``nn.Conv2d`` / ``nn.Linear`` and their subclasses, and any other leaf module holding a
    convolution-shaped (4-D: out, in/groups, kh, kw) or matrix-shaped (2-D: out, in) ``weight``
    parameter (e.g. end2end's Keras-style layers, which call ``F.conv2d`` / ``F.linear`` themselves).
    """

    def __init__(self, modules):
        from torch import nn

        self.macs = 0
        self.handles = []
        for module in modules:
            for m in module.modules():
                weight = m._parameters.get("weight") if not isinstance(m, nn.modules.batchnorm._NormBase) else None
                if weight is None:
                    continue
                if weight.dim() == 4:
                    self.handles.append(m.register_forward_hook(self._conv))
                elif weight.dim() == 2:
                    self.handles.append(m.register_forward_hook(self._linear))

    def _conv(self, m, inputs, output):
        self.macs += output.numel() * m.weight[0].numel()  # (in / groups) x kh x kw per output element

    def _linear(self, m, inputs, output):
        self.macs += output.numel() * m.weight.shape[1]

    def remove(self):
        for h in self.handles:
            h.remove()


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds() -> float:
    """CPU time of this process (all threads): less sensitive than wall time to other work on the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(task: dict) -> dict:
    """Measure one model (or the baseline) as described by ``task``; runs in a fresh process."""
    import torch

    torch.set_num_threads(task["threads"])
    if task["kind"] == "baseline":
        return _baseline(task)

    from mammoscreen.data.exams import iter_images, load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.models.factory import PredictorRequest, build_predictor
    from mammoscreen.models.interfaces import ExamPredictor
    from mammoscreen.models.registry import get_model_spec

    spec = get_model_spec(task["model"])
    baseline_rss = _rss_mb()
    t0 = time.perf_counter()
    predictor = build_predictor(PredictorRequest(spec.name, task["weights"], task["variant"], task["device"],
                                                 task.get("build_options", {})))
    build_seconds = time.perf_counter() - t0
    modules = _find_modules(predictor)
    exam_level = isinstance(predictor, ExamPredictor)
    forward = "predict_exam" if exam_level else "predict_batch"
    heatmaps = getattr(predictor, "heatmap_settings", None)
    patch_flops = 0.0
    if heatmaps is not None:
        # The patch classifier sits inside the predictor's heatmap settings; its fused network calls
        # oneDNN directly, so its FLOPs are counted once per patch here and multiplied by the patches run.
        modules.append(heatmaps.classifier.model)
        patch_flops = _fused_patch_flops(heatmaps.classifier.fused)
    params = {id(p): p.numel() for m in modules for p in m.parameters()}

    timers = {"prepare": 0.0, forward: 0.0, "heatmaps": 0.0}
    patches = [0]

    def timed(method, name, count_patches=False):
        def wrapper(*args):
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                timers[name] += time.perf_counter() - start
                if count_patches:
                    patches[0] += len(args[-1])  # the batch
        return wrapper

    predictor.prepare = timed(predictor.prepare, "prepare")
    setattr(predictor, forward, timed(getattr(predictor, forward), forward))
    if heatmaps is not None:
        classifier = heatmaps.classifier
        classifier.patch_probabilities = timed(classifier.patch_probabilities, "heatmaps")
        classifier.classify = timed(classifier.classify, "patch_batches", count_patches=True)
        timers["patch_batches"] = 0.0

    exams = load_exam_list(task["exam_list"])
    options = PredictOptions(device=task["device"], save_maps=task["with_maps"], progress=False)
    work = Path(task["work_dir"])
    if task.get("warmup", True):
        # Warm-up (allocator, oneDNN kernel selection), not timed: the first image, or the first exam.
        first = next(iter_images(exams))
        exam = exams[first.exam_index]
        warm = exam if exam_level else replace(
            exam, images={view: names[:1] if view == first.view else [] for view, names in exam.images.items()})
        run_prediction(predictor, [warm], task["images_dir"], work / "warmup", options)

    for key in timers:
        timers[key] = 0.0
    patches[0] = 0
    counter = FlopCounter(modules[:-1] if heatmaps is not None else modules)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    run = run_prediction(predictor, exams, task["images_dir"], work / "timed", options)
    total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    counter.remove()
    n_images = len(run.rows) * (len(predictor.required_views) if exam_level else 1)
    n_exams = len(run.rows) if exam_level else sum(1 for e in exams if any(e.images.values()))
    if n_images == 0:
        raise RuntimeError(f"{spec.name}: nothing was predicted ({[str(f) for f in run.failures]})")
    flops = 2 * counter.macs + patch_flops * patches[0]
    return {
        "model": spec.name, "variant": task["variant"] or spec.default_variant, "with_maps": task["with_maps"],
        "params": sum(params.values()), "gflops_per_image": flops / n_images / 1e9,
        "images": n_images, "exams": n_exams, "failed": len(run.failures),
        "seconds_per_image": total / n_images, "seconds_per_exam": total / n_exams,
        "cpu_seconds_per_image": cpu / n_images,
        "forward_seconds_per_image": timers[forward] / n_images,
        "prepare_seconds_per_image": timers["prepare"] / n_images,
        "heatmap_seconds_per_image": timers["heatmaps"] / n_images if heatmaps is not None else None,
        "classified_patches": patches[0] if heatmaps is not None else None,
        "build_seconds": build_seconds, "rss_before_mb": baseline_rss, "peak_rss_mb": peak_rss_mb(),
    }


def _fused_patch_flops(fused) -> float:
    """FLOPs of one patch through the fused DenseNet (every convolution through its module for the hooks)."""
    import torch

    counter = FlopCounter([fused])
    before, after = fused.stem_padding()
    size = fused.input_size + before + after
    fused.fused_relu, saved = False, fused.fused_relu
    try:
        with torch.inference_mode():
            fused(torch.zeros(1, 1, size, size, dtype=next(fused.parameters()).dtype))
    finally:
        fused.fused_relu = saved
        counter.remove()
    return 2.0 * counter.macs


def _baseline(task: dict) -> dict:
    """ResNet-34 on one 2944x1920 image (grey replicated to 3 channels, global pooling, 2 outputs)."""
    import torch
    from torch import nn

    from mammoscreen.models.layers.resnet import ResNetV1

    class ResNet34Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = ResNetV1(64, (3, 4, 6, 3), in_channels=3)
            self.fc = nn.Linear(512, 2)

        def forward(self, x):
            return torch.sigmoid(self.fc(self.trunk(x.expand(-1, 3, -1, -1)).mean(dim=(2, 3))))

    baseline_rss = _rss_mb()
    model = ResNet34Classifier().eval()
    x = torch.randn(1, 1, 2944, 1920)
    times = []
    with torch.inference_mode():
        counter = FlopCounter([model])
        model(x)  # warm-up, counting FLOPs
        counter.remove()
        cpu_start = _cpu_seconds()
        for _ in range(max(1, task["repeat"])):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
        cpu = (_cpu_seconds() - cpu_start) / max(1, task["repeat"])
    macs = counter.macs
    seconds = sorted(times)[len(times) // 2]
    return {"model": "ResNet-34 baseline", "variant": "2944x1920", "with_maps": False,
            "params": sum(p.numel() for p in model.parameters()), "gflops_per_image": 2 * macs / 1e9,
            "images": 1, "exams": None, "failed": 0, "seconds_per_image": seconds, "seconds_per_exam": None,
            "cpu_seconds_per_image": cpu,
            "forward_seconds_per_image": seconds, "prepare_seconds_per_image": 0.0, "build_seconds": 0.0,
            "rss_before_mb": baseline_rss, "peak_rss_mb": peak_rss_mb()}


# ----------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------

def _reference_weights(spec, reference: Path, build_dir: Path, variant: str | None = None
                       ) -> tuple[str, str] | None:
    """(variant, checkpoint path) of a reference checkpoint for ``spec``, materialised if needed.

    Bundled weights are used as they are; end2end's and frcnn_cad's reference files are rebuilt as
    ``bench_zoo2.py`` does. ``variant`` asks for that variant only.
    """
    wanted = variant or spec.default_variant
    record = spec.weights.get(wanted)
    if record is not None and record.bundled:
        return wanted, "official"
    if spec.name in ("end2end", "frcnn_cad") and variant in (None, spec.default_variant):
        zoo2 = _import_sibling("bench_zoo2")
        return spec.default_variant, str(zoo2.reference_weights(spec.name, reference, build_dir / spec.name))
    candidates: dict[str, str] = dict(REFERENCE_CHECKPOINTS.get(spec.name, {}))
    candidates.update(spec.extra.get("reference_checkpoints", {}))
    for name in spec.variants:
        manifest = reference / "manifests" / f"{spec.name}_{name}.json"
        if manifest.is_file():
            candidates.setdefault(name, str(manifest.relative_to(reference)))
    if variant is not None:
        candidates = {k: v for k, v in candidates.items() if k == variant}
    ordered = sorted(candidates.items(), key=lambda kv: kv[0] != spec.default_variant)
    for name, relative in ordered:
        source = reference / relative
        if not source.is_file():
            continue
        if source.suffix != ".json":
            return name, str(source)
        target = build_dir / spec.name / f"{name}.ckpt"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            sys.path.insert(0, str(reference / "tools"))
            from make_checkpoint import build_checkpoint

            build_checkpoint(source, target)
        return name, str(target)
    return None


def _import_sibling(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _patch_classifier(reference: Path, build_dir: Path) -> str | None:
    manifest = reference / "manifests" / f"{PATCH_CLASSIFIER_MANIFEST}.json"
    if not manifest.is_file():
        return None
    target = build_dir / "patch_classifier.p"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        sys.path.insert(0, str(reference / "tools"))
        from make_checkpoint import build_checkpoint

        build_checkpoint(manifest, target)
    return str(target)


def _preprocess(specs, images: Path, exam_list: Path, work: Path, workers: int) -> dict[str, tuple[str, str]]:
    """Crop once and compute centres per window set: model -> (images dir, exam list)."""
    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.workflows.pipeline import centers_file_name
    from mammoscreen.preprocess.centers import centers_dataset
    from mammoscreen.preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    cropped = work / "cropped"
    if any(s.needs_crop for s in specs):
        crop_dataset(images, load_exam_list(exam_list), cropped, workers=workers, progress=False)
    inputs = {}
    for spec in specs:
        if spec.center_windows is not None:
            path = work / centers_file_name(dict(spec.center_windows))
            if not path.is_file():
                centers_dataset(cropped, load_exam_list(cropped / CROPPED_EXAM_LIST), path,
                                windows=dict(spec.center_windows), workers=workers, progress=False)
            inputs[spec.name] = (str(cropped), str(path))
        elif spec.needs_crop:
            inputs[spec.name] = (str(cropped), str(cropped / CROPPED_EXAM_LIST))
        else:
            inputs[spec.name] = (str(images), str(exam_list))
    return inputs


def _subset_exam_list(exam_list: Path, n_images: int, target: Path) -> Path:
    """The first exams holding at least ``n_images`` images (whole exams, in order)."""
    from mammoscreen.data.exams import load_exam_list, save_exam_list

    exams, count = [], 0
    for exam in load_exam_list(exam_list):
        if count >= n_images:
            break
        exams.append(exam)
        count += sum(len(v) for v in exam.images.values())
    return save_exam_list(exams, target)


def _run_worker(task: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": task.get("model", "baseline"), "error": proc.stderr.strip().splitlines()[-1:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value, spec=".2f", none="-"):
    return none if value is None else format(value, spec)


def print_table(rows: list[dict], baseline: dict | None) -> None:
    header = ("model", "variant", "maps", "params (M)", "GFLOPs/img", "s/img", "fwd s/img", "CPU s/img", "s/exam",
              "peak RSS (MB)", "x params", "x FLOPs", "x CPU time", "x memory")
    lines = [header]
    notes = []
    for r in rows:
        if "error" in r or "skipped" in r:
            notes.append(f"{r['model']} {r.get('variant') or ''}: {r.get('skipped') or 'error: ' + str(r['error'])}")
            continue
        ratio = lambda key: _fmt(r[key] / baseline[key], ".2f") if baseline and baseline.get(key) else "-"  # noqa
        lines.append((r["model"], str(r["variant"]), "yes" if r["with_maps"] else "no", _fmt(r["params"] / 1e6),
                      _fmt(r["gflops_per_image"], ".1f"), _fmt(r["seconds_per_image"]),
                      _fmt(r["forward_seconds_per_image"]), _fmt(r["cpu_seconds_per_image"]),
                      _fmt(r["seconds_per_exam"]), _fmt(r["peak_rss_mb"], ".0f"), ratio("params"),
                      ratio("gflops_per_image"), ratio("cpu_seconds_per_image"), ratio("peak_rss_mb")))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
    print("s = wall-clock seconds, CPU s = process CPU time (all threads); ratios (x ...) are against the ResNet-34 "
          "baseline row of this run; FLOPs count conv/linear layers only. Breast-level models (nyu_model) "
          "count the four images of each exam; in image+heatmaps rows the forward (fwd s/img) includes the "
          "heatmap stage.")
    for r in rows:
        if r.get("heatmap_seconds_per_image") is not None:
            print(f"{r['model']} {r['variant']} (maps {'yes' if r['with_maps'] else 'no'}): heatmap stage "
                  f"{r['heatmap_seconds_per_image']:.2f} s/image, {r['classified_patches']} patches classified")
    for note in notes:
        print(note)
    for r in rows:
        official = OFFICIAL_SECONDS.get(f"{r.get('model')}:{r.get('variant')}", OFFICIAL_SECONDS.get(r.get("model")))
        if official and "forward_seconds_per_image" in r:
            seconds, what = official
            maps = "yes" if r["with_maps"] else "no"
            print(f"{r['model']} {r['variant']} (maps {maps}): forward {r['forward_seconds_per_image']:.2f} s/image "
                  f"here vs {seconds:.2f} {what}: official/here = {seconds / r['forward_seconds_per_image']:.2f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated models (default: every registered model)")
    parser.add_argument("--weights", action="append", default=[], metavar="[MODEL=]PATH")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                        help="reference data: images, exam list, checkpoints (default ../shared/reference)")
    parser.add_argument("--images", type=int, default=4, help="images to time per model (whole exams; default 4)")
    parser.add_argument("--with-maps", action="store_true",
                        help="also time each model with --save-maps (all maps computed, e.g. GLAM's local branch)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-repeat", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    from mammoscreen.models.registry import list_models
    from mammoscreen.cli.model_args import model_requests, split_model_names

    names = split_model_names([args.models]) if args.models else [s.name for s in list_models()]
    requests = {r.model: r for r in model_requests(names, args.weights)}
    specs = [s for s in list_models() if s.name in names]
    print(f"{len(specs)} models, {args.threads} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench_zoo_"))
    try:
        exam_list = _subset_exam_list(args.reference / "exam_list_before_cropping.pkl", args.images,
                                      work / "exams.pkl")
        inputs = _preprocess(specs, args.reference / "images", exam_list, work / "pre", workers=args.threads)
        rows = []
        for spec in specs:
            request = requests[spec.name]
            jobs = []  # (variant, weights, builder options)
            if request.weights is not None:
                jobs.append((request.variant, request.weights, {}))
            else:
                found = _reference_weights(spec, args.reference, work / "weights")
                if found is None:
                    rows.append({"model": spec.name, "variant": None, "skipped": "no weights"})
                    continue
                jobs.append((found[0], found[1], {}))
                for extra, needs in EXTRA_VARIANTS.get(spec.name, {}).items():
                    found = _reference_weights(spec, args.reference, work / "weights", variant=extra)
                    patch = _patch_classifier(args.reference, work / "weights") if "patch_weights" in needs else None
                    if found is None or ("patch_weights" in needs and patch is None):
                        rows.append({"model": spec.name, "variant": extra, "skipped": "no reference weights"})
                        continue
                    jobs.append((found[0], found[1], {"patch_weights": patch} if patch else {}))
            for variant, weights, build_options in jobs:
                for with_maps in ([False, True] if args.with_maps else [False]):
                    heavy = "patch_weights" in build_options  # the heatmap stage: its own warm-up is negligible
                    task = {"kind": "model", "model": spec.name, "variant": variant, "weights": str(weights),
                            "build_options": build_options, "warmup": not heavy,
                            "device": args.device, "threads": args.threads, "with_maps": with_maps,
                            "images_dir": inputs[spec.name][0], "exam_list": inputs[spec.name][1],
                            "work_dir": str(work / "runs" / f"{spec.name}_{variant}_{int(with_maps)}")}
                    row = _run_worker(task)
                    row.setdefault("variant", variant)
                    rows.append(row)
                    print(f"  measured {spec.name} {variant} (maps {'yes' if with_maps else 'no'})", flush=True)
        baseline = None
        if not args.no_baseline:
            baseline = _run_worker({"kind": "baseline", "threads": args.threads, "repeat": args.baseline_repeat})
            rows.append(baseline)
        print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
        print_table(rows, baseline if baseline and "error" not in baseline else None)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
