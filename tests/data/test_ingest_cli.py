"""The data-in commands end to end: synth -> convert-dicom -> validate, inspect, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mammoscreen.cli import main
from mammoscreen.data.exams import load_exam_list
from mammoscreen.data.images import read_png


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_synth_dicom_convert_validate(tmp_path, capsys):
    synth = tmp_path / "synth"
    assert main(["synth", "--output-dir", str(synth), "--exams", "2", "--seed", "3", "--scale", "0.15",
                 "--format", "both", "--quiet", "--workers", "1"]) == 0
    assert "generated 2 exam(s)" in capsys.readouterr().out
    out = tmp_path / "converted"
    assert main(["convert-dicom", str(synth / "dicom"), "--output-dir", str(out), "--labels",
                 str(synth / "labels.csv"), "--quiet", "--workers", "2"]) == 0
    assert "converted 8 image(s) into 2 exam(s); skipped 0 file(s); 0 failed" in capsys.readouterr().out
    original = load_exam_list(synth / "exam_list.pkl")
    converted = load_exam_list(out / "exam_list.pkl")
    assert [e.cancer_label for e in converted] == [e.cancer_label for e in original]
    png = read_png(synth / "images" / "1_R-CC.png").astype(np.float64)
    assert np.array_equal(read_png(out / "images" / f"{converted[1].images['R-CC'][0]}.png"),
                          np.floor(png * 65535 / 4095 + 0.5).astype(np.uint16))
    assert main(["validate", "--images", str(out / "images"), "--exam-list", str(out / "exam_list.pkl"),
                 "--quiet"]) == 0


def test_convert_with_window_policy_and_bad_option(tmp_path, make_dicom, capsys):
    make_dicom(tmp_path / "in" / "a.dcm", window=(2048, 4096))
    assert main(["convert-dicom", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--voi", "window",
                 "--quiet"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:  # refused while parsing (issue 16.2)
        main(["convert-dicom", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"), "--bit-depth", "20",
              "--quiet"])
    assert exited.value.code == 2
    assert "argument --bit-depth: must be at most 16, got 20" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["convert-dicom", str(tmp_path / "nope"), "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert exited.value.code == 2
    assert f"argument INPUT_DIR: directory not found: {tmp_path / 'nope'}" in capsys.readouterr().err


def test_inspect(tmp_path, make_dicom, capsys):
    path = make_dicom(tmp_path / "a.dcm", side="R", view="MLO", photometric="MONOCHROME1")
    assert main(["inspect", str(path), "--pixels"]) == 0
    out = capsys.readouterr().out
    assert "PhotometricInterpretation  MONOCHROME1" in out
    assert "converts as R-MLO" in out and "inverted: 4095 - x" in out
    (tmp_path / "x.txt").write_text("hello")
    assert main(["inspect", str(tmp_path / "x.txt")]) == 2
    assert "not a DICOM file" in capsys.readouterr().err
