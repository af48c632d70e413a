"""mammoscreen.memory: the peak-memory reading the benchmarks report."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from mammoscreen.memory import peak_rss_mb


def test_peak_memory_grows_with_touched_memory():
    before = peak_rss_mb()
    block = np.ones(64 * 1024 * 1024 // 8)  # 64 MB, every page written
    assert peak_rss_mb() >= before + 50 and block[-1] == 1.0


def test_a_started_process_reports_its_own_peak_not_its_launchers():
    block = np.ones(400 * 1024 * 1024 // 8)  # the launcher holds 400 MB (ru_maxrss would pass it on)
    child = subprocess.run([sys.executable, "-c", "from mammoscreen.memory import peak_rss_mb; print(peak_rss_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 300 and block[-1] == 1.0
