"""Dataset importers on fake copies of each dataset's published layout (tests/data/fake_layouts.py): labels,
metadata (issue 15.1), and the real-layout findings of issue 11.7 (a)-(e)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import fake_layouts as fake
from mammoscreen.cli import main
from mammoscreen.data.dicom import AcceptPolicy
from mammoscreen.data.exams import load_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.data.importers import ImporterError, import_dataset, locate_root
from mammoscreen.data.metadata import check_metadata, exam_metadata


def by_exam(exams):
    """{exam prefix of the first image name: exam}."""
    return {next(n for names in e.images.values() for n in names).rsplit("_", 1)[0]: e for e in exams}


def labels_of(exam):
    return {k for k, v in exam.cancer_label.items() if v}


def assert_round_trip(result, out):
    """The exam list on disk is what the importer returned, metadata included (pickle and JSON alike)."""
    from mammoscreen.data.exams import save_exam_list

    on_disk = [e.to_dict() for e in load_exam_list(out / "exam_list.pkl")]
    assert on_disk == [e.to_dict() for e in result.exams]
    save_exam_list(result.exams, out / "copy.json")
    assert [e.to_dict() for e in load_exam_list(out / "copy.json")] == on_disk
    for exam in result.exams:
        check_metadata(exam_metadata(exam), exam.image_names())


# ---------------------------------------------------------------- CBIS-DDSM

def test_cbis_ddsm(tmp_path):
    result = import_dataset("cbis-ddsm", fake.cbis_ddsm(tmp_path), tmp_path / "out", progress=False)
    exams = by_exam(result.exams)
    assert sorted(exams) == ["P_00001", "P_00002", "P_00004", "P_00005"]  # P_00003's image is not downloaded
    p1 = exams["P_00001"]
    assert p1.images == {"L-CC": ["P_00001_L-CC"], "R-CC": [], "L-MLO": ["P_00001_L-MLO"], "R-MLO": []}
    assert p1.cancer_label == {"left_benign": 1, "right_benign": 0, "left_malignant": 1, "right_malignant": 0,
                               "benign": 1, "malignant": 1, "unknown": 0}
    assert labels_of(exams["P_00002"]) == {"right_benign", "benign"}
    assert "Mass-Training_P_00001_LEFT_CC" in str(result.sources["P_00001_L-CC"])  # not the Calc copy
    assert any("1 listed full mammogram(s) not found" in note for note in result.notes)
    # per-image metadata: density 1-4 -> A-D from either spelling of the column, the highest assessment,
    # the abnormality types of the image's rows, and the split of the table the rows come from
    assert exam_metadata(p1) == {"dataset": "cbis-ddsm", "images": {
        "P_00001_L-CC": {"density": "C", "birads": "5", "abnormality": "mass+calcification", "split": "train"},
        "P_00001_L-MLO": {"density": "C", "birads": "5", "abnormality": "mass", "split": "train"}}}
    assert exam_metadata(exams["P_00002"])["images"] == {
        "P_00002_R-CC": {"density": "A", "birads": "2", "abnormality": "calcification", "split": "test"}}
    assert "split" not in p1.extra  # no longer one split per exam
    assert_round_trip(result, tmp_path / "out")
    with open(tmp_path / "out" / "sources.csv") as f:
        assert {r["image"] for r in csv.DictReader(f)} == {"P_00001_L-CC", "P_00001_L-MLO", "P_00002_R-CC",
                                                            "P_00004_L-CC", "P_00004_R-MLO", "P_00005_L-CC"}


def test_cbis_ddsm_patients_in_both_tables_keep_the_split_of_each_image(tmp_path):
    """Issue 11.7 (a): a patient in the training and the test table used to get one split for the whole exam,
    from whichever table was read first."""
    result = import_dataset("cbis-ddsm", fake.cbis_ddsm(tmp_path), tmp_path / "out", progress=False)
    exams = by_exam(result.exams)
    assert exam_metadata(exams["P_00004"])["images"] == {
        "P_00004_L-CC": {"density": "B", "birads": "3", "abnormality": "mass", "split": "train"},
        "P_00004_R-MLO": {"density": "B", "birads": "4", "abnormality": "calcification", "split": "test"}}
    assert labels_of(exams["P_00004"]) == {"left_benign", "right_malignant", "benign", "malignant"}
    # one image listed in both tables: no split rather than a wrong one
    assert exam_metadata(exams["P_00005"])["images"] == {
        "P_00005_L-CC": {"density": "D", "birads": "5", "abnormality": "mass+calcification"}}
    overlap = [n for n in result.notes if "both the training and the test tables" in n]
    assert overlap == ["2 patient(s) appear in both the training and the test tables (e.g. P_00004); each image keeps "
                       "the split of the abnormalities listed for it (metadata 'split') - split by image, not by "
                       "patient; 1 image(s) are listed in both (e.g. P_00005_L-CC) and have no split"]


def test_cbis_ddsm_found_below_the_given_root(tmp_path):
    """Issue 11.7 (e): the folder above the TCIA manifest folder."""
    top = fake.cbis_ddsm(tmp_path, manifest=True)
    result = import_dataset("cbis-ddsm", top, tmp_path / "out", progress=False)
    assert len(result.exams) == 4


def test_cbis_ddsm_without_tables(tmp_path):
    with pytest.raises(ImporterError, match="no cbis-ddsm layout here or in its sub-folders; expected the "
                                            "case-description CSVs"):
        import_dataset("cbis-ddsm", tmp_path, tmp_path / "out", progress=False)


def test_cbis_ddsm_wrong_columns(tmp_path):
    fake.write_csv(tmp_path / "mass_case_description_train_set.csv", ["patient", "side"], [["P_1", "LEFT"]])
    with pytest.raises(ImporterError, match="missing column.*'left or right breast'"):
        import_dataset("cbis-ddsm", tmp_path, tmp_path / "out", progress=False)


# ---------------------------------------------------------------- INbreast

def test_inbreast(tmp_path):
    result = import_dataset("inbreast", fake.inbreast(tmp_path), tmp_path / "out", progress=False)
    exams = by_exam(result.exams)
    first, second = exams["6c613a14b80a8591_201001"], exams["1f52a7f7e2f4b56b_201001"]
    assert first.images == {"L-CC": ["6c613a14b80a8591_201001_L-CC"], "R-CC": ["6c613a14b80a8591_201001_R-CC"],
                            "L-MLO": [], "R-MLO": ["6c613a14b80a8591_201001_R-MLO"]}
    assert str(result.sources["6c613a14b80a8591_201001_R-MLO"]).endswith("20586960_6c613a14b80a8591_MG_R_ML_ANON.dcm")
    assert any("1 table row(s) without a DICOM file" in n for n in result.notes)
    assert exam_metadata(first) == {
        "dataset": "inbreast", "manufacturer": "SIEMENS", "manufacturer_model": "MAMMOMAT Inspiration",
        "images": {"6c613a14b80a8591_201001_L-CC": {"density": "B", "birads": "1"},
                   "6c613a14b80a8591_201001_R-CC": {"density": "B", "birads": "2"},
                   "6c613a14b80a8591_201001_R-MLO": {"density": "B", "birads": "4c"}}}
    assert exam_metadata(second)["images"]["1f52a7f7e2f4b56b_201001_R-CC"] == {"density": "D", "birads": "6"}
    assert_round_trip(result, tmp_path / "out")


def test_inbreast_breast_label_from_the_highest_birads(tmp_path):
    """Issue 11.7 (b): a breast with BI-RADS 2 and 4c images was marked benign and malignant; docs/data.md says
    the highest category decides, so it is malignant only. The FB image's BI-RADS 5 counts for its breast."""
    result = import_dataset("inbreast", fake.inbreast(tmp_path), tmp_path / "out", progress=False)
    exams = by_exam(result.exams)
    # right breast: BI-RADS 2 and 4c -> malignant; left: BI-RADS 1 -> negative
    assert exams["6c613a14b80a8591_201001"].cancer_label == {
        "left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 1,
        "benign": 0, "malignant": 1, "unknown": 0}
    # left breast: MLO BI-RADS 3 and FB BI-RADS 5 -> malignant, not benign; right: BI-RADS 6 -> malignant
    assert labels_of(exams["1f52a7f7e2f4b56b_201001"]) == {"left_malignant", "right_malignant", "malignant"}


