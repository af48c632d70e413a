"""The batch-size sweep of ``bench_scale.py --batch-sweep``: images/s per model and batch size, and where the time goes.

For each model, on images prepared once (cropped and centred before any timing), the real engine
(``run_prediction`` with ``PredictOptions(batch_size=B, device=...)``) runs one untimed warm-up, then once per
batch size B. Per B it reports images/s and its ratio to B=1 in the same run, the seconds spent in

* decode: PNG reading (``data.images.read_png``, wherever a module imported it);
* preprocessing: the rest of the predictor's ``prepare`` (crop window, flips, standardisation);
* transfer: host batch to the device (``core.device.batch_to_device``; the DMV-CNN's ``to_batch``);
* forward: the predictor's batch forward (``predict_batch``, or ``predict_exam``) minus the transfer, outputs
  copied back to the host included;

the GPU's utilisation (mean of samples every ~100 ms during the timed run) and peak GPU memory on CUDA, and
whether its predictions.csv equals B=1's within 1e-5 (the baseline: the smallest batch size swept). Decode and
preprocessing run on the engine's background loader threads while the forward runs, so the parts overlap and
need not add up to the wall time. A batch size that runs out of GPU memory is reported as such and the sweep
goes on. Exam-level models (``nyu_model``) run one exam per forward: batch size 1 only.

The same code runs on the CPU and on CUDA; the CUDA-only lines are the ``torch.cuda`` calls guarded by
``cuda`` below (synchronising around the timed GPU calls, memory, utilisation).
"""

from __future__ import annotations

import csv
import dataclasses
import gc
import importlib.util
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

BATCH_SIZES = (1, 2, 4, 8, 16, 32)
TOLERANCE = 1e-5  # largest |difference| of a prediction between B and B=1
SAMPLE_S = 0.1  # GPU utilisation sampling period
NOT_AVAILABLE = "not available"
PARTS = ("decode", "preprocessing", "transfer", "forward")


# ------------------------------------------------------------------------------------------------------
# Inputs, prepared once
# ------------------------------------------------------------------------------------------------------

def default_models(reference: Path | None) -> list[str]:
    """gmic_demo (bundled weights) always; with the reference data, every registered model it has weights for."""
    from mammoscreen.models.registry import list_models

    if reference is None or not (reference / "manifests").is_dir():
        return ["gmic_demo"]
    return ["gmic_demo"] + [s.name for s in list_models() if s.name != "gmic_demo"]


def build_reference_weights(reference: Path, output: Path) -> Path:
    """The official-format checkpoints rebuilt from the reference data (tools/build_reference_weights.py)."""
    spec = importlib.util.spec_from_file_location("build_reference_weights",
                                                  REPO / "tools" / "build_reference_weights.py")
    tool = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(tool)  # type: ignore[union-attr]
    return tool.build_all(reference, output, log=lambda m: None)


def first_images(exams: Sequence[Any], n_images: int) -> list[Any]:
    """The exam list cut to its first ``n_images`` images (views in the official order)."""
    from mammoscreen.data.exams import VIEWS

    out, left = [], n_images
    for exam in exams:
        if left <= 0:
            break
        images, metadata = {}, {key: dict(per_view) for key, per_view in exam.image_metadata.items()}
        for view in VIEWS:
            keep = min(len(exam.images.get(view, [])), left)
            images[view] = list(exam.images.get(view, []))[:keep]
            left -= keep
            for per_view in metadata.values():
                if view in per_view:
                    per_view[view] = list(per_view[view])[:keep]
        out.append(dataclasses.replace(exam, images=images, image_metadata=metadata))
    return out


