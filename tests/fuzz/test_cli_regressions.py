"""One fixed case per finding of issue 11 (and 16.3/16.4) in the loaders and paths, run as a user runs them:
``mammoscreen`` in a child process with its own peak memory, checked for a one-line error, no traceback,
no code executed (a canary file) and nothing written outside the output directory.

These tests import nothing new from mammoscreen (only the test helpers), so they can be run against an
older checkout (``PYTHONPATH=<checkout>/src``) to show each finding there.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from clirun import assert_clean_error, changed_outside, run_cli, tree_snapshot
from hostile import (dataframe_with_canary, exam_list_deep, exam_list_laughs, exam_list_with_build, huge_bytearray,
                     memo_index, png_bomb, torch_checkpoint_with_canary)

# The refused inputs must cost what a command costs anyway (Python, numpy, torch: a few hundred MB), not the
# gigabytes they ask for (2-4 GB before the fixes).
PEAK_MB = 1200


@pytest.fixture(scope="module")
def mammogram(synthetic_dataset) -> Path:
    return synthetic_dataset / "images" / "0_L-CC.png"


@pytest.fixture()
def workspace(tmp_path, mammogram) -> Path:
    """images/ with two mammograms, a victim image beside it that no command may touch, out/ for outputs."""
    (tmp_path / "images").mkdir()
    shutil.copy(mammogram, tmp_path / "images" / "a.png")
    shutil.copy(mammogram, tmp_path / "images" / "b.png")
    shutil.copy(mammogram, tmp_path / "victim.png")
    return tmp_path


def _exam_list(path: Path, names: list[str]) -> Path:
    exam = {"horizontal_flip": "NO", "L-CC": names, "R-CC": [], "L-MLO": [], "R-MLO": [],
            "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 1, "right_malignant": 0}}
    path.write_bytes(pickle.dumps([exam], protocol=4))
    return path


def _hostile_names(workspace: Path) -> dict[str, str]:
    return {"parent": "../victim", "absolute": str(workspace / "victim")}


# ----------------------------------------------------------------------------------------------
# Names that are paths (issue 11, critical)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["parent", "absolute"])
def test_crop_refuses_image_names_that_are_paths(workspace, kind):
    name = _hostile_names(workspace)[kind]
    exam_list = _exam_list(workspace / "exams.pkl", ["a", name])
    before = tree_snapshot(workspace)
    result = run_cli(["crop", "--images", workspace / "images", "--exam-list", exam_list,
                      "--output-dir", workspace / "out", "--workers", "1", "--quiet"])
    assert_clean_error(result, "crop", mentions=[str(exam_list), "exam 0", "not a plain file name"])
    assert changed_outside(before, tree_snapshot(workspace), allowed=["out"]) == []


@pytest.mark.parametrize("kind", ["parent", "absolute"])
@pytest.mark.slow
def test_run_with_maps_and_figures_refuses_image_names_that_are_paths(workspace, kind):
    name = {"parent": "../../victim", "absolute": str(workspace / "victim")}[kind]
    exam_list = _exam_list(workspace / "exams.pkl", ["a", name])
    before = tree_snapshot(workspace)
    result = run_cli(["run", "--model", "gmic_demo", "--images", workspace / "images", "--exam-list", exam_list,
                      "--output-dir", workspace / "out", "--save-maps", "--visualize", "--workers", "1",
                      "--device", "cpu", "--quiet"], timeout=300)
    assert_clean_error(result, "run", mentions=[str(exam_list), "not a plain file name"])
    assert changed_outside(before, tree_snapshot(workspace), allowed=["out"]) == []


def test_validate_reports_image_names_that_are_paths(workspace):
    exam_list = _exam_list(workspace / "exams.pkl", ["a", "../victim"])
    result = run_cli(["validate", "--images", workspace / "images", "--exam-list", exam_list, "--workers", "1",
                      "--quiet"])
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "not a plain file name" in result.stdout + result.stderr and "'../victim'" in result.stdout + result.stderr


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_synth_refuses_a_prefix_that_is_a_path(tmp_path):
    before = tree_snapshot(tmp_path)
    result = run_cli(["synth", "--output-dir", tmp_path / "out", "--exams", "1", "--scale", "0.1",
                      "--prefix", "../../x", "--workers", "1", "--quiet"])
    assert_clean_error(result, "synth", mentions=["prefix", "../../x"])
    assert changed_outside(before, tree_snapshot(tmp_path), allowed=["out"]) == []


# ----------------------------------------------------------------------------------------------
# Pickles that run code (issue 11, critical)
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["reader-study", "mrmc"])
@pytest.mark.slow
def test_crafted_reader_study_pickles_do_not_run_code(tmp_path, command):
    canary = tmp_path / "canary"
    study = tmp_path / "results.pkl"
    study.write_bytes(dataframe_with_canary(canary))
    result = run_cli([command, study, "--output-dir", tmp_path / "out"])
    assert not canary.exists(), "the pickle ran code"
    assert_clean_error(result, command, mentions=[str(study)])


@pytest.mark.slow
def test_train_resume_does_not_run_code_from_the_checkpoint(tmp_path):
    canary = tmp_path / "canary"
    (tmp_path / "images").mkdir()
    exams = [{"horizontal_flip": "NO", "L-CC": ["a"], "R-CC": [], "L-MLO": [], "R-MLO": [],
              "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 1, "right_malignant": 0},
              "best_center": {"L-CC": [[100, 100]]}}]
    (tmp_path / "exams.json").write_text(json.dumps(exams))
    (tmp_path / "out").mkdir()
    checkpoint = tmp_path / "out" / "checkpoint.pt"
    checkpoint.write_bytes(torch_checkpoint_with_canary(canary, {"epoch": 1}))
    result = run_cli(["train", "--images", tmp_path / "images", "--exam-list", tmp_path / "exams.json",
                      "--val-exam-list", tmp_path / "exams.json", "--output-dir", tmp_path / "out",
                      "--config", "gmic-tiny", "--epochs", "2", "--resume", "--quiet"])
    assert not canary.exists(), "the checkpoint ran code"
    assert_clean_error(result, "train", mentions=[str(checkpoint)])


# ----------------------------------------------------------------------------------------------
# Inputs that exhaust memory or the stack (issue 11)
# ----------------------------------------------------------------------------------------------

HOSTILE_EXAM_LISTS = {
    "deep_nesting.pkl": lambda: exam_list_deep(100_000),
    "build_on_list.pkl": exam_list_with_build,
    "huge_bytearray.pkl": lambda: huge_bytearray(3 * 10 ** 9),
    "billion_laughs.pkl": lambda: exam_list_laughs(9, 10),
    "memo_index.pkl": lambda: memo_index(2 ** 31 - 1),
    "deep_nesting.json": lambda: ("[" * 100_000 + "]" * 100_000).encode(),
}


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("name", sorted(HOSTILE_EXAM_LISTS))
def test_hostile_exam_lists_end_in_one_line_with_bounded_memory(workspace, name):
    exam_list = workspace / name
    exam_list.write_bytes(HOSTILE_EXAM_LISTS[name]())
    result = run_cli(["crop", "--images", workspace / "images", "--exam-list", exam_list,
                      "--output-dir", workspace / "out", "--workers", "1", "--quiet"])
    assert_clean_error(result, "crop", mentions=[str(exam_list)])
    assert result.peak_rss_mb is not None and result.peak_rss_mb < PEAK_MB, result.peak_rss_mb


@pytest.mark.parametrize("command", ["crop", "validate"])
def test_a_png_declaring_19000_squared_pixels_is_refused_from_its_header(workspace, command):
    (workspace / "images" / "bomb.png").write_bytes(png_bomb(19000))
    assert (workspace / "images" / "bomb.png").stat().st_size < 1000
    exam_list = _exam_list(workspace / "exams.pkl", ["a", "bomb"])
    args = ["--output-dir", workspace / "out"] if command == "crop" else []
    result = run_cli([command, "--images", workspace / "images", "--exam-list", exam_list, *args,
                      "--workers", "1", "--quiet"])
    assert "Traceback" not in result.stderr and not result.timed_out
    output = result.stdout + result.stderr
    assert "19000 x 19000" in output and "refused before decoding" in output
    assert result.peak_rss_mb is not None and result.peak_rss_mb < PEAK_MB, result.peak_rss_mb


# ----------------------------------------------------------------------------------------------
# Output locations (issue 11: tracebacks)
# ----------------------------------------------------------------------------------------------

@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_an_output_path_that_is_a_file(workspace):
    exam_list = _exam_list(workspace / "exams.pkl", ["a"])
    (workspace / "out").write_text("not a directory")
    result = run_cli(["crop", "--images", workspace / "images", "--exam-list", exam_list,
                      "--output-dir", workspace / "out", "--workers", "1", "--quiet"])
    assert_clean_error(result, "crop", mentions=[str(workspace / "out"), "is a file"])
    result = run_cli(["crop", "--images", workspace / "images", "--exam-list", exam_list,
                      "--output-dir", workspace / "out" / "sub", "--workers", "1", "--quiet"])
    assert_clean_error(result, "crop", mentions=[str(workspace / "out" / "sub")])


@contextlib.contextmanager
def _read_only_directory(path: Path):
    """``path`` as a directory nobody can write in: permissions for ordinary users; for root (who ignores them)
    a read-only tmpfs mounted over it, or else the immutable attribute. Skips where neither is possible."""
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                      capture_output=True).returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["umount", str(path)], capture_output=True)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], capture_output=True)
        return
    pytest.skip("running as root without mount or chattr: cannot make a read-only directory")


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("command", ["crop", "synth"])
def test_a_read_only_output_directory(workspace, command):
    exam_list = _exam_list(workspace / "exams.pkl", ["a"])
    with _read_only_directory(workspace / "readonly") as readonly:
        if command == "crop":
            args = ["crop", "--images", workspace / "images", "--exam-list", exam_list]
        else:
            args = ["synth", "--exams", "1", "--scale", "0.1"]
        result = run_cli([*args, "--output-dir", readonly, "--workers", "1", "--quiet"])
    assert_clean_error(result, command, mentions=[str(readonly)])