def test_inbreast_fb_view_is_reported_as_unsupported(tmp_path):
    """Issue 11.7 (c): the FB image used to be counted as 'table row without a DICOM file'."""
    result = import_dataset("inbreast", fake.inbreast(tmp_path), tmp_path / "out", progress=False)
    assert "1 image(s) in views other than CC/MLO left out (FB 1): unsupported view; their BI-RADS still counts " \
           "for the breast label" in result.notes
    assert any(n.startswith("1 table row(s) without a DICOM file") for n in result.notes)  # only the real one
    assert not any("FB" in name for name in result.sources)


def test_inbreast_release_folder_is_found(tmp_path, capsys):
    """Issue 11.7 (e): --root may be the folder holding 'INbreast Release 1.0/'; the note says where it was."""
    top = fake.inbreast(tmp_path)
    assert locate_root("inbreast", top) == top / "INbreast Release 1.0"
    assert main(["import-dataset", "inbreast", "--root", str(top), "--output-dir", str(tmp_path / "o"),
                 "--quiet", "--workers", "1"]) == 0
    assert f"note: dataset found in {top / 'INbreast Release 1.0'}" in capsys.readouterr().err


def test_a_root_without_the_dataset_names_what_to_pass(tmp_path):
    """Issue 11.7 (e): otherwise the message says what was looked for, and which folders were there."""
    (tmp_path / "downloads" / "other").mkdir(parents=True)
    with pytest.raises(ImporterError, match=r"downloads: no inbreast layout here or in its sub-folders \(sub-folders: "
                                            r"other\); expected INbreast.csv \(or INbreast.xls\) and the AllDICOMs "
                                            r"folder - pass --root the folder that holds them"):
        import_dataset("inbreast", tmp_path / "downloads", tmp_path / "out", progress=False)