@dataclasses.dataclass
class ImageSet:
    """Source images and their exam list, cropped once, with the centres of each window set computed once."""

    label: str
    root: Path
    originals: Path
    exams: list[Any]
    cropped: Path | None = None
    cropped_exams: list[Any] | None = None
    centred: dict[tuple, list[Any]] = dataclasses.field(default_factory=dict)

    def inputs_for(self, spec: Any) -> tuple[Path, list[Any]]:
        """(images directory, exam list) that ``spec``'s model reads: originals, crops, or crops with its centres."""
        from mammoscreen.preprocess.centers import centers_dataset
        from mammoscreen.preprocess.crop import crop_dataset

        if not spec.needs_crop:
            return self.originals, self.exams
        if self.cropped is None:
            self.cropped = self.root / "cropped"
            self.cropped_exams, failures = crop_dataset(self.originals, self.exams, self.cropped, workers=2,
                                                        progress=False)
            assert not failures, failures
        if spec.center_windows is None:
            return self.cropped, list(self.cropped_exams or [])
        key = tuple(sorted(spec.center_windows.items()))
        if key not in self.centred:
            self.centred[key], failures = centers_dataset(self.cropped, self.cropped_exams or [],
                                                          windows=dict(spec.center_windows), workers=2,
                                                          progress=False)
            assert not failures, failures
        return self.cropped, self.centred[key]


def synthetic_images(root: Path, n_images: int) -> ImageSet:
    """Quarter-size synthetic mammograms (what the bundled gmic_demo was trained on), as bench_scale's engines part."""
    from mammoscreen.data.synth import SynthOptions, generate_exams

    exams = generate_exams(math.ceil(n_images / 4), root / "synthetic", seed=0,
                           options=SynthOptions(scale=0.25, p_benign=0.5, p_malignant=0.5), progress=False)
    return ImageSet("quarter-size synthetic images", root, root / "synthetic" / "images", list(exams))


def reference_images(root: Path, reference: Path, n_images: int) -> ImageSet:
    """Full-size images: the reference exam's four views copied under new names into ``n_images / 4`` exams."""
    from mammoscreen.data.exams import load_exam_list

    with open(reference / "exam_list_before_cropping.pkl", "rb") as f:  # the repository's own reference data
        exam = {k: v for k, v in pickle.load(f)[0].items() if not k.endswith("_seg")}
    images = root / "full" / "images"
    images.mkdir(parents=True)
    exams = []
    for e in range(math.ceil(n_images / 4)):
        copy_ = dict(exam)
        for view in ("L-CC", "R-CC", "L-MLO", "R-MLO"):
            shutil.copyfile(reference / "images" / f"{exam[view][0]}.png", images / f"{e}_{view}.png")
            copy_[view] = [f"{e}_{view}"]
        exams.append(copy_)
    (root / "full" / "exam_list.pkl").write_bytes(pickle.dumps(exams, protocol=4))
    return ImageSet("full-size copies of the reference exam", root, images,
                    load_exam_list(root / "full" / "exam_list.pkl"))


# ------------------------------------------------------------------------------------------------------
# Where the time goes
# ------------------------------------------------------------------------------------------------------

