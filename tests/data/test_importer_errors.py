"""Importers on broken downloads: every error names the file or folder and says what is wrong.

Each importer is given the ways a download goes wrong in practice: the metadata table missing, in another
layout, unreadable or not a table at all; the images missing; a damaged file among good ones. The
result is an :class:`ImporterError` (one line from the command line, exit 2) or, where the rest of the
data can still be used, an import with a note that names what was left out.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from mammoscreen.cli import main
from mammoscreen.data.importers import ImporterError, import_dataset

INBREAST_COLUMNS = "Laterality;View;File Name;Bi-Rads"
CMMD_SHEET = "CMMD_clinicaldata_revision"
VINDR_CSV = "breast-level_annotations.csv"


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def fails(dataset: str, root: Path, tmp_path: Path, *fragments: str) -> str:
    with pytest.raises(ImporterError) as error:
        import_dataset(dataset, root, tmp_path / "out", progress=False)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert not (tmp_path / "out" / "exam_list.pkl").exists()
    return message


# ---------------------------------------------------------------- INbreast

def test_inbreast_without_its_table(tmp_path):
    (tmp_path / "AllDICOMs").mkdir()
    fails("inbreast", tmp_path, tmp_path, str(tmp_path), "the INbreast table not found", "INbreast.csv",
          "INbreast.xls")


def test_inbreast_without_the_dicom_folder(tmp_path):
    write(tmp_path / "INbreast.csv", f"{INBREAST_COLUMNS}\nL;CC;20586934;1\n")
    fails("inbreast", tmp_path, tmp_path, str(tmp_path), "AllDICOMs folder not found")


def test_inbreast_table_saved_with_commas(tmp_path):
    # The published CSV uses semicolons; a re-saved comma-separated copy has none of the columns.
    table = write(tmp_path / "INbreast.csv", INBREAST_COLUMNS.replace(";", ",") + "\nL,CC,20586934,1\n")
    (tmp_path / "AllDICOMs").mkdir()
    fails("inbreast", tmp_path, tmp_path, str(table), "missing column(s) 'Laterality'", "published file")


@pytest.mark.parametrize("name, data", [("INbreast.xls", b"\x00not a spreadsheet" * 8),
                                        ("INbreast.csv", b"\xff\xfe\x00\x80\x81 binary")])
def test_inbreast_unreadable_table(tmp_path, name, data):
    table = write(tmp_path / name, data)
    (tmp_path / "AllDICOMs").mkdir()
    fails("inbreast", tmp_path, tmp_path, str(table), "cannot read the table")


def test_inbreast_rows_without_images(tmp_path):
    write(tmp_path / "INbreast.csv", f"{INBREAST_COLUMNS}\nL;CC;20586934;1\nR;CC;20586908;2\n")
    (tmp_path / "AllDICOMs").mkdir()
    write(tmp_path / "AllDICOMs" / "readme.txt", "other files are ignored")
    fails("inbreast", tmp_path, tmp_path, "no inbreast images found", "2 table row(s) without a DICOM file",
          str(tmp_path / "AllDICOMs"))


def test_inbreast_unusable_rows_are_notes(tmp_path, make_dicom):
    write(tmp_path / "INbreast.csv", f"{INBREAST_COLUMNS}\nL;CC;1;x\nB;CC;2;2\nR;CC;3;4a\n")
    (tmp_path / "AllDICOMs").mkdir()
    for file_id, side in (("1", "L"), ("2", "L"), ("3", "R")):  # every header is read: real DICOMs
        make_dicom(tmp_path / "AllDICOMs" / f"{file_id}_0123abcd_MG_{side}_CC_ANON.dcm", side=side)
    result = import_dataset("inbreast", tmp_path, tmp_path / "out", progress=False)
    # the file name's laterality stands in for the table's unreadable one, and the note says so
    assert sum(len(v) for e in result.exams for v in e.images.values()) == 3
    assert any("2_0123abcd_MG_L_CC_ANON.dcm: laterality 'B' in the table not understood; the file name's (L) used"
               in note for note in result.notes), result.notes
    assert any("1 image(s) without a readable BI-RADS: counted as negative" in note for note in result.notes)


# ---------------------------------------------------------------- CMMD

def test_cmmd_without_its_sheet(tmp_path):
    # Nothing of the dataset at the root: the message says what a CMMD folder holds.
    fails("cmmd", tmp_path, tmp_path, str(tmp_path), "no cmmd layout here", f"{CMMD_SHEET}.xlsx")


def test_cmmd_sheet_with_other_columns(tmp_path):
    sheet = write(tmp_path / f"{CMMD_SHEET}.csv", "ID,Side\nD1-0001,L\n")
    fails("cmmd", tmp_path, tmp_path, str(sheet), "missing column(s) 'ID1', 'LeftRight', 'classification'",
          "found 'ID', 'Side'")


def test_cmmd_sheet_that_is_not_a_spreadsheet(tmp_path):
    sheet = write(tmp_path / f"{CMMD_SHEET}.xlsx", b"an HTML error page saved as .xlsx")
    fails("cmmd", tmp_path, tmp_path, str(sheet), "cannot read the table")


def test_cmmd_damaged_spreadsheet(tmp_path):
    sheet = write(tmp_path / f"{CMMD_SHEET}.xlsx", b"PK\x03\x04" + b"truncated download" * 4)
    fails("cmmd", tmp_path, tmp_path, str(sheet), "cannot read the table")


def test_cmmd_without_images(tmp_path):
    write(tmp_path / f"{CMMD_SHEET}.csv", "ID1,LeftRight,classification\nD1-0001,L,Malignant\n")
    fails("cmmd", tmp_path, tmp_path, "no cmmd images found", "1 patient(s) in the clinical sheet without images",
          "D1-0001")


TRUNCATED_UID = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")  # the cut-off header


def _cmmd_with_one_good_image(tmp_path, make_dicom) -> tuple[Path, bytes]:
    root = tmp_path / "CMMD"
    write(root / f"{CMMD_SHEET}.csv", "ID1,LeftRight,classification\nD1-0001,L,Malignant\n")
    path = make_dicom(root / "D1-0001" / "1-1.dcm", side="L", view="CC", study="D1-0001", view_code=True)
    ds = pydicom.dcmread(path)
    ds.PatientID = "D1-0001"
    ds.save_as(path, enforce_file_format=True)
    return root, path.read_bytes()


@TRUNCATED_UID
def test_cmmd_names_a_damaged_dicom_and_imports_the_rest(tmp_path, make_dicom):
    root, good = _cmmd_with_one_good_image(tmp_path, make_dicom)
    write(root / "D1-0001" / "1-2.dcm", good[:400])  # a download cut short inside the header
    result = import_dataset("cmmd", root, tmp_path / "out", progress=False)
    assert sum(len(v) for e in result.exams for v in e.images.values()) == 1
    assert any("1-2.dcm" in note for note in result.notes), result.notes


@TRUNCATED_UID
def test_cmmd_damaged_dicom_does_not_stop_the_import(tmp_path, make_dicom):
    root, good = _cmmd_with_one_good_image(tmp_path, make_dicom)
    write(root / "D1-0001" / "1-2.dcm", good[:400])
    result = import_dataset("cmmd", root, tmp_path / "out", progress=False)
    (exam,) = result.exams
    assert exam.images["L-CC"] and exam.cancer_label["left_malignant"] == 1


# ---------------------------------------------------------------- VinDr-Mammo

def test_vindr_without_its_table(tmp_path):
    (tmp_path / "images").mkdir()  # the images without their table
    fails("vindr-mammo", tmp_path, tmp_path, str(tmp_path), f"{VINDR_CSV} not found")


def test_vindr_table_with_other_columns(tmp_path):
    table = write(tmp_path / VINDR_CSV, "study_id,image_id\ns1,i1\n")
    fails("vindr-mammo", tmp_path, tmp_path, str(table), "missing column(s) 'laterality', 'view_position', "
          "'breast_birads'")


def test_vindr_empty_table(tmp_path):
    table = write(tmp_path / VINDR_CSV, b"")
    fails("vindr-mammo", tmp_path, tmp_path, str(table), "cannot read the table")


def test_vindr_without_images(tmp_path):
    write(tmp_path / VINDR_CSV, "study_id,image_id,laterality,view_position,breast_birads\n"
                                "s1,i1,L,CC,BI-RADS 1\ns1,i2,R,CC,BI-RADS 4\ns1,i3,R,XCCL,BI-RADS 4\n")
    fails("vindr-mammo", tmp_path, tmp_path, "no vindr-mammo images found", "2 listed image(s) not found under "
          + str(tmp_path / "images"), "1 image(s) with views other than CC/MLO")


# ---------------------------------------------------------------- RSNA

def test_rsna_without_its_table(tmp_path):
    (tmp_path / "train_images").mkdir()  # the images without their table
    fails("rsna", tmp_path, tmp_path, str(tmp_path), "train.csv not found")


def test_rsna_without_images(tmp_path):
    write(tmp_path / "train.csv", "patient_id,image_id,laterality,view,cancer,biopsy\n1,2,L,CC,0,0\n")
    fails("rsna", tmp_path, tmp_path, "no rsna images found", "1 listed image(s) not found under "
          + str(tmp_path / "train_images"))


# ---------------------------------------------------------------- from the command line

@pytest.mark.parametrize("dataset, table, data, fragment", [
    ("inbreast", "INbreast.csv", "Laterality,View\n", "missing column(s)"),
    ("cmmd", f"{CMMD_SHEET}.csv", "ID1,LeftRight,classification\n", "no cmmd images found"),
    ("vindr-mammo", VINDR_CSV, "", "cannot read the table"),
    ("cbis-ddsm", "mass_case_description_train_set.csv", "patient,side\n", "missing column(s)"),
    ("rsna", "train.csv", "patient_id\n", "missing column(s)"),
])
def test_import_command_errors_are_one_line(tmp_path, capsys, dataset, table, data, fragment):
    write(tmp_path / "root" / table, data)
    (tmp_path / "root" / "AllDICOMs").mkdir()
    assert main(["import-dataset", dataset, "--root", str(tmp_path / "root"), "--output-dir", str(tmp_path / "out"),
                 "--quiet"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mammoscreen import-dataset: error: ") and fragment in lines[0]
