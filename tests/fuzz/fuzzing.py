"""What every fuzzed input must satisfy, and the shared strategies.

For each generated input the loaders under test must: return, or raise one of the documented error types
with a one-line message (never another exception: that would be a traceback for the user); run no code
(a canary file that a crafted ``__reduce__`` would create stays absent); and allocate a bounded amount of
memory (traced by tracemalloc, which sees Python objects and numpy arrays) within a hang guard.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import struct
import tracemalloc
from pathlib import Path
from typing import Callable, Iterator

from hypothesis import strategies as st

HANG_GUARD_SECONDS = 60
"""A call that takes longer than this is a hang (the inputs are at most a few kilobytes): not a timing
assertion, a bound that turns an endless loop into a failure instead of a stuck CI job."""


class Hang(Exception):
    pass


@contextlib.contextmanager
def hang_guard(seconds: int = HANG_GUARD_SECONDS) -> Iterator[None]:
    def alarm(signum, frame):  # noqa: ANN001 - signal handler signature
        raise Hang(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def data_ceiling(extra_bytes: int = 2 << 30) -> Iterator[None]:
    """Cap this process's data segment at its current size plus ``extra_bytes`` for the duration: an allocation
    the tracer cannot see (C libraries) becomes a MemoryError in the test instead of exhausting a shared machine."""
    with open("/proc/self/status") as f:
        current = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmData:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    ceiling = current + extra_bytes
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (ceiling, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def bounded_call(function: Callable[[], object], allowed: tuple[type[BaseException], ...],
                 max_bytes: int) -> tuple[object | None, BaseException | None, int]:
    """(result, allowed error, traced peak bytes) of ``function()``; any other exception propagates."""
    tracemalloc.start()
    try:
        with hang_guard(), data_ceiling():
            try:
                result, error = function(), None
            except allowed as e:
                result, error = None, e
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= max_bytes, f"traced peak {peak:,} bytes > {max_bytes:,}"
    if error is not None:
        message = str(error)
        assert message and "\n" not in message.strip(), repr(message)
        assert "Traceback" not in message
    return result, error, peak


def assert_no_canary(directory: Path) -> None:
    assert not any(directory.iterdir()), f"code ran: {sorted(p.name for p in directory.iterdir())}"


# ----------------------------------------------------------------------------------------------
# Strategies
# ----------------------------------------------------------------------------------------------

def hostile_names() -> st.SearchStrategy[str]:
    """Image names as an attacker writes them, mixed with ordinary ones."""
    return st.one_of(
        st.from_regex(r"[0-9]{1,4}_[LR]-(CC|MLO)", fullmatch=True),
        st.sampled_from(["../x", "../../etc/passwd", "/etc/passwd", "/tmp/x", "..", ".", "", "a/b", "a\\b",
                         "a\x00b", "a\nb", "x" * 300, "é" * 150, "~/x", "C:\\x", "${HOME}/x", " ../x"]),
        st.text(min_size=1, max_size=30),
    )


def ihdr_png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes, cut: int | None) -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return data if cut is None else data[:cut]
