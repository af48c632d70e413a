"""Running the ``mammoscreen`` command as a user would, in a child process, and checking how it ended.

Used by the robustness tests (``tests/fuzz``, fault-injection tests): a crafted input must not run code,
write outside the output directory, take unbounded memory or time, or end in a traceback. Import as
``from clirun import run_cli, ...`` (like ``testutils``).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# The child runs the real entry point in-process and reports its own peak memory on exit
# (VmHWM of the child itself: ru_maxrss would be inherited from this test process).
_CHILD = """
import atexit, json, os, sys
from mammoscreen.core.memory import peak_rss_mb
def _report():
    with open(os.environ["MAMMOSCREEN_TEST_PEAK_FILE"], "w") as f:
        json.dump({"peak_rss_mb": peak_rss_mb()}, f)
atexit.register(_report)
from mammoscreen.cli import main
sys.exit(main(sys.argv[1:]))
"""

# A hard ceiling so that a decompression bomb cannot take the test machine down with it; the tests
# assert a much lower peak than this.
DEFAULT_DATA_LIMIT_MB = 6144


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float | None
    timed_out: bool = False

    @property
    def last_error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def run_cli(args: Sequence[str], *, cwd: Path | str | None = None, timeout: float = 120,
            data_limit_mb: int = DEFAULT_DATA_LIMIT_MB, env: dict[str, str] | None = None) -> CliResult:
    """Run ``mammoscreen ARGS`` in a fresh interpreter; never raises on a non-zero exit or a timeout."""
    with tempfile.TemporaryDirectory() as scratch:
        peak_file = Path(scratch) / "peak.json"
        child_env = {**os.environ, **(env or {}), "MAMMOSCREEN_TEST_PEAK_FILE": str(peak_file),
                     "PYTHONDONTWRITEBYTECODE": "1"}

        def limit_memory() -> None:
            limit = data_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        try:
            done = subprocess.run([sys.executable, "-c", _CHILD, *map(str, args)], cwd=cwd, env=child_env,
                                  capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory)
        except subprocess.TimeoutExpired as expired:
            return CliResult(-9, _text(expired.stdout), _text(expired.stderr), None, timed_out=True)
        peak = json.loads(peak_file.read_text())["peak_rss_mb"] if peak_file.is_file() else None
        return CliResult(done.returncode, done.stdout, done.stderr, peak)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def assert_clean_error(result: CliResult, command: str, *, mentions: Sequence[str] = ()) -> None:
    """The command failed the way a user should see it: exit status 1 or 2, no traceback, and a last line
    ``mammoscreen COMMAND: error: ...`` that mentions every string in ``mentions``."""
    assert not result.timed_out, f"mammoscreen {command} did not finish in time"
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr
    assert result.returncode in (1, 2), (result.returncode, result.stderr)
    line = result.last_error_line
    assert line.startswith(f"mammoscreen {command}: error: "), result.stderr
    for text in mentions:
        assert text in line, (text, line)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and symlink under ``root``: compare two snapshots to
    prove that nothing outside an output directory was written."""
    snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath, name)
            info = path.lstat()
            snapshot[str(path.relative_to(root))] = (info.st_size, info.st_mtime_ns)
    return snapshot


def changed_outside(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]],
                    allowed: Sequence[str]) -> list[str]:
    """Paths added, removed or modified between two snapshots, other than those under an allowed prefix."""
    def outside(path: str) -> bool:
        return not any(path == prefix or path.startswith(prefix.rstrip("/") + "/") for prefix in allowed)

    keys = set(before) | set(after)
    return sorted(key for key in keys if before.get(key) != after.get(key) and outside(key))
