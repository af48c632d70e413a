"""mammoscreen.core.memory: the peak-memory reading the benchmarks report."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from mammoscreen.core.memory import peak_rss_mb

# Run in a fresh process: the test process's own peak is whatever earlier tests reached.
CHILD = """
import numpy as np
from mammoscreen.core.memory import peak_rss_mb
before = peak_rss_mb()
block = np.ones(64 * 1024 * 1024 // 8)  # 64 MB, every page written
print(before, peak_rss_mb(), block[-1])
"""


def test_peak_memory_grows_with_touched_memory():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    before, after, last = (float(v) for v in done.stdout.split())
    assert after >= before + 50 and last == 1.0


def test_a_started_process_reports_its_own_peak_not_its_launchers():
    block = np.ones(400 * 1024 * 1024 // 8)  # the launcher holds 400 MB (ru_maxrss would pass it on)
    code = "from mammoscreen.core.memory import peak_rss_mb; print(peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(child.stdout) < 300 and block[-1] == 1.0
    assert peak_rss_mb() >= 400  # the launcher's own reading does include it
