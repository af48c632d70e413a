"""The metadata canonicalisers (data/metadata.py): every spelling the five datasets and DICOM use, and the
contract's shape (flat scalars, per-image values under 'images') surviving pickle and JSON."""

from __future__ import annotations

import math

import pytest

from mammoscreen.data.exams import Exam, load_exam_list, save_exam_list
from mammoscreen.data.metadata import (
    MetadataValueError,
    canonical_manufacturer,
    check_metadata,
    combine_abnormality,
    exam_metadata,
    merge_metadata,
    normalise_abnormality,
    normalise_age,
    normalise_birads,
    normalise_bool,
    normalise_density,
    normalise_split,
    normalise_text,
    set_exam_metadata,
)


@pytest.mark.parametrize("raw, expected", [
    (61, 61), ("61", 61), ("61.0", 61), (61.0, 61), ("053Y", 53), ("053y", 53), ("018M", 1.5), ("052W", 1.0),
    ("067.5", 67.5), ("", None), ("removed", None), (None, None), (math.nan, None), (" 45 ", 45),
])
def test_age(raw, expected):
    value = normalise_age(raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("raw", ["old", "-3", "200", "12X", "inf"])
def test_age_not_understood(raw):
    with pytest.raises(MetadataValueError):
        normalise_age(raw)


@pytest.mark.parametrize("raw, expected", [
    ("DENSITY C", "C"), ("DENSITY A", "A"), ("b", "B"), ("D", "D"), (1, "A"), ("2", "B"), ("3.0", "C"), (4, "D"),
    ("", None), ("  ", None), ("ACR 3", "C"),
])
def test_density(raw, expected):
    assert normalise_density(raw) == expected


@pytest.mark.parametrize("raw", ["0", "5", "E", "DENSITY E", "dense"])
def test_density_not_understood(raw):
    with pytest.raises(MetadataValueError):
        normalise_density(raw)


@pytest.mark.parametrize("raw, expected", [
    ("BI-RADS 4", "4"), ("BI-RADS 1", "1"), ("4a", "4a"), ("4C", "4c"), (5, "5"), ("0", "0"), ("6", "6"),
    ("3.0", "3"), ("birads 2", "2"), ("", None),
])
def test_birads(raw, expected):
    assert normalise_birads(raw) == expected


@pytest.mark.parametrize("raw", ["7", "3a", "BI-RADS", "high"])
def test_birads_not_understood(raw):
    with pytest.raises(MetadataValueError):
        normalise_birads(raw)


def test_abnormality():
    assert normalise_abnormality("mass") == "mass"
    assert normalise_abnormality("calcification") == "calcification"
    assert normalise_abnormality("Suspicious Calcification") == "calcification"
    assert normalise_abnormality("both") == "mass+calcification"  # CMMD
    assert normalise_abnormality("") is None
    with pytest.raises(MetadataValueError):
        normalise_abnormality("Focal Asymmetry")
    assert combine_abnormality("mass", None, "calcification") == "mass+calcification"
    assert combine_abnormality("mass", "mass") == "mass"
    assert combine_abnormality(None) is None


@pytest.mark.parametrize("raw, expected", [
    ("HOLOGIC, Inc.", "HOLOGIC"), ("Hologic, Inc.", "HOLOGIC"), ("LORAD", "HOLOGIC"),
    ("GE MEDICAL SYSTEMS", "GE"), ("GE Healthcare", "GE"), ("SIEMENS", "SIEMENS"), ("Siemens Healthineers", "SIEMENS"),
    ("FUJIFILM Corporation", "FUJIFILM"), ("FUJI PHOTO FILM Co., ltd.", "FUJIFILM"),
    ("Philips Digital Mammography Sweden AB", "PHILIPS"), ("Planmed", "PLANMED"), ("IMS s.r.l.", "IMS"),
    ("KODAK", "KODAK"), ("Agfa-Gevaert", "AGFA"), ("KONICA MINOLTA", "KONICA MINOLTA"),
    ("  Vendor X  ", "VENDOR X"), ("GENERIC", "GENERIC"), ("SIMS", "SIMS"), ("", None),
])
def test_manufacturer(raw, expected):
    assert canonical_manufacturer(raw) == expected


def test_text_bool_split():
    assert normalise_text("29.0") == "29" and normalise_text(29.0) == "29" and normalise_text(" Luminal  A ") == \
        "Luminal A"
    assert normalise_text("") is None
    assert normalise_bool("1") is True and normalise_bool(0) is False and normalise_bool("YES") is True
    assert normalise_bool("False") is False and normalise_bool("") is None
    with pytest.raises(MetadataValueError):
        normalise_bool("maybe")
    assert normalise_split("training") == "train" and normalise_split("test") == "test"
    with pytest.raises(MetadataValueError):
        normalise_split("validation")


def test_merge_metadata_keeps_agreeing_values_at_exam_level():
    exam, images = merge_metadata({"a": {"manufacturer": "GE", "age": 50}, "b": {"manufacturer": "GE", "age": 51},
                                   "c": {"manufacturer": None}})
    assert exam == {"manufacturer": "GE"}
    assert images == {"a": {"age": 50}, "b": {"age": 51}}
    assert merge_metadata({"a": {"implant": True}, "b": {"implant": 1}}) == ({}, {"a": {"implant": True},
                                                                                 "b": {"implant": 1}})


def test_check_metadata_refuses_nested_values():
    check_metadata({"age": 50, "images": {"x": {"density": "B"}}}, ["x"])
    with pytest.raises(ValueError, match=r"metadata\['age'\]"):
        check_metadata({"age": [50]}, ["x"])
    with pytest.raises(ValueError, match=r"\['images'\]\['x'\]\['density'\]"):
        check_metadata({"images": {"x": {"density": {"nested": 1}}}}, ["x"])


@pytest.mark.parametrize("suffix", [".pkl", ".json"])
def test_metadata_round_trips_through_the_exam_list(tmp_path, suffix):
    exam = Exam(images={"L-CC": ["a"], "R-CC": ["b"], "L-MLO": [], "R-MLO": []})
    metadata = {"dataset": "rsna", "age": 61, "implant": False, "site": "2",
                "images": {"a": {"density": "C", "birads": "0"}, "b": {"density": None}}}
    set_exam_metadata(exam, metadata)
    save_exam_list([exam], tmp_path / f"list{suffix}")
    loaded = load_exam_list(tmp_path / f"list{suffix}")[0]
    assert exam_metadata(loaded) == metadata
    assert loaded.to_dict()["metadata"] == metadata  # exam['metadata'], where the contract puts it
