"""Smoke tests of the benchmark scripts: they run, and what they report is what they measured; bench_scale's engine
comparison with full-size GMIC on the reference checkpoint; options the batch sweep cannot use; the batch sweep's
prediction comparison and part timers."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mammoscreen.models.factory import PredictorRequest, build_predictor

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # runs a benchmark script end to end
def test_zoo_benchmark_measures_the_bundled_demo_model(reference_dir, tmp_path):
    out = tmp_path / "zoo.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_zoo.py"), "--models", "gmic_demo",
                           "--images", "1", "--no-baseline", "--threads", "1", "--reference", str(reference_dir),
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and "error" not in rows[0], rows
    row = rows[0]
    predictor = build_predictor(PredictorRequest("gmic_demo", "official", None, "cpu"))
    expected = sum(p.numel() for model in predictor.models for p in model.parameters())
    assert row["model"] == "gmic_demo" and row["params"] == expected
    assert row["images"] >= 1 and row["failed"] == 0
    assert row["gflops_per_image"] > 0 and row["seconds_per_image"] > 0 and row["peak_rss_mb"] > 0
    assert "gmic_demo" in done.stdout and "GFLOPs/img" in done.stdout


@pytest.mark.slow  # runs a benchmark script end to end
def test_batch_sweep_on_the_cpu_reports_every_batch_size_with_equal_predictions(tmp_path):
    out = tmp_path / "sweep.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--batch-sweep",
                           "--skip-engines", "--skip-forward", "--device", "cpu", "--sweep-models", "gmic_demo",
                           "--sweep-images", "2", "--batch-sizes", "1,2", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    sweep = json.loads(out.read_text())["batch_sweep"]
    assert sweep["device"] == "cpu" and sweep["skipped"] == {}
    assert list(sweep["models"]) == ["gmic_demo"]
    model = sweep["models"]["gmic_demo"]
    assert model["images"] == 2 and model["baseline_batch_size"] == 1
    rows = model["rows"]
    assert [row["batch_size"] for row in rows] == [1, 2]
    for row in rows:
        assert row["status"] == "ok" and row["images"] == 2 and row["images_per_s"] > 0
        assert set(row["parts_s"]) == {"decode", "preprocessing", "transfer", "forward"}
        assert all(seconds >= 0 for seconds in row["parts_s"].values())
        # each of the two images decoded and prepared once; one forward (and one transfer) per batch
        assert row["calls"] == {"decode": 2, "preprocessing": 2, "transfer": 2 // row["batch_size"],
                                "forward": 2 // row["batch_size"]}
        assert row["parts_s"]["forward"] > 0 and row["parts_s"]["decode"] > 0
        assert row["equal_to_baseline"] and row["max_abs_diff_to_baseline"] <= 1e-5
        assert row["gpu_utilisation_percent"] == "not available" and row["peak_gpu_memory_mb"] is None
    assert rows[0]["ratio_to_baseline"] == 1.0
    assert abs(rows[1]["ratio_to_baseline"] - rows[1]["images_per_s"] / rows[0]["images_per_s"]) < 1e-9
    assert sweep["utilisation_source"] == "not available"
    assert "gmic_demo" in done.stdout and "batch-size sweep on cpu" in done.stdout


@pytest.mark.slow  # a local Ray instance, full-size GMIC on four images four times (~25 s on 2 cores)
@pytest.mark.reference
# The reference checkpoint, like the official one, holds GMIC's unused shared_rep_filter (tests/models/gmic).
@pytest.mark.filterwarnings("ignore::mammoscreen.models.weights.UnexpectedKeysWarning")
def test_engine_comparison_with_full_size_gmic_runs_on_the_reference_checkpoint(reference_dir, monkeypatch):
    # the path of `bench_scale.py` behind docs/scale-out.md's GMIC figures: reference checkpoint rebuilt by
    # tools/build_reference_weights.py, full-size copies of the reference exam, local engine and Ray 1 and 2 workers
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    bench_scale = importlib.import_module("bench_scale")
    record = bench_scale.bench_engines(4, "gmic", reference_dir, rounds=1)
    assert set(record) == {"images", "model", "rounds", "local_s", "ray_startup_s", "threads_local",
                           "identical_predictions", "ray1_s", "ray2_s", "worker_start_s", "overhead_ray1_over_local",
                           "overhead_ray1_over_local_after_worker_start", "images_per_s", "speedup_2_over_1_workers"}
    assert record["images"] == 4 and record["rounds"] == 1  # one copy of the reference exam: its four views
    assert record["model"] == "gmic (reference checkpoint), full-size copies of the reference exam"
    # every Ray run wrote the local engine's predictions.csv byte for byte, with 1 and with 2 workers
    assert record["identical_predictions"] == {1: True, 2: True}
    assert record["threads_local"] == torch.get_num_threads()
    seconds = {engine: record[f"{engine}_s"] for engine in ("local", "ray1", "ray2")}
    assert all(0 < s < float("inf") for s in seconds.values()) and record["ray_startup_s"] > 0
    # the worker's start was recorded for the fastest run of each (not left at 0) and is part of that run
    assert set(record["worker_start_s"]) == {1, 2}
    assert all(0 < record["worker_start_s"][w] < seconds[f"ray{w}"] for w in (1, 2))
    rates = record["images_per_s"]
    assert set(rates) == {"local", "ray_1_worker", "ray_2_workers"} and all(rate > 0 for rate in rates.values())
    # the ratios docs/scale-out.md quotes, as it defines them, from the times measured in this run
    assert rates["local"] == pytest.approx(4 / seconds["local"]) and rates["ray_1_worker"] == pytest.approx(
        4 / seconds["ray1"]) and rates["ray_2_workers"] == pytest.approx(4 / seconds["ray2"])
    assert record["overhead_ray1_over_local"] == pytest.approx(rates["local"] / rates["ray_1_worker"])
    assert record["overhead_ray1_over_local_after_worker_start"] == pytest.approx(
        (seconds["ray1"] - record["worker_start_s"][1]) / seconds["local"])
    assert record["speedup_2_over_1_workers"] == pytest.approx(rates["ray_2_workers"] / rates["ray_1_worker"])


def test_the_docs_cite_only_result_files_that_are_in_the_repository():
    # benchmarks/results/ is git-ignored (a run must not dirty the tree): a result file the docs cite is either
    # committed (git add -f) or named as the output of the command that writes it again
    cited = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for match in re.finditer(r"(--json\s+)?benchmarks/results/([\w.-]+)", page.read_text()):
            cited.append((page.relative_to(REPO).as_posix(), match.group(2), bool(match.group(1))))
    assert ("docs/scale-out.md", "scale.json", False) in cited  # the search finds citations
    missing = [(page, name) for page, name, written in cited if not written and not (REPO / "benchmarks" / "results"
                                                                                       / name).is_file()]
    assert missing == []


def _bench_scale(*options: str) -> subprocess.CompletedProcess:
    # the engine comparison is left on: had the options been checked later, it would have started (and printed)
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_scale.py"), "--batch-sweep", "--images",
                           "1", "--engine-rounds", "1", "--skip-gmic", *options], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: --device cuda is valid here")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_batch_sweep_on_a_gpu_this_machine_lacks_stops_with_one_line_before_any_work(device):
    done = _bench_scale("--device", device)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"bench_scale.py: error: --device: device {device!r} requested but CUDA is not available "
                           "(no GPU, or a CPU-only PyTorch build); use --device cpu\n")


@pytest.mark.parametrize("option, value, message", [
    ("--batch-sizes", "1,x", "--batch-sizes must be positive integers separated by commas, got '1,x'"),
    ("--batch-sizes", "4,0", "--batch-sizes must be positive integers separated by commas, got '4,0'"),
    ("--sweep-models", "gmic_demo,nope", "--sweep-models: unknown model 'nope'; available: "),
])
def test_batch_sweep_options_that_cannot_work_stop_with_one_line_before_any_work(option, value, message):
    done = _bench_scale("--device", "cpu", option, value)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"bench_scale.py: error: {message}") and done.stderr.count("\n") == 1


def _batch_sweep_module():
    import importlib.util

    if "_batch_sweep" not in sys.modules:
        spec = importlib.util.spec_from_file_location("_batch_sweep", REPO / "benchmarks" / "_batch_sweep.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["_batch_sweep"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["_batch_sweep"]


def test_batch_sweep_compares_predictions_within_1e_5_and_text_exactly():
    compare = _batch_sweep_module().compare_predictions
    base = [{"image": "0_L-CC", "benign_pred": "0.25", "malignant_pred": "0.5"}]
    assert compare([{**base[0], "malignant_pred": "0.500009"}], base) == (True, pytest.approx(9e-6))
    assert compare([{**base[0], "malignant_pred": "0.50002"}], base)[0] is False
    assert compare([{**base[0], "image": "0_R-CC"}], base)[0] is False
    assert compare(base + base, base)[0] is False  # a row more
    assert compare([{"image": "0_L-CC", "benign_pred": "0.25"}], base)[0] is False  # a column less
    assert compare([{**base[0], "benign_pred": "nan"}], base)[0] is False


def test_batch_sweep_times_each_part_without_the_parts_it_calls(monkeypatch):
    sweep = _batch_sweep_module()
    clock = [0.0]
    monkeypatch.setattr(sweep.time, "perf_counter", lambda: clock[0])
    timers = sweep.PartTimers(torch.device("cpu"))

    def decode():
        clock[0] += 2.0

    def transfer():
        clock[0] += 1.0

    decode_timed, transfer_timed = timers.wrap("decode", decode), timers.wrap("transfer", transfer, gpu=True)

    def prepare():  # 3 s of its own around a 2-second decode
        clock[0] += 3.0
        decode_timed()

    def forward():  # 5 s of its own around two 1-second transfers
        transfer_timed()
        clock[0] += 5.0
        transfer_timed()

    timers.wrap("preprocessing", prepare)()
    timers.wrap("forward", forward, gpu=True)()
    assert timers.seconds == {"decode": 2.0, "preprocessing": 3.0, "transfer": 2.0, "forward": 5.0}
    assert timers.calls == {"decode": 1, "preprocessing": 1, "transfer": 2, "forward": 1}


@pytest.mark.slow  # prepares synthetic images and runs the engine five times
def test_batch_sweep_reports_a_batch_size_out_of_gpu_memory_and_goes_on(tmp_path, monkeypatch):
    sweep = _batch_sweep_module()
    from mammoscreen.models.registry import get_model_spec

    images, exams = sweep.synthetic_images(tmp_path / "set", 2).inputs_for(get_model_spec("gmic_demo"))
    predictor = build_predictor(PredictorRequest("gmic_demo", None, None, "cpu"))
    forward = type(predictor).predict_batch

    def predict_batch(self, prepared):  # as a GPU too small for two windows at once would
        if len(prepared) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, prepared)

    monkeypatch.setattr(type(predictor), "predict_batch", predict_batch)
    entry = sweep.sweep_model(predictor, sweep.first_images(exams, 2), images, tmp_path / "runs", [2, 1],
                              torch.device("cpu"))
    oom, ok = entry["rows"]
    assert oom == {"batch_size": 2, "status": "out of GPU memory"}
    assert ok["batch_size"] == 1 and ok["status"] == "ok" and ok["images"] == 2 and ok["images_per_s"] > 0
    assert entry["baseline_batch_size"] == 1 and ok["ratio_to_baseline"] == 1.0 and ok["equal_to_baseline"]
    # the timers removed: the predictor's own methods, the decoder and transfer functions back everywhere
    from mammoscreen.core import device
    from mammoscreen.data import images as image_files
    from mammoscreen.models.gmic import predictor as gmic
    from mammoscreen.preprocess import window_input

    assert "predict_batch" not in vars(predictor) and "prepare" not in vars(predictor)
    assert window_input.read_png is image_files.read_png and image_files.read_png.__name__ == "read_png"
    assert gmic.batch_to_device is device.batch_to_device and device.batch_to_device.__name__ == "batch_to_device"
