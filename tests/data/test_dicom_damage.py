"""Damaged DICOM headers and files: each one a clear per-file failure naming the file and the problem, never
a blank image marked converted (issue 11.4), and messages that point at the real problem (issue 16.6)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest

from mammoscreen.cli import main
from mammoscreen.data.convert import convert_dicom_dir, convert_file
from mammoscreen.data.dicom import DicomFileError, read_dicom
from mammoscreen.data.exams import load_exam_list
from mammoscreen.data.metadata import exam_metadata


def manifest(out):
    with open(out / "manifest.csv") as f:
        return list(csv.DictReader(f))


def with_raw_value(path, keyword, text):
    """Rewrite ``path`` with ``text`` stored as the value of ``keyword``, as a damaged header would hold it
    (pydicom refuses to write such values, so a placeholder of the same length is replaced in the bytes)."""
    text = text + " " * (len(text) % 2)
    placeholder = ("7." + "7" * len(text))[:len(text)]
    ds = pydicom.dcmread(path)
    setattr(ds, keyword, placeholder)
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    assert data.count(placeholder.encode()) == 1
    path.write_bytes(data.replace(placeholder.encode(), text.encode()))
    return path


@pytest.mark.parametrize("slope, message", [
    ("0", r"RescaleSlope \(0028,1053\) is 0, which would make every pixel 0 \(a blank image\)"),
    ("abc", r"RescaleSlope \(0028,1053\) is 'abc', not a number; the Modality LUT cannot be applied"),
    ("nan", r"RescaleSlope \(0028,1053\) is 'nan', not a number"),
])
def test_rescale_slope_zero_or_not_a_number_fails_that_file(tmp_path, make_dicom, slope, message):
    """Issue 11.4: slope 0 became an all-zero PNG marked 'converted'; 16.6: 'abc' gave "could not convert string to
    float: 'abc'" without the file or the attribute."""
    source = tmp_path / "in"
    make_dicom(source / "good.dcm", side="L", view="CC")
    bad = with_raw_value(make_dicom(source / "bad.dcm", side="R", view="CC"), "RescaleSlope", slope)
    with pytest.raises(DicomFileError, match=rf"bad\.dcm: {message}"):
        convert_file(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
    out = tmp_path / "out"
    report = convert_dicom_dir(source, out, progress=False)
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in manifest(out)}
    assert rows["bad.dcm"]["status"] == "failed" and "RescaleSlope (0028,1053)" in rows["bad.dcm"]["reason"]
    assert rows["good.dcm"]["status"] == "converted"
    assert len(report.converted) == 1 and len(report.failures) == 1
    assert list((out / "images").iterdir()) == [out / "images" / f"{rows['good.dcm']['image']}.png"]


def test_rescale_intercept_not_a_number(tmp_path, make_dicom):
    bad = with_raw_value(make_dicom(tmp_path / "bad.dcm"), "RescaleIntercept", "1e999")
    with pytest.raises(DicomFileError, match=r"bad\.dcm: RescaleIntercept \(0028,1052\) is '1e999', not a number"):
        convert_file(bad, tmp_path / "x.png")


def test_window_not_a_number_names_the_attribute(tmp_path, make_dicom):
    bad = make_dicom(tmp_path / "bad.dcm", window=(2048, 4096))
    with_raw_value(bad, "WindowCenter", "wide")
    from mammoscreen.data.dicom import PixelPolicy

    with pytest.raises(DicomFileError, match=r"bad\.dcm: Window Center 'wide' is not a number"):
        convert_file(bad, tmp_path / "x.png", PixelPolicy(voi="window"))


@pytest.mark.parametrize("keep", ["in the pixel data", "after Modality", "before Modality"])
def test_truncated_mammogram_is_reported_as_truncated(tmp_path, make_dicom, keep):
    """Issue 16.6: a truncated DICOM of modality MG was reported as 'not a mammogram' (or 'no pixel data')."""
    full = make_dicom(tmp_path / "full.dcm").read_bytes()
    offsets = {"in the pixel data": len(full) - 1000, "after Modality": full.index(b"MG") + 40,
               "before Modality": full.index(b"MG") - 8}
    cut = tmp_path / "in" / "cut.dcm"
    cut.parent.mkdir()
    cut.write_bytes(full[:offsets[keep]])
    with pytest.raises(DicomFileError, match=r"cut\.dcm: truncated DICOM file"):
        read_dicom(cut)
    report = convert_dicom_dir(tmp_path / "in", tmp_path / "out", progress=False)
    assert [r["status"] for r in manifest(tmp_path / "out")] == ["failed"]
    assert "truncated DICOM file" in report.failures[0].reason and "not a mammogram" not in report.failures[0].reason


