"""The command line: help, end-to-end preprocessing on synthetic images, clear errors."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from testutils import synthetic_breast
from mammoscreen.cli import main
from mammoscreen.data import load_exam_list, write_png


def test_console_script_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "mammoscreen", "--help"], capture_output=True, text=True, check=True)
    for command in ("crop", "centers", "predict", "run"):
        assert command in out.stdout


@pytest.fixture(scope="module")
def dataset_source(tmp_path_factory):
    """Three full-size synthetic mammograms and their exam list, written once for the module (PNG encoding of
    3200 x 1500 images is most of the set-up); each test gets its own copy (``dataset``)."""
    root = tmp_path_factory.mktemp("cli_dataset")
    images = root / "images"
    exam = {"horizontal_flip": "NO", "L-CC": ["s_L-CC"], "R-CC": ["s_R-CC"], "L-MLO": [], "R-MLO": ["s_R-MLO"],
            "cancer_label": {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 0}}
    write_png(images / "s_L-CC.png", synthetic_breast((3200, 1500), facing="right", seed=1))
    write_png(images / "s_R-CC.png", synthetic_breast((3200, 1500), facing="left", seed=2))
    write_png(images / "s_R-MLO.png", synthetic_breast((3300, 1600), facing="left", seed=3))
    (root / "exams.json").write_text(__import__("json").dumps([exam]))
    return root


@pytest.fixture()
def dataset(dataset_source, tmp_path):
    shutil.copytree(dataset_source / "images", tmp_path / "images")
    shutil.copy(dataset_source / "exams.json", tmp_path / "exams.json")
    return tmp_path / "images", tmp_path / "exams.json"


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_crop_then_centers_from_the_command_line(dataset, tmp_path, capsys):
    images, exam_list = dataset
    out = tmp_path / "cropped"
    assert main(["crop", "--images", str(images), "--exam-list", str(exam_list), "--output-dir", str(out),
                 "--workers", "1", "--quiet"]) == 0
    assert "cropped 3 of 3 images" in capsys.readouterr().out
    assert main(["centers", "--images", str(out), "--exam-list", str(out / "cropped_exam_list.pkl"),
                 "--output", str(tmp_path / "data.pkl"), "--workers", "1", "--quiet"]) == 0
    exams = load_exam_list(tmp_path / "data.pkl")
    centres = exams[0].image_metadata["best_center"]
    assert set(centres) == {"L-CC", "R-CC", "L-MLO", "R-MLO"} and centres["L-MLO"] == []
    with open(tmp_path / "data.pkl", "rb") as f:
        assert pickle.load(f)[0]["best_center"]["R-CC"] == [centres["R-CC"][0]]


def test_errors_are_one_line_with_exit_code_2(dataset, tmp_path, capsys):
    images, exam_list = dataset
    # missing inputs are refused while the arguments are parsed (issue 16.2): argparse's exit status 2
    with pytest.raises(SystemExit) as exited:
        main(["crop", "--images", str(images), "--exam-list", str(tmp_path / "nope.pkl"),
              "--output-dir", str(tmp_path / "o")])
    assert exited.value.code == 2
    assert f"mammoscreen crop: error: argument --exam-list: file not found: {tmp_path / 'nope.pkl'}" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["predict", "--weights", str(tmp_path / "none.p"), "--images", str(images),
              "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "o")])
    assert exited.value.code == 2
    assert "argument --weights: weights not found" in capsys.readouterr().err
    assert main(["centers", "--images", str(images), "--exam-list", str(exam_list),
                 "--output", str(tmp_path / "d.pkl")]) == 2
    assert "has no 'rightmost_points'" in capsys.readouterr().err
    assert main(["predict", "--model", "resnet1000", "--weights", "official", "--images", str(images),
                 "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "o")]) == 2
    assert "unknown model 'resnet1000'" in capsys.readouterr().err


def test_predict_refuses_an_exam_list_without_centres(dataset, tmp_path, capsys, reference_dir):
    images, exam_list = dataset
    assert main(["predict", "--weights", str(reference_dir / "gmic" / "gmic_reference.p"), "--images", str(images),
                 "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "o"), "--quiet", "--device", "cpu"]) == 1
    captured = capsys.readouterr()  # every image failed: a non-zero exit status
    assert "0 predictions" in captured.out
    assert "has no best_center: run 'mammoscreen centers' first" in captured.err


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_blank_image_is_reported_and_the_rest_cropped(dataset, tmp_path, capsys):
    images, exam_list = dataset
    write_png(images / "s_R-CC.png", np.zeros((3200, 1500), np.uint16))
    assert main(["crop", "--images", str(images), "--exam-list", str(exam_list), "--output-dir",
                 str(tmp_path / "c"), "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "cropped 2 of 3 images" in captured.out
    assert "s_R-CC" in captured.err and "cannot crop" in captured.err
