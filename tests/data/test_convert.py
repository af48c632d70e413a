"""convert-dicom over directories: grouping, orientation, labels, bad files, resumability, round trips."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pydicom
import pytest

from mammoscreen.data.convert import convert_dicom_dir, exam_label, read_labels_csv
from mammoscreen.data.dicom import PixelPolicy
from mammoscreen.data.dicom_write import uid_from
from mammoscreen.data.exams import VIEWS, load_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.data.synth import SynthOptions, generate_exams


def rescaled(values: np.ndarray) -> np.ndarray:
    """round(x * 65535 / 4095) in floating point: an implementation independent of the one under test."""
    return np.floor(values.astype(np.float64) * 65535 / 4095 + 0.5).astype(np.uint16)


def manifest(output_dir):
    with open(output_dir / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("compression", [None, "jpeg2000"])
def test_synthetic_dicom_round_trip_gives_the_png_values_and_labels(tmp_path, compression):
    exams = generate_exams(2, tmp_path / "synth", seed=5, options=SynthOptions(scale=0.1), fmt="both",
                           dicom_compression=compression, progress=False)
    report = convert_dicom_dir(tmp_path / "synth" / "dicom", tmp_path / "out",
                               labels=read_labels_csv(tmp_path / "synth" / "labels.csv"), progress=False)
    assert report.failures == [] and report.skipped == []
    assert len(report.converted) == 8
    converted = load_exam_list(tmp_path / "out" / "exam_list.pkl")
    assert len(converted) == 2
    for original, exam in zip(exams, converted):
        assert exam.horizontal_flip == "NO"
        assert exam.cancer_label == original.cancer_label
        for view in VIEWS:
            (name,) = exam.images[view]
            assert name.endswith(view)
            expected = rescaled(read_png(tmp_path / "synth" / "images" / f"{original.images[view][0]}.png"))
            assert np.array_equal(read_png(tmp_path / "out" / "images" / f"{name}.png"), expected), view
            sidecar = json.loads((tmp_path / "out" / "sidecars" / f"{name}.json").read_text())
            assert sidecar["view"] == view and sidecar["policy"]["voi"] == "none"
            assert sidecar["pixels"]["tags"]["ImageLaterality"] == view[0]
            assert sidecar["pixels"]["bit_depth"] == 12


def test_exams_grouped_by_study_with_several_images_per_view(tmp_path, make_dicom):
    inputs = tmp_path / "in"
    make_dicom(inputs / "x" / "one", study="s1", side="L", view="CC", extra={"InstanceNumber": 2})
    make_dicom(inputs / "x" / "two", study="s1", side="L", view="CC", extra={"InstanceNumber": 1})
    make_dicom(inputs / "y" / "three.dcm", study="s1", side="R", view="MLO")
    make_dicom(inputs / "four.DCM", study="s2", side="R", view="CC")
    report = convert_dicom_dir(inputs, tmp_path / "out", progress=False)
    by_study = {exam.images["L-CC"][0].split("_")[0] if exam.images["L-CC"] else exam.images["R-CC"][0].split("_")[0]:
                exam for exam in report.exams}
    s1 = by_study[exam_label(uid_from("s1"))]
    label = exam_label(uid_from("s1"))
    assert s1.images["L-CC"] == [f"{label}_L-CC", f"{label}_L-CC_2"]
    assert s1.images["R-MLO"] == [f"{label}_R-MLO"] and s1.images["R-CC"] == []
    first = read_png(tmp_path / "out" / "images" / f"{label}_L-CC.png")
    assert first is not None
    rows = {row["image"]: row for row in manifest(tmp_path / "out")}
    assert rows[f"{label}_L-CC"]["file"].endswith("two")  # InstanceNumber 1 comes first
    assert len(report.exams) == 2 and report.exams[0].cancer_label is None


def test_mirrored_images_are_flipped_back_or_flagged(tmp_path, make_dicom, breast):
    inputs = tmp_path / "in"
    # study m: only the L-CC is stored mirrored (nipple pointing left, rows run posterior)
    make_dicom(inputs / "m1", breast("R"), study="m", side="L", view="CC", patient_orientation=["P", "R"])
    make_dicom(inputs / "m2", breast("R"), study="m", side="R", view="CC")
    # study y: every image mirrored -> horizontal_flip YES, pixels kept
    make_dicom(inputs / "y1", breast("R"), study="y", side="L", view="CC", patient_orientation=["P", "R"])
    make_dicom(inputs / "y2", breast("L"), study="y", side="R", view="CC", patient_orientation=["A", "L"])
    report = convert_dicom_dir(inputs, tmp_path / "out", progress=False)
    exams = {exam.images["L-CC"][0].split("_")[0]: exam for exam in report.exams}
    mixed, mirrored = exams[exam_label(uid_from("m"))], exams[exam_label(uid_from("y"))]
    assert mixed.horizontal_flip == "NO"
    left = read_png(tmp_path / "out" / "images" / f"{mixed.images['L-CC'][0]}.png")
    assert np.array_equal(left, rescaled(breast("L")))  # mirrored back: faces right
    assert report.converted[mixed.images["L-CC"][0]]["pixels"]["mirrored"] is True
    assert mirrored.horizontal_flip == "YES"
    kept = read_png(tmp_path / "out" / "images" / f"{mirrored.images['L-CC'][0]}.png")
    assert np.array_equal(kept, rescaled(breast("R")))


def test_bad_and_foreign_files_are_reported_and_skipped(tmp_path, make_dicom):
    inputs = tmp_path / "in"
    make_dicom(inputs / "good.dcm", study="g", side="L", view="CC")
    (inputs / "readme.txt").write_text("hello")
    (inputs / "garbage.dcm").write_bytes(os.urandom(300))
    ct = pydicom.dcmread(make_dicom(inputs / "ct.dcm", study="c"))
    ct.Modality = "CT"
    ct.save_as(inputs / "ct.dcm", enforce_file_format=True)
    make_dicom(inputs / "raw.dcm", study="g", side="R", view="CC", presentation_intent="FOR PROCESSING")
    make_dicom(inputs / "spot.dcm", study="g", side="R", view="XCCL")
    truncated = make_dicom(inputs / "truncated.dcm", study="g", side="R", view="MLO")
    truncated.write_bytes(truncated.read_bytes()[:-5000])
    report = convert_dicom_dir(inputs, tmp_path / "out", progress=False)

    assert list(report.converted) == [f"{exam_label(uid_from('g'))}_L-CC"]
    reasons = {os.path.basename(path): reason for path, reason in report.skipped}
    assert reasons["readme.txt"] == "not a DICOM file"
    assert reasons["garbage.dcm"] == "not a DICOM file"
    assert "Modality CT" in reasons["ct.dcm"]
    assert "For Processing" in reasons["raw.dcm"]
    assert "XCCL" in reasons["spot.dcm"]
    (failure,) = report.failures
    assert "truncated.dcm" in failure.reason
    statuses = {os.path.basename(row["file"]): row["status"] for row in manifest(tmp_path / "out")}
    assert statuses == {"good.dcm": "converted", "truncated.dcm": "failed", "readme.txt": "skipped",
                        "garbage.dcm": "skipped", "ct.dcm": "skipped", "raw.dcm": "skipped", "spot.dcm": "skipped"}
    # the failed image is not in the exam list
    (exam,) = load_exam_list(tmp_path / "out" / "exam_list.pkl")
    assert exam.images["R-MLO"] == []


def test_rerun_skips_converted_images_and_redoes_missing_ones(tmp_path, make_dicom):
    inputs = tmp_path / "in"
    make_dicom(inputs / "a.dcm", study="r", side="L", view="CC")
    make_dicom(inputs / "b.dcm", study="r", side="R", view="CC")
    first = convert_dicom_dir(inputs, tmp_path / "out", progress=False)
    a_name, b_name = sorted(first.converted)
    a_png, b_png = (tmp_path / "out" / "images" / f"{n}.png" for n in (a_name, b_name))
    os.utime(a_png, (1, 1))
    b_png.unlink()
    second = convert_dicom_dir(inputs, tmp_path / "out", progress=False)
    assert a_png.stat().st_mtime == 1
    assert b_png.is_file() and set(second.converted) == {a_name, b_name}
    # a different pipeline is a different result: nothing is reused
    convert_dicom_dir(inputs, tmp_path / "out", policy=PixelPolicy(voi="minmax"), progress=False)
    assert a_png.stat().st_mtime != 1


def test_labels_csv_fills_cancer_label_and_reports_unlabelled(tmp_path, make_dicom):
    inputs = tmp_path / "in"
    make_dicom(inputs / "a.dcm", study="p", side="L", view="CC")
    make_dicom(inputs / "b.dcm", study="q", side="L", view="CC")
    labels = tmp_path / "labels.csv"
    labels.write_text(f"study,laterality,malignant,benign\n{uid_from('p')},R,1,0\n")
    report = convert_dicom_dir(inputs, tmp_path / "out", labels=read_labels_csv(labels), progress=False)
    by_name = {exam.images["L-CC"][0]: exam for exam in report.exams}
    labelled = by_name[f"{exam_label(uid_from('p'))}_L-CC"].cancer_label
    assert labelled == {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 1,
                        "benign": 0, "malignant": 1, "unknown": 0}
    assert by_name[f"{exam_label(uid_from('q'))}_L-CC"].cancer_label is None
    assert report.unlabelled_studies == [uid_from("q")]


@pytest.mark.parametrize("content, message", [
    ("study,side,malignant,benign\n", "missing column.*laterality"),
    ("study,laterality,malignant,benign\n1.2,X,1,0\n", "line 2: laterality must be L or R"),
    ("study,laterality,malignant,benign\n1.2,L,yes,0\n", "line 2: malignant must be 0 or 1"),
    ("study,laterality,malignant,benign\n1.2,L,1,0\n1.2,L,0,0\n", "line 3: conflicting malignant"),
])
def test_bad_labels_csv(tmp_path, content, message):
    path = tmp_path / "labels.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labels_csv(path)


def test_missing_input_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="input directory not found"):
        convert_dicom_dir(tmp_path / "nope", tmp_path / "out", progress=False)
