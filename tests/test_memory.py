"""mammoscreen.core.memory: the peak-memory reading the benchmarks report, and the allocator tuning every CPU run
gets (large blocks reused instead of mapped afresh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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


# 30 tensors of 96 MB, each written through and freed, as a forward pass does with its large activations, while
# another thread of the process is busy (Ray workers have dozens): the page faults of the last 10 (the first
# few settle where the heap's free space lies).
REUSE = """
import resource, sys, threading, time
import torch
from mammoscreen.core.memory import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else False
stop = threading.Event()
threading.Thread(target=lambda: [time.sleep(0.001) or [0] * 1000 for _ in iter(stop.is_set, True)],
                 daemon=True).start()
for i in range(30):
    if i == 20:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = torch.empty(96 * 1024 * 1024 // 4).fill_(1.0)  # torch's CPU tensors come from malloc
    del block
stop.set()
print(int(tuned), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k != "MAMMOSCREEN_KEEP_MALLOC"}
    done = subprocess.run([sys.executable, "-c", REUSE, mode], capture_output=True, text=True, check=True, env=env)
    tuned, faults = done.stdout.split()
    return tuned == "1", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the tuning is glibc's (Linux)")
def test_tuned_allocator_reuses_freed_large_blocks_instead_of_faulting_them_in_again():
    tuned, faults_tuned = _faults("tuned")
    if not tuned:
        pytest.skip("this C library is not glibc: no tuning to test")
    _, faults_default = _faults("default")
    pages = 96 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
    assert faults_default >= 9 * pages  # every block faulted in afresh (glibc maps blocks over 32 MB)
    assert faults_tuned <= pages // 2  # reused


def test_the_engine_tunes_the_allocator_for_cpu_predictors_only(monkeypatch):
    import torch

    from mammoscreen.engine import work
    from mammoscreen.engine.work import IMAGE_LEVEL, Job, UnitRunner

    calls = []
    monkeypatch.setattr(work, "keep_freed_memory", lambda: calls.append(1) or True)

    class Predictor:
        def __init__(self, device):
            self.device = torch.device(device)

        def configure_outputs(self, maps, figures):
            pass

    job = Job(level=IMAGE_LEVEL, images_dir=Path("."), exams=())
    UnitRunner(Predictor("cuda"), job)
    assert calls == []
    UnitRunner(Predictor("cpu"), job)
    assert calls == [1]
