"""Scale-out benchmark: the Ray engine against the local engine, workers, the CPU GMIC forward, 100 000 images,
batch sizes on a GPU.

    python benchmarks/bench_scale.py [--images 100] [--gmic-images 100] [--engine-rounds 3]
                                     [--reference ../shared/reference] [--repeat 5] [--skip-engines] [--skip-gmic]
                                     [--skip-forward] [--compile]
                                     [--precision] [--batch-sweep [--device auto] [--sweep-models M,...]
                                     [--sweep-images 64] [--batch-sizes 1,2,4,8,16,32]] [--json FILE]

1. **Engine overhead and workers**, the prediction stage with maps, timed with the local engine (one
   process), the Ray engine with 1 worker and with 2 workers, on a local Ray instance started before the
   timings (its start-up is reported apart); after an untimed warm-up run (page cache), ``--engine-rounds``
   interleaved rounds of the three, the fastest run of each kept (a background blip hits one run, not the ratio):
   - ``gmic_demo``, the bundled small GMIC (0.03 s per image), on ``--images`` quarter-size synthetic
     mammograms - the worst case for the engine's per-call costs;
   - ``gmic``, the full-size GMIC with the reference checkpoint (official format, rebuilt by
     tools/build_reference_weights.py), on ``--gmic-images`` full-size copies of the reference exam - the
     realistic per-image cost the goal is about.
   Crop and centres are done once beforehand. Ratios: Ray 1 worker / local (the overhead; goal <= 1.10),
   also without the one-off start of the worker process (Python, torch, the model), and images/s of
   2 workers / 1 worker. Every Ray run's predictions.csv is checked byte-identical to the local one.
2. **The CPU GMIC forward** (full-size GMIC-ResNet-18, 2944x1920 window, the reference checkpoint when
   ``--reference`` has one, else seeded random weights): the model as the official code runs it against
   exact speed-ups - channels_last memory format (adopted by the GMIC predictor), BatchNorm folded into the
   preceding convolution, TorchScript freeze + optimize_for_inference of the global network, and with
   ``--compile`` ``torch.compile`` (its compile time reported apart) - each checked against the
   official-style outputs (1e-5). Interleaved rounds, the fastest of each kept.
3. With ``--precision``: gmic_demo's probabilities under bf16 and fp16 autocast on the CPU against fp32 (the
   deviation docs/scale-out.md quotes; on a GPU machine run it with the GPU to measure the GPU's).
4. With ``--batch-sweep`` (benchmarks/_batch_sweep.py): for each model (default: gmic_demo, and every model the
   ``--reference`` checkpoints cover), on ``--sweep-images`` images prepared once, the engine on ``--device`` at
   each of ``--batch-sizes``: images/s and its ratio to B=1, seconds in decode, preprocessing, transfer and
   forward, GPU utilisation and peak GPU memory on CUDA, a batch size that runs out of GPU memory reported as
   such, predictions.csv checked equal to B=1's within 1e-5. Exam-level models (nyu_model) at batch size 1 only.
   A device this machine lacks, a bad batch size or an unknown model stops the script before any work (exit 2).
5. **A projection for 100 000 images**: workers needed for a 1-hour turnaround, from seconds per image per
   worker - measured here for gmic_demo and GMIC (Ray, 1 worker, end to end), and for the other models
   from the zoo table of docs/benchmarks.md (a quiet run of bench_zoo.py on this machine type).

Timings move with the machine's load: the script prints ``uptime``'s load before and after; compare the
ratios of one run.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

DEFAULT_REFERENCE = Path(os.environ.get("MAMMOSCREEN_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
TARGET_IMAGES, TARGET_SECONDS = 100_000, 3600.0
# CPU seconds per image (one worker = one 2-thread process) from the zoo table in docs/benchmarks.md.
ZOO_SECONDS_PER_IMAGE = {"nyu_glam (maps)": 4.34, "nyu_glam": 0.52, "nyu_model (image only)": 0.26,
                         "nyu_model (image+heatmaps)": 13.47, "nyu_model_single": 0.39, "end2end": 1.29,
                         "frcnn_cad": 6.68}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------------------------------
# 1. Engines
# ------------------------------------------------------------------------------------------------------

def prepare_inputs(root: Path, n_images: int) -> tuple[Path, Path]:
    """Synthetic exams (4 images each), cropped and centred once by the local engine."""
    from mammoscreen.data.synth import SynthOptions, generate_exams
    from mammoscreen.engine import PredictOptions
    from mammoscreen.models.factory import PredictorRequest
    from mammoscreen.workflows.pipeline import run_pipeline

    generate_exams(math.ceil(n_images / 4), root / "synthetic", seed=0,
                   options=SynthOptions(scale=0.25, p_benign=0.5, p_malignant=0.5), progress=False)
    run_pipeline(root / "synthetic" / "images", root / "synthetic" / "exam_list.pkl", root / "prep",
                 [PredictorRequest("gmic_demo", "official")], workers=2,
                 options=PredictOptions(device="cpu", progress=False), log=lambda m: None)
    return root / "prep" / "cropped_images", next((root / "prep").glob("data_*.pkl"))


def prepare_reference_inputs(root: Path, reference: Path, n_images: int) -> tuple[Path, Path]:
    """Full-size inputs: the reference exam's four views copied under new names into ``n_images / 4`` exams
    (as the batch sweep makes them), cropped and centred (GMIC windows) once."""
    from _batch_sweep import reference_images

    from mammoscreen.models.registry import get_model_spec
    from mammoscreen.preprocess.centers import centers_dataset
    from mammoscreen.preprocess.crop import crop_dataset

    full = reference_images(root, reference, n_images)
    cropped, _ = crop_dataset(full.originals, full.exams, root / "full" / "cropped", workers=2, progress=False)
    centres = root / "full" / "centres.pkl"
    windows = dict(get_model_spec("gmic").center_windows or {})
    centers_dataset(root / "full" / "cropped", cropped, centres, windows=windows, workers=2, progress=False)
    return root / "full" / "cropped", centres


def time_prediction(images: Path, exam_list: Path, output: Path, executor=None, model: str = "gmic_demo",
                    weights: str | Path = "official") -> float:
    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.models.factory import PredictorRequest, build_predictor

    exams = load_exam_list(exam_list)
    start = time.perf_counter()
    predictor = build_predictor(PredictorRequest(model, weights, None, "cpu"))
    run = run_prediction(predictor, exams, images, output,
                         PredictOptions(device="cpu", save_maps=True, progress=False, executor=executor))
    elapsed = time.perf_counter() - start
    assert not run.failures, run.failures
    return elapsed


def bench_engines(n_images: int, model: str = "gmic_demo", reference: Path | None = None, rounds: int = 3) -> dict:
    """Local engine, then Ray with 1 and 2 workers, in ``rounds`` interleaved rounds, on the same inputs
    (gmic_demo: synthetic quarter-size images; gmic: full-size copies of the reference exam with the reference
    checkpoint)."""
    from mammoscreen.engine.ray import RayExecutor, RaySettings, ray_session

    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        root = Path(tmp)
        if model == "gmic_demo":
            images, exam_list = prepare_inputs(root, n_images)
            weights: str | Path = "official"
            label = "gmic_demo (bundled), quarter-size synthetic images"
        else:
            assert reference is not None
            spec = importlib.util.spec_from_file_location("build_reference_weights",
                                                          REPO / "tools" / "build_reference_weights.py")
            tool = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
            spec.loader.exec_module(tool)  # type: ignore[union-attr]
            weights = tool.build_all(reference, root / "weights", log=lambda m: None)
            images, exam_list = prepare_reference_inputs(root, reference, n_images)
            label = "gmic (reference checkpoint), full-size copies of the reference exam"
        n = sum(1 for _ in images.glob("*.png"))
        time_prediction(images, exam_list, root / "warm", model=model, weights=weights)  # page cache, allocator
        start = time.perf_counter()
        with ray_session(RaySettings(num_workers=2)):
            startup = time.perf_counter() - start
            # Interleaved rounds, the fastest run of each engine kept: a background blip then hits one run of
            # one engine, not the ratio. The idle Ray instance is up during the local runs too.
            local = math.inf
            times: dict[int, float] = {1: math.inf, 2: math.inf}
            identical: dict[int, bool] = {}
            worker_start: dict[int, float] = {}
            for _ in range(rounds):
                local = min(local, time_prediction(images, exam_list, root / "local", model=model, weights=weights))
                for workers in (1, 2):
                    # The same cores in total: 1 worker with the driver's threads (identical files), 2 workers
                    # with half as many each (on a real cluster every worker has its own cores).
                    threads = max(1, torch.get_num_threads() // workers)
                    out = root / f"ray{workers}"
                    shutil.rmtree(out, ignore_errors=True)
                    executor = RayExecutor(RaySettings(num_workers=workers, threads_per_worker=threads))
                    elapsed = time_prediction(images, exam_list, out, executor, model=model, weights=weights)
                    if elapsed < times[workers]:
                        times[workers] = elapsed
                        worker_start[workers] = executor.last_run.worker_start_s or 0.0
                    identical[workers] = identical.get(workers, True) and \
                        (out / "predictions.csv").read_bytes() == (root / "local" / "predictions.csv").read_bytes()
                shutil.rmtree(root / "local")
        assert identical[1], "Ray with 1 worker wrote other predictions than the local engine"
        return {"images": n, "model": label, "rounds": rounds, "local_s": local, "ray_startup_s": startup,
                "threads_local": torch.get_num_threads(), "identical_predictions": identical,
                "ray1_s": times[1], "ray2_s": times[2], "worker_start_s": worker_start,
                "overhead_ray1_over_local": times[1] / local,
                # what a long run pays: the same, without the one-off start of the worker process (import, model)
                "overhead_ray1_over_local_after_worker_start": (times[1] - worker_start[1]) / local,
                "images_per_s": {"local": n / local, "ray_1_worker": n / times[1], "ray_2_workers": n / times[2]},
                "speedup_2_over_1_workers": times[1] / times[2]}


def bench_precision(n_images: int) -> dict:
    """Largest |p - p_fp32| of gmic_demo's probabilities under bf16 / fp16 autocast on the CPU, and the time ratio."""
    import csv

    from mammoscreen.data.exams import load_exam_list
    from mammoscreen.engine import PredictOptions, run_prediction
    from mammoscreen.models.factory import PredictorRequest, build_predictor

    def values(path: Path) -> np.ndarray:
        with open(path, newline="") as f:
            return np.array([[float(r["benign_pred"]), float(r["malignant_pred"])] for r in csv.DictReader(f)])

    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        root = Path(tmp)
        images, exam_list = prepare_inputs(root, n_images)
        exams = load_exam_list(exam_list)
        out: dict = {}
        for precision in ("fp32", "bf16", "fp16"):
            predictor = build_predictor(PredictorRequest("gmic_demo", "official", None, "cpu"))
            start = time.perf_counter()
            run_prediction(predictor, exams, images, root / precision,
                           PredictOptions(device="cpu", progress=False, precision=precision))
            out[precision] = {"s": time.perf_counter() - start}
        reference = values(root / "fp32" / "predictions.csv")
        for precision in ("bf16", "fp16"):
            deviation = np.abs(values(root / precision / "predictions.csv") - reference)
            out[precision].update({"max_abs_deviation": float(deviation.max()),
                                   "mean_abs_deviation": float(deviation.mean()),
                                   "time_ratio_to_fp32": out[precision]["s"] / out["fp32"]["s"]})
    return {"model": "gmic_demo (bundled)", "device": "cpu", "images": n_images, **out}