def test_two_candidate_folders_are_not_guessed(tmp_path):
    import shutil

    top = fake.inbreast(tmp_path)
    shutil.copytree(top / "INbreast Release 1.0", top / "INbreast copy")
    with pytest.raises(ImporterError, match="several folders hold a inbreast layout \\(INbreast Release 1.0, "
                                            "INbreast copy\\); pass the one to import with --root"):
        locate_root("inbreast", top)


# ---------------------------------------------------------------- CMMD

def test_cmmd_reads_views_from_dicom_headers(tmp_path):
    result = import_dataset("cmmd", fake.cmmd(tmp_path), tmp_path / "out", progress=False)
    assert len(result.exams) == 2
    labels = sorted((tuple(sorted(labels_of(e))), sum(map(len, e.images.values()))) for e in result.exams)
    assert labels == [(("benign", "right_benign"), 1), (("left_malignant", "malignant"), 3)]
    d1 = next(e for e in result.exams if e.cancer_label["malignant"])
    assert d1.images["L-MLO"] and d1.images["R-CC"] and not d1.images["R-MLO"]
    assert d1.cancer_label["right_malignant"] == 0  # imaged, not in the sheet: negative
    assert any("1 patient(s) in the clinical sheet without images" in n for n in result.notes)
    d2 = next(e for e in result.exams if not e.cancer_label["malignant"])
    left = [n for v in ("L-CC", "L-MLO") for n in d1.images[v]]
    assert exam_metadata(d1) == {"dataset": "cmmd", "age": 44, "subtype": "Luminal A", "manufacturer": "GE",
                                 "manufacturer_model": "Senographe DS",
                                 "images": {name: {"abnormality": "mass+calcification"} for name in left}}
    assert exam_metadata(d2) == {"dataset": "cmmd", "age": 50, "manufacturer": "GE",
                                 "manufacturer_model": "Senographe DS",
                                 "images": {d2.images["R-MLO"][0]: {"abnormality": "mass"}}}
    assert_round_trip(result, tmp_path / "out")


