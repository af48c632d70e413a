"""Allocator tuning for CPU inference on large images.

PyTorch on a CPU takes every activation tensor from the C library's ``malloc``. glibc serves blocks of
more than 32 MB (a batch of 32 patch-classifier activations, one DMV-CNN stem output) with a fresh
``mmap`` and returns them to the system when freed, so every forward pass touches new pages again: page
faults that cost more CPU time than the convolutions themselves on a virtual machine (measured in
``benchmarks/bench_heatmaps.py``). Asking glibc to serve such blocks from its heap and to keep freed
memory for reuse removes them. This is the ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` tuning
the PyTorch CPU performance guide recommends, applied from Python.

How many blocks glibc maps afresh depends on the process's history (its threshold moves with the blocks
freed, between 128 kB and 32 MB) and on its other threads: the local engine's process mostly reused its
blocks, a Ray worker (dozens of threads) did not. Full-size GMIC in a Ray worker took 8.2 M page faults
and 11 s of kernel time per 100 images, against 1.2 M and 2 s in the local engine's process
(docs/scale-out.md). The prediction engine therefore applies the tuning for every CPU run, in its own
process and in each worker (:class:`mammoscreen.engine.work.UnitRunner`).

The setting is process-wide and only changes when memory is returned to the system (the process keeps
its peak heap until it exits), never what is computed. Set ``MAMMOSCREEN_KEEP_MALLOC=1`` to leave the
allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # blocks up to 1 GiB from the heap; keep up to 1 GiB of freed memory


@functools.lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Tune glibc's malloc as described in the module docstring; True if it was done (once per process)."""
    if os.environ.get("MAMMOSCREEN_KEEP_MALLOC") or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
            return False  # not glibc (e.g. musl)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    except OSError:
        return False


def peak_rss_mb() -> float:
    """Peak resident memory of this process image in MB (``VmHWM``; ``ru_maxrss`` where /proc is absent).

    Not ``ru_maxrss`` on Linux: it is carried over from the parent through fork and exec, so a freshly
    started worker would report its launcher's peak when that was larger.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
