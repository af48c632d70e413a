"""Faults during a real ``mammoscreen run``: killed, disk full, read-only, a second run on the same folder.

Each scenario runs the command as a user would (a child process, the bundled ``gmic_demo`` model, two
synthetic exams, maps, figures and evaluation), injects one fault, checks that the run reports it, removes
the fault, re-runs, and requires the output directory to equal an uninterrupted run's file for file and
byte for byte - except what :data:`stageutils.VOLATILE_NOTE` lists (the lock file, the journals' file
metadata, the finishing time in ``run_summary.json``). Every run uses the same relative output path
(``out`` in its own working directory) so that recorded paths agree.

Disk full and read-only folders need root (a small tmpfs, a read-only bind mount: permissions do not stop
root); CI runs as root. Without root these are skipped, and the patched-writer tests of
``tests/test_stage_state.py`` cover the same code paths.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clirun import run_cli
from stageutils import VOLATILE_NOTE, demo_checkpoint, differences, output_tree, small_dataset

pytestmark = pytest.mark.slow  # seconds to minutes: a whole run, training steps, a browser or fault injection

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_args(data: Path, *extra: str) -> list[str]:
    return ["run", "--model", "gmic_demo", "--images", str(data / "images"), "--exam-list",
            str(data / "exam_list.pkl"), "--output-dir", "out", "--save-maps", "--visualize", "--bootstrap", "20",
            "--device", "cpu", "--workers", "1", "--quiet", *extra]


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """The command in its own process group (so that a kill takes its workers too)."""
    return subprocess.Popen([sys.executable, "-m", "mammoscreen", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def count_files(out: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(out)) if out.is_dir() else 0


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_as(baseline: dict, out: Path) -> None:
    found = differences(baseline, output_tree(out))
    assert not found, f"outputs differ from an uninterrupted run (ignoring: {VOLATILE_NOTE}): {found}"


@contextlib.contextmanager
def mounted(directory: Path, *options: str):
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", *options, str(directory)], check=True, capture_output=True)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def needs_mount():
    if not IS_ROOT:
        pytest.skip("mounting a small tmpfs or a read-only folder needs root (CI runs as root); the patched-writer "
                    "tests in tests/test_stage_state.py cover these paths")
    probe = Path(f"/tmp/mammoscreen-mount-probe-{os.getpid()}")
    try:
        with mounted(probe, "-t", "tmpfs", "-o", "size=64k", "tmpfs"):
            pass
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        pytest.skip(f"cannot mount a tmpfs here ({error}); CI can")
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


@pytest.fixture(scope="module")
def data(synthetic_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults_data")
    small_dataset(synthetic_dataset, root, exams=(0, 1))
    return root


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> Path:
    """The output directory of one uninterrupted run."""
    cwd = tmp_path_factory.mktemp("faults_baseline")
    result = run_cli(run_args(data), cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr
    return cwd / "out"


@pytest.fixture(scope="module")
def baseline(uninterrupted) -> dict:
    tree = output_tree(uninterrupted)
    assert "gmic_demo/visualization/1_R-MLO.png" in tree and "gmic_demo/evaluation/metrics.json" in tree
    return tree


def test_sigkill_at_random_points_then_a_rerun_ends_as_an_uninterrupted_run(data, baseline, tmp_path):
    total = len(baseline)
    rng = random.Random(11)  # fixed: the same kill points every time
    # One kill point in each third of the run's files (crop and centres; predictions and maps; figures and
    # evaluation), each in a re-run of the run killed before: resuming a resumed run.
    points = [rng.randint(max(1, total * i // 3), total * (i + 1) // 3 - 2) for i in range(3)]
    for point in points:
        child = start(run_args(data), tmp_path)
        deadline = time.monotonic() + 600
        while child.poll() is None and count_files(tmp_path / "out") < point and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL, f"the run ended before its kill point {point}"
    rerun = run_cli(run_args(data), cwd=tmp_path, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_as(baseline, tmp_path / "out")


def test_a_second_run_on_the_same_folder_is_refused_and_the_first_is_not_disturbed(data, baseline, tmp_path):
    def nudge(state):
        key = next(k for k, v in state.items() if v.ndim == 4)
        state[key] = state[key] * 1.5

    other = demo_checkpoint(tmp_path / "weights", "other", nudge)
    first = start(run_args(data), tmp_path)
    lock = tmp_path / "out" / ".mammoscreen.lock"
    deadline = time.monotonic() + 300
    while first.poll() is None and time.monotonic() < deadline and \
            not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
        time.sleep(0.01)
    assert first.poll() is None, "the first run ended before the second started"
    second = run_cli(run_args(data, "--weights", str(other)), cwd=tmp_path, timeout=300)
    still_running = first.poll() is None
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert still_running, "the first run was no longer running when the second was refused"
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert second.last_error_line == (f"mammoscreen run: error: out is in use by another mammoscreen process (PID "
                                      f"{first.pid}: mammoscreen {' '.join(run_args(data))}); wait for it to finish "
                                      "or choose another output directory")
    assert_same_as(baseline, tmp_path / "out")


def test_disk_full_in_the_crop_then_space_freed(data, baseline, tmp_path):
    needs_mount()
    cropped = tmp_path / "out" / "cropped_images"
    with mounted(cropped, "-t", "tmpfs", "-o", "size=700k", "tmpfs"):  # room for about three of the eight crops
        result = run_cli(run_args(data), cwd=tmp_path, timeout=600)
        assert result.returncode == 1, result.stderr
        assert "mammoscreen run: incomplete (crop)" in result.stderr and "Traceback" not in result.stderr
        failures = read_rows(tmp_path / "out" / "failures.csv")
        crop_failures = [f for f in failures if f["stage"] == "crop"]
        assert 0 < len(crop_failures) < 8 and all(f["kind"] == "io" for f in crop_failures)
        assert all("No space left on device" in f["reason"] for f in crop_failures)
        subprocess.run(["mount", "-o", "remount,size=64m", str(cropped)], check=True)  # space freed
        rerun = run_cli(run_args(data), cwd=tmp_path, timeout=600)
        assert rerun.returncode == 0, rerun.stderr
        assert_same_as(baseline, tmp_path / "out")


def test_a_read_only_folder_then_made_writable(data, baseline, tmp_path):
    needs_mount()
    figures = tmp_path / "out" / "gmic_demo" / "visualization"
    with mounted(figures, "--bind", str(figures)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(figures)], check=True)
        result = run_cli(run_args(data), cwd=tmp_path, timeout=600)
        assert result.returncode == 1, result.stderr
        assert "mammoscreen run: incomplete (gmic_demo)" in result.stderr and "Traceback" not in result.stderr
        failures = read_rows(tmp_path / "out" / "failures.csv")
        assert {f["stage"] for f in failures} == {"gmic_demo"} and len(failures) == 8
        assert all(f["kind"] == "io" and "Read-only file system" in f["reason"] for f in failures)
        subprocess.run(["mount", "-o", "remount,rw,bind", str(figures)], check=True)
        rerun = run_cli(run_args(data), cwd=tmp_path, timeout=600)
        assert rerun.returncode == 0, rerun.stderr
        assert_same_as(baseline, tmp_path / "out")


def test_a_disk_full_evaluation_is_a_failure_named_in_the_summary(data, uninterrupted, baseline, tmp_path):
    needs_mount()
    shutil.copytree(uninterrupted, tmp_path / "out")  # predictions up to date: only the evaluation runs
    evaluation = tmp_path / "out" / "gmic_demo" / "evaluation"
    shutil.rmtree(evaluation)
    with mounted(evaluation, "-t", "tmpfs", "-o", "size=8k", "tmpfs"):
        result = run_cli(run_args(data), cwd=tmp_path, timeout=600)
        assert result.returncode == 1, result.stderr
        assert "evaluate failed for gmic_demo: [Errno 28] No space left on device" in result.stderr
        assert "mammoscreen run: incomplete (evaluate)" in result.stderr and "Traceback" not in result.stderr
        (failure,) = read_rows(tmp_path / "out" / "failures.csv")
        assert (failure["stage"], failure["item"], failure["kind"]) == ("evaluate", "gmic_demo", "io")
    rerun = run_cli(run_args(data), cwd=tmp_path, timeout=600)  # the full disk is gone
    assert rerun.returncode == 0, rerun.stderr
    assert_same_as(baseline, tmp_path / "out")