# ---------------------------------------------------------------- VinDr-Mammo

def test_vindr_mammo(tmp_path):
    result = import_dataset("vindr-mammo", fake.vindr(tmp_path), tmp_path / "out", progress=False)
    s1, s2 = result.exams
    assert s1.images == {"L-CC": ["s1_L-CC"], "R-CC": ["s1_R-CC"], "L-MLO": ["s1_L-MLO"], "R-MLO": ["s1_R-MLO"]}
    assert labels_of(s1) == {"right_malignant", "malignant"}
    assert labels_of(s2) == {"left_benign", "benign"}
    assert s2.images["R-CC"] == []
    assert any("1 image(s) with views other than CC/MLO" in n for n in result.notes)
    assert exam_metadata(s1) == {
        "dataset": "vindr-mammo", "age": 53, "manufacturer": "PLANMED", "manufacturer_model": "Planmed Nuance",
        "images": {"s1_L-CC": {"density": "C", "birads": "1", "split": "train"},
                   "s1_L-MLO": {"density": "C", "birads": "1", "split": "train"},
                   "s1_R-CC": {"density": "C", "birads": "4", "split": "train", "abnormality": "mass+calcification"},
                   "s1_R-MLO": {"density": "C", "birads": "4", "split": "train", "abnormality": "mass"}}}
    assert exam_metadata(s2)["age"] == 47
    assert_round_trip(result, tmp_path / "out")


def test_vindr_for_processing_images_refused_unless_accepted(tmp_path, capsys):
    """Issue 11.7 (d): VinDr converted For Processing images without a check, and --accept-for-processing was
    accepted but ignored; now one policy in every importer: refused, counted, unless accepted."""
    root = fake.vindr(tmp_path)
    result = import_dataset("vindr-mammo", root, tmp_path / "out", progress=False)
    assert result.exams[1].images["L-MLO"] == []
    assert result.refused == {"s2_L-MLO": "For Processing (raw) image; the models expect For Presentation (accept "
                                          "with --accept-for-processing)"}
    assert "1 image(s) refused: For Processing (raw) image; the models expect For Presentation (accept with " \
           "--accept-for-processing) (e.g. s2_L-MLO)" in result.notes
    accepted = import_dataset("vindr-mammo", root, tmp_path / "out2", accept=AcceptPolicy(for_processing=True),
                              progress=False)
    assert accepted.exams[1].images["L-MLO"] == ["s2_L-MLO"] and not accepted.refused
    assert main(["import-dataset", "vindr-mammo", "--root", str(root), "--output-dir", str(tmp_path / "o3"),
                 "--accept-for-processing", "--convert", "--quiet", "--workers", "1"]) == 0
    assert (tmp_path / "o3" / "images" / "s2_L-MLO.png").is_file()
    assert "refused" not in capsys.readouterr().err