class PartTimers:
    """Seconds per part, each call's own time (a part called inside another is taken out of the outer one's),
    summed over every thread. On CUDA the timed GPU calls are bracketed by ``torch.cuda.synchronize()``, so
    that their time is the GPU's work, not the launch of asynchronous kernels."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.calls = dict.fromkeys(PARTS, 0)
        self.out_of_memory = False
        self._lock = threading.Lock()
        self._local = threading.local()

    def reset(self) -> None:
        self.seconds, self.calls, self.out_of_memory = dict.fromkeys(PARTS, 0.0), dict.fromkeys(PARTS, 0), False

    def wrap(self, part: str, function: Callable, gpu: bool = False) -> Callable:
        sync = gpu and self.cuda

        def timed(*args: Any, **kwargs: Any) -> Any:
            inner = self._local.__dict__.setdefault("inner", [])  # this thread's open calls: time of nested parts
            if sync:
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            inner.append(0.0)
            try:
                return function(*args, **kwargs)
            except torch.cuda.OutOfMemoryError:
                self.out_of_memory = True
                raise
            finally:
                if sync:
                    torch.cuda.synchronize(self.device)
                elapsed = time.perf_counter() - start
                nested = inner.pop()
                if inner:
                    inner[-1] += elapsed
                with self._lock:
                    self.seconds[part] += elapsed - nested
                    self.calls[part] += 1

        return timed

    @contextmanager
    def installed(self, predictor: Any) -> Iterator[None]:
        """The timers wrapped around the decoder and transfer functions (in every mammoscreen module that imported
        them) and around ``predictor``'s prepare and forward; everything restored on exit."""
        from mammoscreen.core import device as core_device
        from mammoscreen.data import images
        from mammoscreen.models.nyu_model import predictor as dmv

        wrappers = {id(f): (f, self.wrap(part, f, gpu=part == "transfer"))  # by identity: the very functions
                    for f, part in ((images.read_png, "decode"), (core_device.batch_to_device, "transfer"),
                                    (dmv.to_batch, "transfer"))}
        patched = []
        for name, module in list(sys.modules.items()):
            if name == "mammoscreen" or name.startswith("mammoscreen."):
                for attribute, value in list(vars(module).items()):
                    if id(value) in wrappers and wrappers[id(value)][0] is value:
                        setattr(module, attribute, wrappers[id(value)][1])
                        patched.append((module, attribute, value))
        forward = "predict_exam" if hasattr(predictor, "predict_exam") else "predict_batch"
        predictor.prepare = self.wrap("preprocessing", predictor.prepare)
        setattr(predictor, forward, self.wrap("forward", getattr(predictor, forward), gpu=True))
        try:
            yield
        finally:
            for module, attribute, value in patched:
                setattr(module, attribute, value)
            del predictor.prepare
            delattr(predictor, forward)


class GpuSampler:
    """The GPU's utilisation (%) sampled every ``SAMPLE_S`` seconds in a thread: ``torch.cuda.utilization``
    (needs pynvml), else ``nvidia-smi``; on the CPU, or with neither, not available."""

    def __init__(self, device: torch.device):
        self.device, self.samples = device, []  # type: ignore[var-annotated]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.source = self._source() if device.type == "cuda" else None

    def _source(self) -> Callable[[], float] | None:
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        try:
            torch.cuda.utilization(index)
            return lambda: float(torch.cuda.utilization(index))
        except Exception:  # no pynvml, or NVML refused
            pass
        if shutil.which("nvidia-smi") is None:
            return None
        # nvidia-smi numbers every GPU of the machine, torch only the visible ones
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
        smi_index = visible[index].strip() if index < len(visible) and visible[index].strip() else str(index)
        command = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", smi_index]

        def smi() -> float:
            return float(subprocess.run(command, capture_output=True, text=True, timeout=5, check=True).stdout)

        try:
            smi()
        except Exception:
            return None
        return smi

    @property
    def name(self) -> str:
        if self.source is None:
            return NOT_AVAILABLE
        return "nvidia-smi" if getattr(self.source, "__name__", "") == "smi" else "torch.cuda.utilization (pynvml)"

    def __enter__(self) -> GpuSampler:
        self.samples = []
        if self.source is not None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gpu-utilisation", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self.source is not None
        while not self._stop.wait(SAMPLE_S):
            try:
                self.samples.append(self.source())
            except Exception:
                pass

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def mean(self) -> float | str:
        return sum(self.samples) / len(self.samples) if self.samples else NOT_AVAILABLE


# ------------------------------------------------------------------------------------------------------
# The sweep
# ------------------------------------------------------------------------------------------------------

def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def compare_predictions(rows: list[dict[str, str]], baseline: list[dict[str, str]]) -> tuple[bool, float]:
    """(every row equal to the baseline's: text fields exactly, numbers within ``TOLERANCE``; largest |difference|)."""
    if len(rows) != len(baseline) or any(a.keys() != b.keys() for a, b in zip(rows, baseline)):
        return False, math.inf
    largest, equal = 0.0, True
    for row, base in zip(rows, baseline):
        for key, value in row.items():
            try:
                difference = abs(float(value) - float(base[key]))
            except ValueError:
                equal = equal and value == base[key]
                continue
            if math.isnan(difference):
                difference = 0.0 if value == base[key] else math.inf
            largest = max(largest, difference)
    return equal and largest <= TOLERANCE, largest