def test_truncated_compressed_mammogram(tmp_path, make_dicom):
    full = make_dicom(tmp_path / "full.dcm", compression="jpeg2000").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(full[:len(full) - 300])
    with pytest.raises(DicomFileError, match=r"cut\.dcm: truncated DICOM file: it ends inside the encapsulated"):
        read_dicom(tmp_path / "cut.dcm")


def test_absurd_rows_and_columns_refused_before_decoding(tmp_path, make_dicom):
    ds = pydicom.dcmread(make_dicom(tmp_path / "a.dcm"))
    ds.Rows, ds.Columns = 60000, 60000
    ds.save_as(tmp_path / "huge.dcm", enforce_file_format=True)
    with pytest.raises(DicomFileError, match=r"huge\.dcm: the image declares 60000 x 60000 pixels \(3600 MP\), "
                                             r"more than any mammogram; refused before decoding"):
        convert_file(tmp_path / "huge.dcm", tmp_path / "x.png")
    ds.Rows = 0
    ds.save_as(tmp_path / "empty.dcm", enforce_file_format=True)
    with pytest.raises(DicomFileError, match=r"empty\.dcm: Rows/Columns 0 x 60000 do not describe an image"):
        convert_file(tmp_path / "empty.dcm", tmp_path / "x.png")


def test_conflicting_laterality_is_warned_and_recorded(tmp_path, make_dicom, breast, capsys):
    """Issue 16.6: Laterality L with ImageLaterality R was converted silently as R."""
    source = tmp_path / "in"
    path = make_dicom(source / "a.dcm", breast("R"), side="R", view="CC")
    ds = pydicom.dcmread(path)
    ds.Laterality = "L"
    ds.save_as(path, enforce_file_format=True)
    out = tmp_path / "out"
    assert main(["convert-dicom", str(source), "--output-dir", str(out), "--quiet", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    warning = ("ImageLaterality (0020,0062) R contradicts Laterality (0020,0060) L; converted as R (ImageLaterality "
               "describes the image) - check the view")
    assert f"warning: 1 converted image(s) to check (manifest.csv, their sidecars), e.g. {path}: {warning}" in printed
    row, = manifest(out)
    assert row["status"] == "converted" and row["view"] == "R-CC" and row["reason"] == warning
    sidecar = json.loads((out / "sidecars" / f"{row['image']}.json").read_text())
    assert sidecar["laterality"] == {"ImageLaterality": "R", "Laterality": "L"}
    assert sidecar["warnings"] == [warning]
    from mammoscreen.data.dicom import inspect_dicom

    assert ("warning", warning) in inspect_dicom(path)


def test_convert_dicom_records_header_metadata(tmp_path, make_dicom):
    """Issue 15.1: convert-dicom stores the exam's metadata: age, manufacturer (canonical), model, implant."""
    source = tmp_path / "in"
    header = {"Manufacturer": "HOLOGIC, Inc.", "ManufacturerModelName": " Selenia Dimensions ", "PatientAge": "061Y",
              "BreastImplantPresent": "NO"}
    for side in ("L", "R"):
        make_dicom(source / f"{side}.dcm", side=side, view="CC", extra=header)
    make_dicom(source / "other.dcm", side="L", view="CC", study="study-2", extra={"Manufacturer": "GE Healthcare"})
    convert_dicom_dir(source, tmp_path / "out", progress=False)
    exams = load_exam_list(tmp_path / "out" / "exam_list.pkl")
    assert [exam_metadata(e) for e in exams] == [
        {"dataset": "dicom", "age": 61, "manufacturer": "HOLOGIC", "manufacturer_model": "Selenia Dimensions",
         "implant": False},
        {"dataset": "dicom", "manufacturer": "GE"},
    ]


def test_undamaged_files_are_unchanged(tmp_path, make_dicom):
    """The new checks change nothing for good files: same pixels as before."""
    path = make_dicom(tmp_path / "a.dcm", rescale=(2.0, 0.0), bits_stored=11,
                      stored=np.full((40, 30), 1000, dtype=np.uint16))
    record = convert_file(path, tmp_path / "a.png")
    # 1000 stored x slope 2 = 2000 in 12 bits, rescaled: round(2000 * 65535 / 4095) = 32007
    assert record["rescale_slope"] == 2.0 and record["bit_depth"] == 12 and record["output_max"] == 32007


def test_inspect_says_a_damaged_rescale_fails(tmp_path, make_dicom):
    from mammoscreen.data.dicom import inspect_dicom

    bad = with_raw_value(make_dicom(tmp_path / "bad.dcm"), "RescaleSlope", "abc")
    assert inspect_dicom(bad)[-1] == ("mammoscreen", "fails: RescaleSlope (0028,1053) is 'abc', not a number; the "
                                                     "Modality LUT cannot be applied - the header is damaged (fix the "
                                                     "attribute, or leave the file out)")
