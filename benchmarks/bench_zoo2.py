"""Speed and memory of end2end and frcnn_cad against the official figures and a baseline of this run.

    python benchmarks/bench_zoo2.py                      # both models, reference weights, 4 images each
    python benchmarks/bench_zoo2.py --models frcnn_cad --images 2 --device cuda
    python benchmarks/bench_zoo2.py --weights end2end=/path/to/dir --weights frcnn_cad=/path/vgg16_frcnn_cad.caffemodel

Each model runs through the public prediction engine (``predict_images``: PNG reading, preprocessing,
forward, CSV) on the reference mammograms in its own process (so that the peak memory is its own),
after one untimed warm-up image. Reported per image: wall-clock and process CPU seconds, the share of
preprocessing (``prepare``, which runs in the loader thread) and of the forward pass, and the peak
resident memory. Without ``--weights`` the random-weight reference files are rebuilt from
../shared/reference with its tools (same structure and size as the released files).

In the same run a baseline is measured: a plain PyTorch ResNet-34 on one 2944x1920 image, as in the
zoo table (benchmarks/bench_zoo.py), to put the numbers of a loaded machine in proportion. The
official figures come from the reference READMEs (the same 2-core machine, quiet): end2end
``model.predict`` 0.96 s/image (tf_keras, oneDNN) plus ImageMagick preprocessing ~0.6 s/image;
frcnn_cad has no official CPU path (Caffe on a GPU only) - OpenCV's DNN module runs the same network in
5.5-6 s for 2100x(755-831) inputs and 9-11 s for 2100x1615.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mammoscreen.core.memory import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO.parent / "shared" / "reference"))

OFFICIAL = {
    "end2end": (0.96 + 4.6 / 8, "tf_keras model.predict 0.96 s + ImageMagick 0.58 s per image (end2end/README.md)"),
    "frcnn_cad": (None, "no CPU path in the official code; OpenCV DNN on the same net 5.5-11 s/image "
                        "(frcnn_cad/README.md)"),
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(task: dict) -> dict:
    import torch

    torch.set_num_threads(task["threads"])
    if task["kind"] == "baseline":
        return baseline(task)
    from mammoscreen.data.exams import Exam, load_exam_list
    from mammoscreen.engine import PredictOptions, predict_images
    from mammoscreen.models.factory import PredictorRequest, build_predictor
    from mammoscreen.models.registry import get_model_spec

    spec = get_model_spec(task["model"])
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    predictor = build_predictor(PredictorRequest(spec.name, task["weights"], None, task["device"]))
    build_seconds = time.perf_counter() - start
    timers = {"prepare": 0.0, "predict_batch": 0.0}
    for name in timers:
        method = getattr(predictor, name)

        def timed(*args, _method=method, _name=name):
            t0 = time.perf_counter()
            try:
                return _method(*args)
            finally:
                timers[_name] += time.perf_counter() - t0
        setattr(predictor, name, timed)

    exams = load_exam_list(task["exam_list"])
    options = PredictOptions(device=task["device"], progress=False, save_maps=True)
    work = Path(task["work_dir"])
    first = exams[0]
    warm_view = next(v for v, n in first.images.items() if n)
    warm = Exam({v: (n[:1] if v == warm_view else []) for v, n in first.images.items()}, first.horizontal_flip,
                first.cancer_label)
    predict_images(predictor, [warm], task["images_dir"], work / "warmup", options)
    timers.update(prepare=0.0, predict_batch=0.0)
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    run = predict_images(predictor, exams, task["images_dir"], work / "timed", options)
    total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    n = len(run.rows)
    if n == 0:
        raise RuntimeError(f"no image predicted: {[str(f) for f in run.failures]}")
    return {"model": spec.name, "images": n, "seconds_per_image": total / n,
            "cpu_seconds_per_image": cpu / n, "prepare_seconds_per_image": timers["prepare"] / n,
            "forward_seconds_per_image": timers["predict_batch"] / n, "build_seconds": build_seconds,
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before}


def baseline(task: dict) -> dict:
    """Plain ResNet-34 (torchvision layout) on one 2944x1920 image, median of ``repeat`` forwards."""
    import torch

    from mammoscreen.models.layers.resnet import ResNetV1

    model = ResNetV1(64, (3, 4, 6, 3), in_channels=3).eval()
    x = torch.randn(1, 3, 2944, 1920)
    times = []
    with torch.inference_mode():
        model(x)
        cpu_start = _cpu_seconds()
        for _ in range(task["repeat"]):
            t0 = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t0)
        cpu = (_cpu_seconds() - cpu_start) / task["repeat"]
    return {"model": "ResNet-34 baseline (2944x1920)", "images": 1, "seconds_per_image": sorted(times)[len(times) // 2],
            "cpu_seconds_per_image": cpu, "prepare_seconds_per_image": 0.0,
            "forward_seconds_per_image": sorted(times)[len(times) // 2], "build_seconds": 0.0,
            "peak_rss_mb": peak_rss_mb()}


def _import(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_weights(model: str, reference: Path, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if model == "end2end":
        target = directory / "ddsm_resnet50_s10_[512-512-1024]x2.h5"
        if not target.is_file():
            _import(reference / "tools" / "make_h5.py", "make_h5").build_h5(
                reference / "end2end" / "end2end_h5_skeleton.json.gz", target)
        return target
    target = directory / "vgg16_frcnn_cad.caffemodel"
    if not target.is_file():
        tool = _import(reference / "frcnn_cad" / "build_caffemodel.py", "build_caffemodel")
        target.write_bytes(tool.build(str(reference / "frcnn_cad" / "vgg16_frcnn_cad_test.prototxt")))
    return target


def subset(exam_list: Path, n_images: int, target: Path) -> Path:
    from mammoscreen.data.exams import Exam, load_exam_list, save_exam_list

    exams, count = [], 0
    for exam in load_exam_list(exam_list):
        images = {}
        for view, names in exam.images.items():
            take = names[:max(0, n_images - count)]
            count += len(take)
            images[view] = take
        if any(images.values()):
            exams.append(Exam(images, exam.horizontal_flip, exam.cancer_label))
    return save_exam_list(exams, target)


def run_worker(task: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": task.get("model", "baseline"), "error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="end2end,frcnn_cad")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--images", type=int, default=4, help="timed images per model (default 4)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    sys.path.insert(0, str(REPO / "src"))
    weights = dict(w.split("=", 1) for w in args.weights)
    work = Path(tempfile.mkdtemp(prefix="bench_zoo2_"))
    print(f"{args.threads} threads, device {args.device}, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    try:
        # the timed images (the first is also run once before, untimed, as a warm-up)
        exam_list = subset(args.reference / "exam_list_before_cropping.pkl", args.images, work / "exams.pkl")
        rows = []
        for model in [m.strip() for m in args.models.split(",") if m.strip()]:
            path = weights.get(model) or str(reference_weights(model, args.reference, work / "weights"))
            rows.append(run_worker({"kind": "model", "model": model, "weights": path, "device": args.device,
                                    "threads": args.threads, "images_dir": str(args.reference / "images"),
                                    "exam_list": str(exam_list), "work_dir": str(work / model)}))
            print(f"  measured {model}", flush=True)
        base = run_worker({"kind": "baseline", "threads": args.threads, "repeat": args.baseline_repeat})
        rows.append(base)
        print(f"load average {os.getloadavg()[0]:.1f} at the end\n")
        header = ("model", "images", "s/img", "CPU s/img", "prepare s/img", "forward s/img", "peak RSS MB",
                  "x baseline CPU")
        lines = [header]
        for r in rows:
            if "error" in r:
                lines.append((r["model"], f"error: {r['error']}") + ("",) * 6)
                continue
            ratio = (f"{r['cpu_seconds_per_image'] / base['cpu_seconds_per_image']:.2f}"
                     if "error" not in base else "-")
            lines.append((r["model"], str(r["images"]), f"{r['seconds_per_image']:.2f}",
                          f"{r['cpu_seconds_per_image']:.2f}", f"{r['prepare_seconds_per_image']:.2f}",
                          f"{r['forward_seconds_per_image']:.2f}", f"{r['peak_rss_mb']:.0f}", ratio))
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        for line in lines:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip())
        print("\nofficial figures (quiet machine):")
        for r in rows:
            if r["model"] in OFFICIAL and "error" not in r:
                seconds, what = OFFICIAL[r["model"]]
                ratio = f" -> x{r['seconds_per_image'] / seconds:.2f} (wall, this run)" if seconds else ""
                print(f"  {r['model']}: {what}{ratio}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