def sweep_model(predictor: Any, exams: list[Any], images: Path, out: Path, batch_sizes: Sequence[int],
                device: torch.device) -> dict:
    """One model: an untimed warm-up, then one timed run per batch size (see the module's docstring)."""
    from mammoscreen.engine import PredictOptions, run_prediction

    cuda = device.type == "cuda"
    exam_level = predictor.spec.output_level == "breast"
    sizes = [1] if exam_level else list(batch_sizes)
    n_images = sum(len(exam.image_names()) for exam in exams)
    timers, sampler = PartTimers(device), GpuSampler(device)

    def run(batch_size: int, folder: Path) -> Any:
        return run_prediction(predictor, exams, images, folder,
                              PredictOptions(device=str(device), batch_size=batch_size, progress=False))

    start = time.perf_counter()
    run(sizes[0], out / "warm-up")  # untimed: page cache, allocator, CUDA context and kernels
    warm_up_s = time.perf_counter() - start
    rows: list[dict] = []
    baseline: list[dict[str, str]] | None = None
    for batch_size in sizes:
        timers.reset()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        row: dict[str, Any] = {"batch_size": batch_size}
        try:
            with timers.installed(predictor), sampler:
                start = time.perf_counter()
                result = run(batch_size, out / f"b{batch_size}")
                seconds = time.perf_counter() - start
        except torch.cuda.OutOfMemoryError:
            timers.out_of_memory = True
        except Exception as error:  # reported in its row; the other batch sizes still run
            rows.append({**row, "status": f"error: {type(error).__name__}: {error}"})
            continue
        if timers.out_of_memory:  # the engine retries a failing batch image by image: the size did not fit
            rows.append({**row, "status": "out of GPU memory"})
            if cuda:
                torch.cuda.empty_cache()
            continue
        predictions = read_predictions(result.csv_path)
        if baseline is None:
            baseline = predictions
        equal, difference = compare_predictions(predictions, baseline)
        row.update({"status": "ok" if not result.failures else f"{len(result.failures)} failed",
                    "images": n_images, "seconds": seconds, "images_per_s": n_images / seconds,
                    "parts_s": dict(timers.seconds), "calls": dict(timers.calls),
                    "gpu_utilisation_percent": sampler.mean(), "utilisation_samples": len(sampler.samples),
                    "peak_gpu_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None,
                    "equal_to_baseline": equal, "max_abs_diff_to_baseline": difference})
        rows.append(row)
    done = [r for r in rows if "images_per_s" in r]
    for row in done:
        row["ratio_to_baseline"] = row["images_per_s"] / done[0]["images_per_s"]
    return {"level": "exam" if exam_level else "image", "images": n_images, "warm_up_s": warm_up_s,
            "baseline_batch_size": done[0]["batch_size"] if done else None,
            "note": "exam-level: one exam per forward, batch size 1 only" if exam_level else "", "rows": rows}


