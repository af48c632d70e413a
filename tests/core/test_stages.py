"""Failures and warnings of a stage: the machine's refusals told apart from bad inputs; the CSV files."""

from __future__ import annotations

import errno
import os

from mammoscreen.core.stages import (Failure, InputWarning, StageReport, is_io_error, read_failures_csv,
                                     read_warnings_csv, write_failures_csv, write_warnings_csv)
from mammoscreen.data.images import ImageFileError


def test_io_errors_are_the_machine_refusing_not_a_bad_input():
    for code in (errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT):
        assert is_io_error(OSError(code, os.strerror(code)))
    assert not is_io_error(ImageFileError("x.png: not a readable PNG"))
    assert not is_io_error(FileNotFoundError(errno.ENOENT, "No such file"))  # a missing input is the input's fault
    assert not is_io_error(ValueError("no breast"))
    failure = Failure.of("a.png", OSError(errno.ENOSPC, "No space left on device"), "crop")
    assert failure.io_error and failure.kind == "io" and failure.stage == "crop"
    assert "No space left on device" in failure.reason


def test_failures_and_warnings_csv_round_trip_and_disappear_when_empty(tmp_path):
    failures = [Failure("a", "cannot crop", "crop"), Failure("b", "[Errno 28] No space left", "gmic", True)]
    write_failures_csv(tmp_path / "failures.csv", failures)
    assert (tmp_path / "failures.csv").read_text().splitlines()[0] == "stage,item,kind,reason"
    assert read_failures_csv(tmp_path / "failures.csv") == failures
    write_failures_csv(tmp_path / "failures.csv", [])
    assert not (tmp_path / "failures.csv").exists()  # a later clean run leaves no stale list
    found = [InputWarning("a", "all white, 100%", "crop")]
    write_warnings_csv(tmp_path / "warnings.csv", found)
    assert read_warnings_csv(tmp_path / "warnings.csv") == found


def test_a_stage_report_says_up_to_date_only_when_everything_was_reused():
    report = StageReport("crop", total=4, reused=4)
    assert report.up_to_date and report.summary() == "up to date (4 images)"
    report = StageReport("crop", total=4, reused=1, computed=2, failures=[Failure("d", "x", "crop", True)])
    assert not report.up_to_date and report.incomplete
    assert report.summary() == "2 computed, 1 reused, 1 failed (1 by I/O errors)"