# ------------------------------------------------------------------------------------------------------
# 2. The CPU GMIC forward
# ------------------------------------------------------------------------------------------------------

def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of GMIC with every BatchNorm that directly follows a bias-free convolution folded into it
    (eval mode: y = gamma (conv(x) - mean) / sqrt(var + eps) + beta is a convolution with new weights)."""
    from mammoscreen.models.layers.resnet import BasicBlock, PreActBasicBlock, ResNetV1

    model = copy.deepcopy(model).eval()

    def fold(conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> torch.nn.Conv2d:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = torch.nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                conv.dilation, conv.groups, bias=True)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale[:, None, None, None])
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        return fused

    for module in model.modules():
        if isinstance(module, BasicBlock):  # conv1 -> bn1, conv2 -> bn2
            module.conv1, module.bn1 = fold(module.conv1, module.bn1), torch.nn.Identity()
            module.conv2, module.bn2 = fold(module.conv2, module.bn2), torch.nn.Identity()
        elif isinstance(module, PreActBasicBlock):  # conv1 -> bn2 (bn1 acts on the block's input)
            module.conv1, module.bn2 = fold(module.conv1, module.bn2), torch.nn.Identity()
        elif isinstance(module, ResNetV1) and isinstance(getattr(module, "bn1", None), torch.nn.BatchNorm2d):
            module.conv1, module.bn1 = fold(module.conv1, module.bn1), torch.nn.Identity()
        elif isinstance(module, torch.nn.Sequential) and len(module) == 2 \
                and isinstance(module[0], torch.nn.Conv2d) and isinstance(module[1], torch.nn.BatchNorm2d):
            module[0], module[1] = fold(module[0], module[1]), torch.nn.Identity()  # projection shortcuts
    return model


def bench_forward(reference: Path, repeat: int, compile_graph: bool) -> dict:
    """Each variant once per round, ``repeat`` rounds interleaved, the fastest of each kept: on a shared machine
    a burst of load then hits every variant alike instead of whichever ran at that moment."""
    from mammoscreen.models.gmic import GMIC, GMICConfig, load_gmic

    checkpoint = reference / "gmic" / "gmic_reference.p"
    if checkpoint.is_file():
        model, weights = load_gmic(checkpoint, 0.02), "reference checkpoint (official format)"
    else:
        torch.manual_seed(0)
        model, weights = GMIC(GMICConfig()).eval(), "seeded random weights"
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 2944, 1920)).astype(np.float32))

    def outputs(m, inp):
        with torch.inference_mode():
            o = m(inp)
        return {"y_fusion": o.y_fusion, "saliency_map": o.saliency_map, "y_local": o.y_local, "y_global": o.y_global}

    def frozen(net: torch.nn.Module, inp: torch.Tensor) -> torch.nn.Module:
        """TorchScript: traced, frozen, optimize_for_inference (oneDNN conv fusions) - the global network only,
        the part without data-dependent control flow."""
        with torch.no_grad():
            return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, inp).eval()))

    def with_global(m: torch.nn.Module, make) -> torch.nn.Module:
        m = copy.deepcopy(m)
        m.ds_net = make(m.ds_net)
        return m

    cl = lambda m: copy.deepcopy(m).to(memory_format=torch.channels_last)  # noqa: E731
    x_cl = x.to(memory_format=torch.channels_last)
    variants = {"official-style": (model, x),
                "channels_last (adopted)": (cl(model), x_cl),
                "folded_bn": (fold_batchnorm(model), x),
                "folded_bn+channels_last": (cl(fold_batchnorm(model)), x_cl),
                "jit freeze+optimize_for_inference (global net)": (with_global(model, lambda n: frozen(n, x)), x),
                "channels_last + jit freeze+ofi (global net)": (with_global(cl(model), lambda n: frozen(n, x_cl)),
                                                               x_cl)}
    compile_s = None
    if compile_graph:
        compiled = with_global(model, torch.compile)
        start = time.perf_counter()
        outputs(compiled, x)  # the compilation happens here
        compile_s = time.perf_counter() - start
        variants["torch.compile (global net)"] = (compiled, x)
    best = {name: float("inf") for name in variants}
    results = {name: outputs(m, inp) for name, (m, inp) in variants.items()}  # warm-up, and the outputs
    for _ in range(repeat):
        for name, (m, inp) in variants.items():
            start = time.perf_counter()
            outputs(m, inp)
            best[name] = min(best[name], time.perf_counter() - start)
    base, base_s = results["official-style"], best["official-style"]
    rows = {}
    for name in variants:
        diff = max(float((results[name][k].float() - base[k].float()).abs().max()) for k in base)
        rows[name] = {"s": best[name], "speedup": base_s / best[name], "max_abs_diff": diff,
                      "within_1e-5": diff <= 1e-5}
    return {"weights": weights, "window": [2944, 1920], "threads": torch.get_num_threads(), "rounds": repeat,
            "compile_s": compile_s, "variants": rows}


# ------------------------------------------------------------------------------------------------------
# 3. Projection
# ------------------------------------------------------------------------------------------------------

def projection(seconds_per_image: dict[str, float]) -> dict:
    return {model: {"s_per_image_per_worker": s, "workers_for_1h": math.ceil(TARGET_IMAGES * s / TARGET_SECONDS)}
            for model, s in seconds_per_image.items()}


def batch_sweep_problem(args: argparse.Namespace) -> str | None:
    """What makes the batch sweep's options unusable here (a device this machine lacks, a batch size that is not
    a positive integer, an unknown model), or None; checked before any work starts."""
    from mammoscreen.core.device import resolve_device
    from mammoscreen.models.registry import get_model_spec

    try:
        resolve_device(args.device)
    except ValueError as error:
        return f"--device: {error}"
    sizes = args.batch_sizes.split(",")
    if not all(size.strip().isdigit() and int(size) > 0 for size in sizes):
        return f"--batch-sizes must be positive integers separated by commas, got {args.batch_sizes!r}"
    for name in (args.sweep_models.split(",") if args.sweep_models else []):
        try:
            get_model_spec(name)
        except KeyError as error:
            return f"--sweep-models: {error.args[0]}"
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds of the forward timings")
    parser.add_argument("--gmic-images", type=int, default=100,
                        help="full-size images for the engine comparison with GMIC (reference checkpoint)")
    parser.add_argument("--engine-rounds", type=int, default=3,
                        help="interleaved rounds of the engine timings (local, Ray 1 and 2 workers), fastest kept")
    parser.add_argument("--skip-engines", action="store_true")
    parser.add_argument("--skip-gmic", action="store_true", help="no engine comparison with full-size GMIC")
    parser.add_argument("--skip-forward", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--precision", action="store_true",
                        help="also measure bf16 / fp16 autocast against fp32 on the CPU (gmic_demo)")
    parser.add_argument("--batch-sweep", action="store_true",
                        help="also sweep batch sizes per model on --device (images/s, where the time goes, GPU use)")
    parser.add_argument("--device", default="auto", help="the batch sweep's device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--sweep-models", default=None,
                        help="comma-separated models of the batch sweep (default: gmic_demo and every model the "
                             "--reference checkpoints cover)")
    parser.add_argument("--sweep-images", type=int, default=64, help="images per model in the batch sweep")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32", help="the batch sweep's batch sizes")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.batch_sweep and (problem := batch_sweep_problem(args)):
        parser.exit(2, f"{parser.prog}: error: {problem}\n")  # argparse's form, on one line (no usage: it is long)
    results: dict = {"load_before": load(), "cpus": os.cpu_count(), "torch": torch.__version__}
    rates: dict[str, float] = {}
    if not args.skip_engines:
        runs = [("engines", args.images, "gmic_demo")]
        if not args.skip_gmic and (args.reference / "gmic").is_dir():
            runs.append(("engines_gmic", args.gmic_images, "gmic"))
        for key, n_images, model in runs:
            engines = results[key] = bench_engines(n_images, model, args.reference, rounds=args.engine_rounds)
            print(f"engines ({engines['images']} images of {engines['model']}, prediction with maps):")
            for name, rate in engines["images_per_s"].items():
                print(f"  {name:15s} {rate:6.2f} images/s")
            after_start = engines["overhead_ray1_over_local_after_worker_start"]
            print(f"  Ray 1 worker / local: {engines['overhead_ray1_over_local']:.3f}; without the worker's start "
                  f"({engines['worker_start_s'][1]:.1f} s): {after_start:.3f}"
                  f"  (Ray start-up {engines['ray_startup_s']:.1f} s, not included)")
            print(f"  2 workers / 1 worker: {engines['speedup_2_over_1_workers']:.2f}x images/s; predictions.csv "
                  f"byte-identical to the local engine's: {engines['identical_predictions']}")
            rates[model] = 1 / engines["images_per_s"]["ray_1_worker"]
    if args.precision:
        precision = results["precision"] = bench_precision(args.images)
        for name in ("bf16", "fp16"):
            row = precision[name]
            print(f"{name} autocast on the CPU (gmic_demo, {args.images} images): max |p - p_fp32| "
                  f"{row['max_abs_deviation']:.4f}, mean {row['mean_abs_deviation']:.5f}, "
                  f"time x{row['time_ratio_to_fp32']:.2f}")
    if args.batch_sweep:
        import _batch_sweep

        results["batch_sweep"] = _batch_sweep.run_sweep(
            args.sweep_models.split(",") if args.sweep_models else None,
            [int(b) for b in args.batch_sizes.split(",")], args.sweep_images, args.device, args.reference)
        print("\n".join(_batch_sweep.format_sweep(results["batch_sweep"])))
    if not args.skip_forward:
        forward = results["forward"] = bench_forward(args.reference, args.repeat, args.compile)
        print(f"GMIC forward on the CPU, 2944x1920, {forward['weights']}, {forward['threads']} threads, fastest of "
              f"{forward['rounds']} interleaved rounds" + (f" (torch.compile took {forward['compile_s']:.0f} s)"
                                                            if forward["compile_s"] else "") + ":")
        for name, row in forward["variants"].items():
            print(f"  {name:48s} {row['s']:6.2f} s  {row['speedup']:.2f}x  max |diff| {row['max_abs_diff']:.1e}")
        if "gmic" not in rates:  # no measured engine run of GMIC: its forward times the engine's overhead
            overhead = results.get("engines", {}).get("overhead_ray1_over_local", 1.0)
            rates["gmic (forward x engine overhead)"] = forward["variants"]["channels_last (adopted)"]["s"] * overhead
    rates.update({f"{k} [zoo table]": v for k, v in ZOO_SECONDS_PER_IMAGE.items()})
    results["projection_100k_images_1h"] = projection(rates)
    print(f"workers for {TARGET_IMAGES} images in 1 hour:")
    for model, row in results["projection_100k_images_1h"].items():
        print(f"  {model:40s} {row['s_per_image_per_worker']:6.2f} s/image  -> {row['workers_for_1h']} workers")
    results["load_after"] = load()
    print(f"load average before {results['load_before']}, after {results['load_after']} ({os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