def run_sweep(models: Sequence[str] | None, batch_sizes: Sequence[int] = BATCH_SIZES, n_images: int = 64,
              device: str = "auto", reference: Path | None = None) -> dict:
    """The sweep over ``models`` (None: :func:`default_models`), on ``n_images`` images each."""
    from mammoscreen.core.device import resolve_device
    from mammoscreen.models.factory import PredictorRequest, build_predictor
    from mammoscreen.models.registry import get_model_spec

    torch_device = resolve_device(device)
    batch_sizes = sorted(set(batch_sizes))
    names = list(models) if models else default_models(reference)
    result: dict[str, Any] = {
        "device": str(torch_device), "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else "cpu",
        "batch_sizes": batch_sizes, "images_requested": n_images,
        "utilisation_source": GpuSampler(torch_device).name, "load_before": _load(), "models": {}, "skipped": {}}
    with tempfile.TemporaryDirectory(prefix="batch_sweep_") as tmp:
        root = Path(tmp)
        weights_dir: Path | None = None
        sets: dict[str, ImageSet] = {}
        for name in names:
            spec = get_model_spec(name)
            try:
                if name == "gmic_demo":
                    weights: str | Path | None = None  # bundled
                    if "synthetic" not in sets:
                        sets["synthetic"] = synthetic_images(root / "synthetic_set", n_images)
                    image_set = sets["synthetic"]
                else:
                    if reference is None or not (reference / "manifests").is_dir():
                        result["skipped"][name] = "no weights here (only gmic_demo's are bundled; pass --reference)"
                        continue
                    if weights_dir is None:
                        weights_dir = build_reference_weights(reference, root / "weights")
                    if "reference" not in sets:
                        sets["reference"] = reference_images(root / "reference_set", reference, n_images)
                    weights, image_set = weights_dir, sets["reference"]
                images, exams = image_set.inputs_for(spec)
                exams = exams[:math.ceil(n_images / 4)] if spec.output_level == "breast" else \
                    first_images(exams, n_images)
                start = time.perf_counter()
                predictor = build_predictor(PredictorRequest(name, weights, None, str(torch_device)))
                build_s = time.perf_counter() - start
            except Exception as error:  # a model without usable weights or inputs here: say so, go on
                result["skipped"][name] = f"{type(error).__name__}: {error}"
                continue
            entry: dict | None = None
            try:
                entry = sweep_model(predictor, exams, images, root / name / "runs", batch_sizes, torch_device)
            except Exception as error:  # e.g. its warm-up failed: the other models still run
                result["skipped"][name] = f"failed: {type(error).__name__}: {error}"
            finally:
                del predictor  # before the next model is built: one model in (GPU) memory at a time
                gc.collect()
                if torch_device.type == "cuda":
                    torch.cuda.empty_cache()
            if entry is not None:
                result["models"][name] = {"inputs": image_set.label,
                                          "weights": "bundled" if weights is None else "reference checkpoint "
                                          "(official format, tools/build_reference_weights.py)",
                                          "build_s": build_s, **entry}
    result["load_after"] = _load()
    return result


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def format_sweep(result: dict) -> list[str]:
    """The sweep as printed lines: one table per model, per-part times in ms per image."""
    lines = [f"batch-size sweep on {result['device']} ({result['device_name']}, {result['threads']} threads; "
             f"GPU utilisation from {result['utilisation_source']}; load {result['load_before']} -> "
             f"{result['load_after']}):"]
    for name, entry in result["models"].items():
        lines.append(f"  {name}: {entry['images']} images ({entry['inputs']}), weights {entry['weights']}"
                     + (f"; {entry['note']}" if entry["note"] else ""))
        lines.append("      B  images/s  x B=" + str(entry["baseline_batch_size"]) + "  ms/image: decode  preproc"
                     "  transfer  forward   GPU util  peak MB  equal (max |diff|)")
        for row in entry["rows"]:
            if "images_per_s" not in row:
                lines.append(f"    {row['batch_size']:3d}  {row['status']}")
                continue
            per_image = {part: 1000 * s / row["images"] for part, s in row["parts_s"].items()}
            util = row["gpu_utilisation_percent"]
            util_text = f"{util:6.0f} %" if isinstance(util, float) else "   n/a  "
            memory = f"{row['peak_gpu_memory_mb']:7.0f}" if row["peak_gpu_memory_mb"] is not None else "    n/a"
            lines.append(f"    {row['batch_size']:3d}  {row['images_per_s']:8.2f}  {row['ratio_to_baseline']:6.2f}"
                         f"  {per_image['decode']:13.1f}  {per_image['preprocessing']:7.1f}  "
                         f"{per_image['transfer']:8.1f}  {per_image['forward']:7.1f}   {util_text}  {memory}  "
                         f"{row['equal_to_baseline']} ({row['max_abs_diff_to_baseline']:.1e})"
                         + ("" if row["status"] == "ok" else f"  [{row['status']}]")
                         + (f"  [B > {row['images']} images: one batch]" if row["batch_size"] > row["images"] else ""))
    for name, reason in result["skipped"].items():
        lines.append(f"  {name}: skipped - {reason}")
    return lines
