"""Every command ends in one line naming the file and the problem; --debug shows the traceback."""

from __future__ import annotations

import errno
import pickle

import pytest

from clirun import assert_clean_error, run_cli
from mammoscreen.cli import describe_failure, main
from mammoscreen.core.limits import get_limits
from mammoscreen.data.exams import ExamListError
from mammoscreen.models.weights import WeightsError


@pytest.mark.parametrize("error, status, expected", [
    (ExamListError("exams.pkl: exam 3, key 'L-CC': bad"), 2, "exams.pkl: exam 3, key 'L-CC': bad"),
    (WeightsError("w.p: not a loadable PyTorch checkpoint"), 2, "w.p: not a loadable PyTorch checkpoint"),
    (OSError(errno.ENOSPC, "No space left on device", "out/maps/x.npz"), 1,
     "out/maps/x.npz: No space left on device (free some space; finished work is kept"),
    (PermissionError(errno.EACCES, "Permission denied", "out/x"), 1,
     "out/x: Permission denied (read-only location or no permission)"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "in/x.png"), 2,
     "in/x.png: No such file or directory"),
    (MemoryError(), 1, "out of memory"),
    (RecursionError("maximum recursion depth exceeded"), 1, "an input is nested too deeply"),
    (TypeError("unsupported operand\ntype(s)"), 1,
     "internal error (TypeError: unsupported operand type(s)); please report"),
])
def test_failures_become_one_line_with_a_status(error, status, expected):
    got_status, message = describe_failure(error)
    assert got_status == status and message.startswith(expected) and "\n" not in message


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_debug_shows_the_traceback_and_the_line(tmp_path):
    exam_list = tmp_path / "exams.pkl"
    exam_list.write_bytes(pickle.dumps([{"L-CC": ["../x"]}]))
    args = ["crop", "--images", tmp_path, "--exam-list", exam_list, "--output-dir", tmp_path / "out"]
    plain = run_cli(args)
    assert_clean_error(plain, "crop", mentions=[str(exam_list), "'../x'"])
    for debug_args in (["--debug", *args], [*args, "--debug"]):
        debug = run_cli(debug_args)
        assert "Traceback (most recent call last)" in debug.stderr and debug.returncode == 2
        assert debug.last_error_line == plain.last_error_line


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_max_pixels_applies_to_one_command(tmp_path, synthetic_dataset, capsys):
    image = synthetic_dataset / "images" / "0_L-CC.png"
    exam_list = tmp_path / "exams.pkl"
    exam_list.write_bytes(pickle.dumps([{"L-CC": ["0_L-CC"]}]))
    before = get_limits().max_pixels
    status = main(["--max-pixels", "1000", "validate", "--images", str(image.parent), "--exam-list", str(exam_list),
                   "--workers", "1", "--quiet"])
    output = capsys.readouterr()
    assert status == 1 and "refused before decoding" in output.out and "--max-pixels" in output.out
    assert get_limits().max_pixels == before  # restored after the command
    with pytest.raises(SystemExit):
        main(["--max-pixels", "0", "validate"])
