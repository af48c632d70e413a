"""Fake copies of the five public datasets' published layouts, generated in code: the real file and folder
names, column names and value spellings, with tiny DICOM files (mammoscreen.data.dicom_write) where the
images go. Nothing is copied from the datasets themselves.

Each builder writes a tree under ``tmp_path`` and returns the folder a user would pass as ``--root``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mammoscreen.data.dicom_write import MG_FOR_PROCESSING, mammogram_dataset, save_dicom, uid_from


def tiny_pixels(side: str, shape: tuple[int, int] = (48, 36), value: int = 2000) -> np.ndarray:
    """A small bright half-disc on the chest-wall side (left edge for left breasts), zero elsewhere."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    image = np.zeros(shape, dtype=np.uint16)
    image[((rows - shape[0] / 2) / (shape[0] * 0.45)) ** 2 + (cols / (shape[1] * 0.7)) ** 2 <= 1] = value
    image[image > 0] += (rows[image > 0] % 5).astype(np.uint16)
    return image if side == "L" else image[:, ::-1].copy()


def tiny_mammogram(path: Path, side: str, view: str, study: str, *, patient: str | None = None,
                   header: dict[str, Any] | None = None, for_processing: bool = False,
                   pixels: np.ndarray | None = None, **kwargs: Any) -> Path:
    """Write a tiny MG DICOM (For Presentation unless ``for_processing``) with extra ``header`` attributes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = dict(laterality=side, view=view if view in ("CC", "MLO", "ML", "LM") else "CC",
                                   study_uid=uid_from(study), patient_id=patient or study,
                                   sop_uid=uid_from(study, side, view, path.name), extra=dict(header or {}))
    if for_processing:
        options["sop_class_uid"] = MG_FOR_PROCESSING
    options.update(kwargs)
    return save_dicom(mammogram_dataset(tiny_pixels(side) if pixels is None else pixels, **options), path)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# ---------------------------------------------------------------- CBIS-DDSM (TCIA)

MASS_HEADER = ["patient_id", "breast_density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "mass shape", "mass margins", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
CALC_HEADER = ["patient_id", "breast density", "left or right breast", "image view", "abnormality id",
               "abnormality type", "calc type", "calc distribution", "assessment", "pathology", "subtlety",
               "image file path", "cropped image file path", "ROI mask file path"]
SIDE_WORD = {"L": "LEFT", "R": "RIGHT"}


def cbis_row(header: list[str], prefix: str, patient: str, side: str, view: str, pathology: str, density: int,
             assessment: int, number: int = 1) -> list[Any]:
    """One case-description row; ``prefix`` e.g. 'Mass-Training' names the subject folder as TCIA does."""
    subject = f"{prefix}_{patient}_{SIDE_WORD[side]}_{view}"
    kind = "mass" if prefix.startswith("Mass") else "calcification"
    values = {"patient_id": patient, "breast_density": density, "breast density": density,
              "left or right breast": SIDE_WORD[side], "image view": view, "abnormality id": number,
              "abnormality type": kind, "assessment": assessment, "pathology": pathology, "subtlety": 3,
              "mass shape": "OVAL", "mass margins": "CIRCUMSCRIBED", "calc type": "PLEOMORPHIC",
              "calc distribution": "CLUSTERED",
              "image file path": f"{subject}/1.3.6.1.4.1.9590.100.1.2.1/1.3.6.1.4.1.9590.100.1.2.2/000000.dcm",
              "cropped image file path": f"{subject}_{number}/1.3.6.1/1.3.6.2/000000.dcm",
              "ROI mask file path": f"{subject}_{number}/1.3.6.1/1.3.6.2/000001.dcm"}
    return [values[column] for column in header]


def cbis_tiff_subject(root: Path, prefix: str, patient: str, side: str, view: str, **kwargs: Any) -> Path:
    """The full-mammogram DICOM as TCIA's downloads lay it out (folder names unlike the CSV's sub-path)."""
    subject = f"{prefix}_{patient}_{SIDE_WORD[side]}_{view}"
    path = root / "CBIS-DDSM" / subject / "07-20-2016-DDSM-74994" / "1.000000-full mammogram images-24515" / "1-1.dcm"
    return tiny_mammogram(path, side, view, subject, patient=patient, **kwargs)


def cbis_ddsm(tmp_path: Path, *, manifest: bool = False) -> Path:
    """A CBIS-DDSM download: P_00001 (mass + calcification rows of one image, train), P_00002 (test), P_00003
    (listed, not downloaded), P_00004 in both tables with different images, P_00005 with one image in both."""
    top = tmp_path / "cbis"
    root = top / "manifest-ZkhPvrLo5216730872708713142" if manifest else top
    for prefix, patient, side, view in (("Mass-Training", "P_00001", "L", "CC"),
                                        ("Mass-Training", "P_00001", "L", "MLO"),
                                        ("Calc-Training", "P_00001", "L", "CC"), ("Calc-Test", "P_00002", "R", "CC"),
                                        ("Mass-Training", "P_00004", "L", "CC"), ("Calc-Test", "P_00004", "R", "MLO"),
                                        ("Mass-Training", "P_00005", "L", "CC")):
        cbis_tiff_subject(root, prefix, patient, side, view)
    write_csv(root / "mass_case_description_train_set.csv", MASS_HEADER, [
        cbis_row(MASS_HEADER, "Mass-Training", "P_00001", "L", "CC", "MALIGNANT", 3, 5),
        cbis_row(MASS_HEADER, "Mass-Training", "P_00001", "L", "MLO", "MALIGNANT", 3, 5),
        cbis_row(MASS_HEADER, "Mass-Training", "P_00001", "L", "CC", "BENIGN_WITHOUT_CALLBACK", 3, 2, 2),
        cbis_row(MASS_HEADER, "Mass-Training", "P_00004", "L", "CC", "BENIGN", 2, 3),
        cbis_row(MASS_HEADER, "Mass-Training", "P_00005", "L", "CC", "BENIGN", 4, 4),
    ])
    write_csv(root / "calc_case_description_train_set.csv", CALC_HEADER, [
        cbis_row(CALC_HEADER, "Calc-Training", "P_00001", "L", "CC", "BENIGN", 3, 4),  # same image again
    ])
    write_csv(root / "calc_case_description_test_set.csv", CALC_HEADER, [
        cbis_row(CALC_HEADER, "Calc-Test", "P_00002", "R", "CC", "BENIGN", 1, 2),
        cbis_row(CALC_HEADER, "Calc-Test", "P_00003", "R", "MLO", "MALIGNANT", 2, 5),  # image not downloaded
        cbis_row(CALC_HEADER, "Calc-Test", "P_00004", "R", "MLO", "MALIGNANT", 2, 4),
        cbis_row(CALC_HEADER, "Calc-Test", "P_00005", "L", "CC", "MALIGNANT", 4, 5),
    ])
    return top


# ---------------------------------------------------------------- INbreast

INBREAST_HEADER = ["Patient ID", "Patient age", "Laterality", "View", "Acquisition date", "File Name", "ACR",
                   "Bi-Rads"]
# file id, patient code, side, view in the table, view in the file name, ACR, BI-RADS
INBREAST_CASES = [
    ("20586908", "6c613a14b80a8591", "R", "CC", "CC", "2", "2"),
    ("20586960", "6c613a14b80a8591", "R", "MLO", "ML", "2", "4c"),
    ("20586934", "6c613a14b80a8591", "L", "CC", "CC", "2", "1"),
    ("22678622", "1f52a7f7e2f4b56b", "L", "MLO", "ML", "3", "3"),
    ("22678646", "1f52a7f7e2f4b56b", "R", "CC", "CC", "4", "6"),
    ("22678694", "1f52a7f7e2f4b56b", "L", "FB", "FB", "3", "5"),  # an INbreast 'FB' view
    ("99999999", "ffffffffffffffff", "L", "CC", "CC", "1", "5"),  # no DICOM file
]


def inbreast(tmp_path: Path, *, release_folder: bool = True) -> Path:
    """An INbreast release: 'INbreast Release 1.0/' with AllDICOMs and the ';'-separated INbreast.csv."""
    top = tmp_path / "inbreast"
    root = top / "INbreast Release 1.0" if release_folder else top
    rows = []
    for file_id, patient, side, view, file_view, acr, birads in INBREAST_CASES:
        if file_id != "99999999":
            tiny_mammogram(root / "AllDICOMs" / f"{file_id}_{patient}_MG_{side}_{file_view}_ANON.dcm", side,
                           file_view if file_view != "ML" else "MLO", patient,
                           header={"Manufacturer": "SIEMENS", "ManufacturerModelName": "MAMMOMAT Inspiration"})
        rows.append(["removed", "removed", side, view, "201001", file_id, acr, birads])
    rows.append(["", "", "", "", "", "", "", ""])  # the sheet's trailing blank line
    write_csv(root / "INbreast.csv", INBREAST_HEADER, rows, delimiter=";")
    (root / "AllROI").mkdir(exist_ok=True)
    (root / "AllXML").mkdir(exist_ok=True)
    return top if release_folder else root


# ---------------------------------------------------------------- CMMD (TCIA)

def cmmd(tmp_path: Path) -> Path:
    """A CMMD download: the TCIA manifest folder with CMMD/<patient>/<study>/<series>/1-N.dcm (views in the View
    Code Sequence only, Patient ID = ID1) and the clinical sheet beside the CMMD folder."""
    root = tmp_path / "manifest-1616439774456"
    for patient, side, view, number in (("D1-0001", "L", "CC", 1), ("D1-0001", "L", "MLO", 2),
                                        ("D1-0001", "R", "CC", 3), ("D2-0002", "R", "MLO", 1)):
        path = root / "CMMD" / patient / f"07-18-2010-NA-NA-{patient[-4:]}" / "1.000000-NA-70244" / f"1-{number}.dcm"
        tiny_mammogram(path, side, view, patient, patient=patient,
                       header={"Manufacturer": "GE MEDICAL SYSTEMS", "ManufacturerModelName": "Senographe DS",
                               "PatientAge": "044Y" if patient == "D1-0001" else "050Y"})
    import pydicom

    for path in (root / "CMMD").rglob("*.dcm"):  # CMMD states the view in the View Code Sequence only
        ds = pydicom.dcmread(path)
        del ds.ViewPosition
        ds.save_as(path, enforce_file_format=True)
    pd.DataFrame({"ID1": ["D1-0001", "D2-0002", "D2-0099"], "LeftRight": ["L", "R", "L"], "Age": [44, 50, 61],
                  "number": [2, 2, 2], "abnormality": ["both", "mass", "calcification"],
                  "classification": ["Malignant", "Benign", "Benign"], "subtype": ["Luminal A", None, None]}
                 ).to_excel(root / "CMMD_clinicaldata_revision.xlsx", index=False)
    return root


# ---------------------------------------------------------------- VinDr-Mammo (PhysioNet)

VINDR_HEADER = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                "breast_birads", "breast_density", "split"]
VINDR_FINDING_HEADER = ["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                        "breast_birads", "breast_density", "finding_categories", "finding_birads", "xmin", "ymin",
                        "xmax", "ymax", "split"]
VINDR_ROWS = [
    ["s1", "a", "i1", "L", "CC", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
    ["s1", "a", "i2", "L", "MLO", 3518, 2800, "BI-RADS 1", "DENSITY C", "training"],
    ["s1", "b", "i3", "R", "CC", 3518, 2800, "BI-RADS 4", "DENSITY C", "training"],
    ["s1", "b", "i4", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C", "training"],
    ["s2", "c", "i5", "L", "CC", 3518, 2800, "BI-RADS 3", "DENSITY B", "test"],
    ["s2", "c", "i6", "R", "XCCL", 3518, 2800, "BI-RADS 1", "DENSITY B", "test"],
    ["s2", "c", "i7", "L", "MLO", 3518, 2800, "BI-RADS 3", "DENSITY B", "test"],  # a For Processing image
]


def vindr(tmp_path: Path) -> Path:
    """PhysioNet's vindr-mammo/1.0.0/ (the folder a user may pass is vindr-mammo/, one above)."""
    top = tmp_path / "vindr-mammo"
    root = top / "1.0.0"
    write_csv(root / "breast-level_annotations.csv", VINDR_HEADER, VINDR_ROWS)
    write_csv(root / "finding_annotations.csv", VINDR_FINDING_HEADER, [
        ["s1", "b", "i3", "R", "CC", 3518, 2800, "BI-RADS 4", "DENSITY C", "['Mass']", "BI-RADS 4", 10, 10, 20, 20,
         "training"],
        ["s1", "b", "i3", "R", "CC", 3518, 2800, "BI-RADS 4", "DENSITY C", "['Suspicious Calcification']",
         "BI-RADS 4", 30, 30, 35, 35, "training"],
        ["s1", "b", "i4", "R", "MLO", 3518, 2800, "BI-RADS 4", "DENSITY C", "['Focal Asymmetry', 'Mass']",
         "BI-RADS 4", 10, 10, 20, 20, "training"],
        ["s1", "a", "i1", "L", "CC", 3518, 2800, "BI-RADS 1", "DENSITY C", "['No Finding']", "", "", "", "", "",
         "training"],
    ])
    for study, _, image, side, view, *_ in VINDR_ROWS:
        tiny_mammogram(root / "images" / study / f"{image}.dicom", side, view, study, for_processing=image == "i7",
                       header={"Manufacturer": "Planmed", "ManufacturerModelName": "Planmed Nuance",
                               "PatientAge": "053Y" if study == "s1" else "047Y"})
    return top


