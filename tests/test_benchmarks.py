"""Smoke test of the model-zoo benchmark: it runs, and what it reports is the model it measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mammoscreen.models.factory import PredictorRequest, build_predictor

REPO = Path(__file__).resolve().parents[1]


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