@pytest.mark.parametrize("dataset", ["cbis-ddsm", "inbreast", "cmmd", "rsna"])
def test_every_importer_applies_the_same_accept_policy(tmp_path, dataset):
    """Issue 11.7 (d): one For Processing image in each layout is refused by default and taken when accepted."""
    import pydicom

    root = getattr(fake, dataset.replace("-", "_"))(tmp_path)
    victim = sorted(p for p in root.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(victim)
    ds.PresentationIntentType = "FOR PROCESSING"
    ds.save_as(victim, enforce_file_format=True)
    refused = import_dataset(dataset, root, tmp_path / "out", progress=False)
    assert list(refused.refused.values()) == ["For Processing (raw) image; the models expect For Presentation "
                                              "(accept with --accept-for-processing)"]
    assert str(victim) not in map(str, refused.sources.values())
    accepted = import_dataset(dataset, root, tmp_path / "out2", accept=AcceptPolicy(for_processing=True),
                              progress=False)
    assert str(victim) in map(str, accepted.sources.values()) and not accepted.refused


def test_vindr_physionet_version_folder_is_found(tmp_path):
    """Issue 11.7 (e): --root vindr-mammo/ finds vindr-mammo/1.0.0/ (images/ used to be looked for one level
    too high, so every image was 'not found')."""
    top = fake.vindr(tmp_path)
    result = import_dataset("vindr-mammo", top, tmp_path / "out", progress=False)
    assert result.notes[0] == f"dataset found in {top / '1.0.0'} (below the --root given)"
    assert not any("not found" in n for n in result.notes)


# ---------------------------------------------------------------- RSNA

def test_rsna(tmp_path):
    result = import_dataset("rsna", fake.rsna(tmp_path), tmp_path / "out", progress=False)
    first, second = result.exams
    assert first.images == {"L-CC": ["10006_L-CC"], "R-CC": ["10006_R-CC"], "L-MLO": ["10006_L-MLO"],
                            "R-MLO": ["10006_R-MLO"]}
    assert first.cancer_label == {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 1,
                                  "benign": 0, "malignant": 1, "unknown": 0}
    # biopsied, not cancer -> benign; the AT view is left out but its label counts
    assert second.cancer_label["left_benign"] == 1 and second.cancer_label["malignant"] == 0
    assert second.images["L-MLO"] == [] and second.images["L-CC"] == ["10011_L-CC"]
    assert not (tmp_path / "out" / "images").exists()
    assert exam_metadata(first) == {"dataset": "rsna", "age": 61, "site": "2", "machine_id": "29", "implant": False,
                                    "manufacturer": "SIEMENS",
                                    "images": {"10006_R-CC": {"birads": "0"}, "10006_R-MLO": {"birads": "0"}}}
    assert exam_metadata(second) == {"dataset": "rsna", "age": 55, "site": "1", "machine_id": "21", "implant": True,
                                     "manufacturer": "HOLOGIC",
                                     "images": {"10011_L-CC": {"density": "C", "birads": "0"},
                                                "10011_R-CC": {"density": "C", "birads": "1"}}}
    assert_round_trip(result, tmp_path / "out")


def test_rsna_with_conversion_and_cli(tmp_path, capsys):
    root = fake.rsna(tmp_path)
    (root / "train_images" / "10011" / "541722628.dcm").write_bytes(b"broken")
    code = main(["import-dataset", "rsna", "--root", str(root), "--output-dir", str(tmp_path / "out"), "--convert",
                 "--quiet", "--workers", "1"])
    assert code == 0
    out = capsys.readouterr()
    assert "rsna: 2 exam(s), 5 image(s)" in out.out
    assert "1 of 6 images skipped" in out.err and "10011_R-CC" in out.err  # the broken file is reported, left out
    exams = load_exam_list(tmp_path / "out" / "exam_list.pkl")
    assert exams[1].images["R-CC"] == []
    assert "10011_R-CC" not in exam_metadata(exams[1])["images"]  # its metadata goes with it
    # MONOCHROME1 site-2 images come out the same as MONOCHROME2 ones would: breast bright, background 0
    left_cc = read_png(tmp_path / "out" / "images" / "10006_L-CC.png")
    assert left_cc.dtype == np.uint16 and left_cc[0, -1] == 0 and left_cc.max() > 20000


def test_unreadable_metadata_values_are_counted_not_fatal(tmp_path):
    root = fake.rsna(tmp_path)
    text = (root / "train.csv").read_text().replace(",C,21,", ",X,21,", 1)
    (root / "train.csv").write_text(text)
    result = import_dataset("rsna", root, tmp_path / "out", progress=False)
    assert "train.csv: 1 value(s) of column 'density' not understood (e.g. 'X'); left empty in the metadata" \
        in result.notes
    assert "density" not in exam_metadata(result.exams[1])["images"]["10011_L-CC"]


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