# ---------------------------------------------------------------- RSNA (Kaggle)

RSNA_HEADER = ["site_id", "patient_id", "image_id", "laterality", "view", "age", "cancer", "biopsy", "invasive",
               "BIRADS", "implant", "density", "machine_id", "difficult_negative_case"]
RSNA_ROWS = [
    [2, 10006, 462822612, "L", "CC", "61.0", 0, 0, 0, "", 0, "", 29, "False"],
    [2, 10006, 1459541791, "L", "MLO", "61.0", 0, 0, 0, "", 0, "", 29, "False"],
    [2, 10006, 1864590858, "R", "MLO", "61.0", 1, 1, 1, 0, 0, "", 29, "False"],
    [2, 10006, 1874946579, "R", "CC", "61.0", 1, 1, 1, 0, 0, "", 29, "False"],
    [1, 10011, 220375232, "L", "CC", "55.0", 0, 1, 0, 0, 1, "C", 21, "True"],
    [1, 10011, 270344397, "L", "AT", "55.0", 0, 1, 0, 0, 1, "C", 21, "True"],
    [1, 10011, 541722628, "R", "CC", "55.0", 0, 0, 0, 1, 1, "C", 21, "False"],
]


def rsna(tmp_path: Path) -> Path:
    """The competition data folder: train.csv and train_images/<patient_id>/<image_id>.dcm (site 2 MONOCHROME1)."""
    root = tmp_path / "rsna-breast-cancer-detection"
    write_csv(root / "train.csv", RSNA_HEADER, RSNA_ROWS)
    for site, patient, image, side, view, *_ in RSNA_ROWS:
        pixels = tiny_pixels(side)
        if site == 2:  # this site stores MONOCHROME1: dark breast on a white background
            pixels = (4095 - pixels).astype(np.uint16)
        tiny_mammogram(root / "train_images" / str(patient) / f"{image}.dcm", side, view, str(patient), pixels=pixels,
                       photometric="MONOCHROME1" if site == 2 else "MONOCHROME2",
                       header={"Manufacturer": "HOLOGIC, Inc." if site == 1 else "SIEMENS"})
    return root
