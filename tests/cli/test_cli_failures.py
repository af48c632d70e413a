"""Every command fails the way a user should see it: exit status 2 and one line naming what is wrong.

Each case is a typical bad input of its command (a missing or malformed file, an impossible option).
The list must cover every sub-command the parser knows, so a new command cannot arrive without one.
"""

from __future__ import annotations

import argparse

import pytest

from mammoscreen.cli import build_parser, main


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _cases(tmp):
    """command -> (arguments, text the error line must contain)."""
    missing_pkl = str(tmp / "missing.pkl")
    no_labels = str(_write(tmp / "no_labels.csv", "image_index,malignant_pred\na,0.5\n"))
    return {
        "crop": (["--images", str(tmp), "--exam-list", missing_pkl, "--output-dir", str(tmp / "o")],
                 "argument --exam-list: file not found: " + missing_pkl),
        "centers": (["--images", str(tmp), "--exam-list", missing_pkl, "--output", str(tmp / "d.pkl")],
                    "argument --exam-list: file not found: " + missing_pkl),
        "predict": (["--weights", str(tmp / "none.p"), "--images", str(tmp), "--exam-list", missing_pkl,
                     "--output-dir", str(tmp / "o")], "argument --weights: weights not found: " + str(tmp / "none.p")),
        "run": (["--model", "gmic", "--weights", str(tmp / "none.p"), "--images", str(tmp), "--exam-list",
                 missing_pkl, "--output-dir", str(tmp / "o")],
                "argument --weights: weights not found: " + str(tmp / "none.p")),
        "convert-dicom": ([str(tmp / "no_dir"), "--output-dir", str(tmp / "o")],
                          "argument INPUT_DIR: directory not found: " + str(tmp / "no_dir")),
        "inspect": ([str(_write(tmp / "x.dcm", "not a DICOM file"))], str(tmp / "x.dcm") + ": not a DICOM file"),
        "synth": (["--output-dir", str(tmp / "s"), "--exams", "1", "--scale", "-1"],
                  "argument --scale: must be at least 0.05, got -1"),
        "import-dataset": (["cmmd", "--root", str(tmp / "no_dir"), "--output-dir", str(tmp / "o")],
                           "argument --root: directory not found: " + str(tmp / "no_dir")),
        "evaluate": (["--predictions", no_labels, "--output-dir", str(tmp / "o")],
                     no_labels + ": missing column(s) 'malignant_label'"),
        "compare": ([str(tmp / "missing.csv"), no_labels, "--output-dir", str(tmp / "o")],
                    "argument predictions: file not found: " + str(tmp / "missing.csv")),
        "reader-study": ([str(_write(tmp / "rs.csv", "case_ID,side,label\n1,L,0\n")), "--output-dir", str(tmp / "o")],
                         str(tmp / "rs.csv") + ": no reader or model columns found"),
        "mrmc": ([str(_write(tmp / "mrmc.csv", "reader,case,modality,score,truth\n")), "--output-dir", str(tmp / "o")],
                 str(tmp / "mrmc.csv") + ": no readings"),
        "models": (["resnet1000"], "unknown model 'resnet1000'"),
        "train": (["--images", str(tmp), "--exam-list", missing_pkl, "--val-exam-list", missing_pkl,
                   "--output-dir", str(tmp / "o")], "argument --exam-list: file not found: " + missing_pkl),
        "localize": (["--maps", str(tmp / "no_maps"), "--segmentations", str(tmp), "--output-dir", str(tmp / "o")],
                     "argument --maps: directory not found: " + str(tmp / "no_maps")),
        "report": ([str(tmp / "no_run")], "argument RUN_DIR: directory not found: " + str(tmp / "no_run")),
        "validate": (["--images", str(tmp), "--exam-list", missing_pkl],
                     "argument --exam-list: file not found: " + missing_pkl),
        "reader-app": (["export", str(tmp / "no_study"), "--format", "csv", "--output", str(tmp / "o" / "x.csv")],
                       str(tmp / "no_study") + ": not a reader-study directory (no study.json)"),
        "demo": (["--output-dir", str(tmp / "demo"), "--exams", "1", "--bootstrap", "0"],
                 "argument --exams: must be at least 2, got 1"),
    }


def _commands():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(action.choices)


COMMANDS = sorted(_commands())


def test_every_command_has_a_failure_case(tmp_path):
    assert set(_cases(tmp_path)) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_command_fails_with_one_line_and_exit_code_2(command, tmp_path, capsys):
    args, message = _cases(tmp_path)[command]
    try:
        status = main([command, *args])
    except SystemExit as stopped:  # found wrong while parsing the arguments
        status = stopped.code
    assert status == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"mammoscreen {command}: error: "), lines[0]
    assert message in lines[0], (message, lines[0])
    assert not (tmp_path / "o").exists() and not (tmp_path / "demo").exists()  # nothing written on the way out


@pytest.mark.parametrize("command, args", [
    ("synth", ["--output-dir", "o", "--exams", "2", "--bits", "8"]),  # not a choice
    ("evaluate", ["--predictions", "p.csv", "--output-dir", "o", "--confidence", "1.5"]),
    ("train", ["--images", "i", "--exam-list", "e", "--val-exam-list", "v", "--output-dir", "o", "--epochs", "0"]),
    ("crop", ["--images", "i", "--exam-list", "e", "--output-dir", "o", "--workers", "0"]),
])
def test_bad_option_values_are_usage_errors(command, args, capsys):
    with pytest.raises(SystemExit) as stopped:
        main([command, *args])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"mammoscreen {command}: error: argument" in err
