"""Dataset importers on small trees that mimic each dataset's published layout and column names."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from mammoscreen.cli import main
from mammoscreen.data.exams import load_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.data.importers import ImporterError, import_dataset


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def by_first_image(exams):
    return {next(n for names in e.images.values() for n in names).rsplit("_", 1)[0]: e for e in exams}


def write_csv(path, header, rows, delimiter=","):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)


# ---------------------------------------------------------------- CBIS-DDSM

MASS_HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
CALC_HEADER = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]


def cbis_row(header, patient, side, view, pathology, prefix, number=1):
    subject = f"{prefix}_{patient}_{side}_{view}"
    values = {"patient_id": patient, "left or right breast": side, "image view": view, "abnormality id": number,
              "pathology": pathology, "image file path": f"{subject}/1.3.6.1.4.1.9590.1/1.3.6.1.4.1.9590.2/000000.dcm",
              "cropped image file path": f"{subject}_{number}/1.3/1.4/000000.dcm",
              "ROI mask file path": f"{subject}_{number}/1.3/1.4/000001.dcm"}
    return [values.get(column, "x") for column in header]


def test_cbis_ddsm(tmp_path):
    root = tmp_path / "CBIS-DDSM"
    # TCIA downloads name the folders below the subject differently from the CSV paths
    for subject in ("Mass-Training_P_00001_LEFT_CC", "Mass-Training_P_00001_LEFT_MLO",
                    "Calc-Test_P_00002_RIGHT_CC", "Calc-Training_P_00001_LEFT_CC"):
        touch(root / "CBIS-DDSM" / subject / "07-20-2016-DDSM-12345" / "1.000000-full mammogram images-1" / "1-1.dcm")
    write_csv(root / "mass_case_description_train_set.csv", MASS_HEADER, [
        cbis_row(MASS_HEADER, "P_00001", "LEFT", "CC", "MALIGNANT", "Mass-Training"),
        cbis_row(MASS_HEADER, "P_00001", "LEFT", "MLO", "MALIGNANT", "Mass-Training"),
        cbis_row(MASS_HEADER, "P_00001", "LEFT", "CC", "BENIGN_WITHOUT_CALLBACK", "Mass-Training", 2),
    ])
    write_csv(root / "calc_case_description_train_set.csv", CALC_HEADER, [
        cbis_row(CALC_HEADER, "P_00001", "LEFT", "CC", "BENIGN", "Calc-Training"),  # same image again
    ])
    write_csv(root / "calc_case_description_test_set.csv", CALC_HEADER, [
        cbis_row(CALC_HEADER, "P_00002", "RIGHT", "CC", "BENIGN", "Calc-Test"),
        cbis_row(CALC_HEADER, "P_00003", "RIGHT", "MLO", "MALIGNANT", "Calc-Test"),  # image not downloaded
    ])
    result = import_dataset("cbis-ddsm", root, tmp_path / "out", progress=False)
    exams = {e.images["L-CC"][0][:7] if e.images["L-CC"] else e.images["R-CC"][0][:7]: e for e in result.exams}
    p1, p2 = exams["P_00001"], exams["P_00002"]
    assert p1.images == {"L-CC": ["P_00001_L-CC"], "R-CC": [], "L-MLO": ["P_00001_L-MLO"], "R-MLO": []}
    assert p1.cancer_label == {"left_benign": 1, "right_benign": 0, "left_malignant": 1, "right_malignant": 0,
                               "benign": 1, "malignant": 1, "unknown": 0}
    assert p1.extra == {"split": "train"}
    assert p2.cancer_label["right_benign"] == 1 and p2.cancer_label["malignant"] == 0
    assert p2.extra == {"split": "test"}
    assert "Mass-Training_P_00001_LEFT_CC" in str(result.sources["P_00001_L-CC"])  # not the Calc copy
    assert any("1 listed full mammogram(s) not found" in note for note in result.notes)
    assert [e.to_dict() for e in load_exam_list(tmp_path / "out" / "exam_list.pkl")] == \
           [e.to_dict() for e in result.exams]
    with open(tmp_path / "out" / "sources.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["image"] for r in rows} == {"P_00001_L-CC", "P_00001_L-MLO", "P_00002_R-CC"}


def test_cbis_ddsm_without_tables(tmp_path):
    with pytest.raises(ImporterError, match="no CBIS-DDSM case-description CSV"):
        import_dataset("cbis-ddsm", tmp_path, tmp_path / "out", progress=False)


def test_cbis_ddsm_wrong_columns(tmp_path):
    write_csv(tmp_path / "mass_case_description_train_set.csv", ["patient", "side"], [["P_1", "LEFT"]])
    with pytest.raises(ImporterError, match="missing column.*'left or right breast'"):
        import_dataset("cbis-ddsm", tmp_path, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- INbreast

INBREAST_HEADER = ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR",
                   "Bi-Rads"]


def test_inbreast(tmp_path):
    root = tmp_path / "INbreast Release 1.0"
    cases = [  # file id, patient code, side, view (table / file name), BI-RADS
        ("20586908", "6c613a14b80a8591", "R", "CC", "CC", "2"),
        ("20586960", "6c613a14b80a8591", "R", "MLO", "ML", "4c"),
        ("20586934", "6c613a14b80a8591", "L", "CC", "CC", "1"),
        ("22678622", "1f52a7f7e2f4b56b", "L", "MLO", "ML", "3"),
        ("22678646", "1f52a7f7e2f4b56b", "R", "CC", "CC", "6"),
        ("99999999", "ffffffffffffffff", "L", "CC", "CC", "5"),  # no DICOM file
    ]
    rows = []
    for file_id, patient, side, view, file_view, birads in cases:
        if file_id != "99999999":
            touch(root / "AllDICOMs" / f"{file_id}_{patient}_MG_{side}_{file_view}_ANON.dcm")
        rows.append(["removed", "removed", side, view, "201001", file_id, "     ", birads])
    rows.append(["", "", "", "", "", "", "", ""])  # the sheet's trailing blank line
    write_csv(root / "INbreast.csv", INBREAST_HEADER, rows, delimiter=";")
    result = import_dataset("inbreast", root, tmp_path / "out", progress=False)
    exams = by_first_image(result.exams)
    first = exams["6c613a14b80a8591_201001_L-CC"[:-5]]
    assert first.images == {"L-CC": ["6c613a14b80a8591_201001_L-CC"], "R-CC": ["6c613a14b80a8591_201001_R-CC"],
                            "L-MLO": [], "R-MLO": ["6c613a14b80a8591_201001_R-MLO"]}
    # right breast: BI-RADS 2 and 4c -> benign and malignant; left: BI-RADS 1 -> negative
    assert first.cancer_label == {"left_benign": 0, "right_benign": 1, "left_malignant": 0, "right_malignant": 1,
                                  "benign": 1, "malignant": 1, "unknown": 0}
    second = exams["1f52a7f7e2f4b56b_201001"]
    assert second.cancer_label["left_benign"] == 1 and second.cancer_label["left_malignant"] == 0
    assert second.cancer_label["right_malignant"] == 1  # BI-RADS 6
    assert str(result.sources["6c613a14b80a8591_201001_R-MLO"]).endswith("20586960_6c613a14b80a8591_MG_R_ML_ANON.dcm")
    assert any("1 table row(s) without a DICOM file" in n for n in result.notes)


# ---------------------------------------------------------------- CMMD

def test_cmmd_reads_views_from_dicom_headers(tmp_path, make_dicom):
    root = tmp_path / "manifest-1616439774456"
    for patient, side, view in (("D1-0001", "L", "CC"), ("D1-0001", "L", "MLO"), ("D1-0001", "R", "CC"),
                                ("D2-0002", "R", "MLO")):
        path = root / "CMMD" / patient / f"07-18-2010-NA-{patient}" / "1.000000-NA-1" / f"1-{side}{view}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        make_dicom(path, side=side, view=view, study=patient, view_code=True)
    import pydicom

    for path in (root / "CMMD").rglob("*.dcm"):  # CMMD's Patient ID is the clinical sheet's ID1
        ds = pydicom.dcmread(path)
        ds.PatientID = path.relative_to(root / "CMMD").parts[0]
        del ds.ViewPosition  # CMMD states the view in the View Code Sequence
        ds.save_as(path, enforce_file_format=True)
    pd.DataFrame({"ID1": ["D1-0001", "D2-0002", "D2-0099"], "LeftRight": ["L", "R", "L"], "Age": [44, 50, 61],
                  "number": [2, 2, 2], "abnormality": ["calcification", "mass", "mass"],
                  "classification": ["Malignant", "Benign", "Benign"], "subtype": ["Luminal A", "", ""]}
                 ).to_excel(root / "CMMD_clinicaldata_revision.xlsx", index=False)
    result = import_dataset("cmmd", root, tmp_path / "out", progress=False)
    assert len(result.exams) == 2
    labels = sorted((tuple(sorted(k for k, v in e.cancer_label.items() if v)), sum(map(len, e.images.values())))
                    for e in result.exams)
    assert labels == [(("benign", "right_benign"), 1), (("left_malignant", "malignant"), 3)]
    d1 = next(e for e in result.exams if e.cancer_label["malignant"])
    assert d1.images["L-MLO"] and d1.images["R-CC"] and not d1.images["R-MLO"]
    assert d1.cancer_label["right_malignant"] == 0  # imaged, not in the sheet: negative
    assert any("1 patient(s) in the clinical sheet without images" in n for n in result.notes)


# ---------------------------------------------------------------- VinDr-Mammo

def test_vindr_mammo(tmp_path):
    root = tmp_path / "vindr-mammo" / "1.0.0"
    header = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
              "breast_birads", "breast_density", "split"]
    rows = [
        ["s1", "a", "i1", "L", "CC", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
        ["s1", "a", "i2", "L", "MLO", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
        ["s1", "b", "i3", "R", "CC", 3518, 2800, "BI-RADS 4", "DENSITY C", "training"],
        ["s1", "b", "i4", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C", "training"],
        ["s2", "c", "i5", "L", "CC", 3518, 2800, "BI-RADS 3", "DENSITY B", "test"],
        ["s2", "c", "i6", "R", "XCCL", 3518, 2800, "BI-RADS 1", "DENSITY B", "test"],
    ]
    write_csv(root / "breast-level_annotations.csv", header, rows)
    for study, image in (("s1", "i1"), ("s1", "i2"), ("s1", "i3"), ("s1", "i4"), ("s2", "i5"), ("s2", "i6")):
        touch(root / "images" / study / f"{image}.dicom")
    result = import_dataset("vindr-mammo", root, tmp_path / "out", progress=False)
    s1, s2 = result.exams
    assert s1.images == {"L-CC": ["s1_L-CC"], "R-CC": ["s1_R-CC"], "L-MLO": ["s1_L-MLO"], "R-MLO": ["s1_R-MLO"]}
    assert s1.cancer_label["right_malignant"] == 1 and s1.cancer_label["left_malignant"] == 0
    assert s1.cancer_label["benign"] == 0 and s1.extra == {"split": "training"}
    assert s2.cancer_label["left_benign"] == 1 and s2.cancer_label["malignant"] == 0
    assert s2.images["R-CC"] == [] and s2.extra == {"split": "test"}
    assert any("1 image(s) with views other than CC/MLO" in n for n in result.notes)


# ---------------------------------------------------------------- RSNA

RSNA_HEADER = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive",
               "BIRADS", "implant", "density", "machine_id", "difficult_negative_case"]


def rsna_tree(tmp_path, make_dicom, breast):
    root = tmp_path / "rsna-breast-cancer-detection"
    rows = [
        [2, 10006, 462822612, "L", "CC", 61, 0, 0, 0, "", 0, "", 29, "False"],
        [2, 10006, 1459541791, "L", "MLO", 61, 0, 0, 0, "", 0, "", 29, "False"],
        [2, 10006, 1864590858, "R", "MLO", 61, 1, 1, 1, 0, 0, "", 29, "False"],
        [2, 10006, 1874946579, "R", "CC", 61, 1, 1, 1, 0, 0, "", 29, "False"],
        [1, 10011, 220375232, "L", "CC", 55, 0, 1, 0, 0, 0, "C", 21, "True"],
        [1, 10011, 270344397, "L", "AT", 55, 0, 1, 0, 0, 0, "C", 21, "True"],
        [1, 10011, 541722628, "R", "CC", 55, 0, 0, 0, 1, 0, "C", 21, "False"],
    ]
    write_csv(root / "train.csv", RSNA_HEADER, rows)
    for site, patient, image, side, view, *_ in rows:
        pixels = breast(side, shape=(300, 220))
        if site == 2:  # this site stores MONOCHROME1: dark breast on a white background
            pixels = 4095 - pixels
        make_dicom(root / "train_images" / str(patient) / f"{image}.dcm", pixels,
                   side=side, view=view if view in ("CC", "MLO") else "CC", study=str(patient),
                   photometric="MONOCHROME1" if site == 2 else "MONOCHROME2")
    return root


def test_rsna(tmp_path, make_dicom, breast):
    root = rsna_tree(tmp_path, make_dicom, breast)
    result = import_dataset("rsna", root, tmp_path / "out", progress=False)
    first, second = result.exams
    assert first.images == {"L-CC": ["10006_L-CC"], "R-CC": ["10006_R-CC"], "L-MLO": ["10006_L-MLO"],
                            "R-MLO": ["10006_R-MLO"]}
    assert first.cancer_label == {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 1,
                                  "benign": 0, "malignant": 1, "unknown": 0}
    # biopsied, not cancer -> benign; the AT view is left out but its label counts
    assert second.cancer_label["left_benign"] == 1 and second.cancer_label["malignant"] == 0
    assert second.images["L-MLO"] == [] and second.images["L-CC"] == ["10011_L-CC"]
    assert not (tmp_path / "out" / "images").exists()


def test_rsna_with_conversion_and_cli(tmp_path, make_dicom, breast, capsys):
    root = rsna_tree(tmp_path, make_dicom, breast)
    (root / "train_images" / "10011" / "541722628.dcm").write_bytes(b"broken")
    code = main(["import-dataset", "rsna", "--root", str(root), "--output-dir", str(tmp_path / "out"), "--convert",
                 "--quiet", "--workers", "1"])
    assert code == 0
    out = capsys.readouterr()
    assert "rsna: 2 exam(s), 6 image(s)" in out.out
    assert "10011_R-CC" in out.err  # the broken file is reported and left out
    exams = load_exam_list(tmp_path / "out" / "exam_list.pkl")
    assert exams[1].images["R-CC"] == []
    # MONOCHROME1 site-2 images come out the same as MONOCHROME2 ones would: breast bright, background 0
    left_cc = read_png(tmp_path / "out" / "images" / "10006_L-CC.png")
    assert left_cc.dtype == np.uint16 and left_cc[0, -1] == 0 and left_cc.max() > 40000


def test_unknown_dataset_and_missing_root(tmp_path):
    with pytest.raises(ImporterError, match="unknown dataset 'ddsm'"):
        import_dataset("ddsm", tmp_path, tmp_path / "out")
    with pytest.raises(ImporterError, match="dataset root not found"):
        import_dataset("rsna", tmp_path / "missing", tmp_path / "out")
    assert main(["import-dataset", "rsna", "--root", str(tmp_path), "--output-dir", str(tmp_path / "o"),
                 "--quiet"]) == 2


def test_cli_lists_every_importer():
    from mammoscreen.cli.ingest import DATASETS
    from mammoscreen.data.importers import IMPORTERS

    assert sorted(DATASETS) == sorted(IMPORTERS)
