"""Fuzzing the data-in side (issue 11.6): DICOM datasets, prediction CSVs, ``.imrmc`` files and reader-study
tables, generated and mutated from valid ones by Hypothesis (derandomised: tests/conftest.py).

For every input: no traceback - the only exception is the module's own one-line error naming the file
(``DicomFileError``, ``EvaluationInputError``), or the input is processed; memory and time bounded (pixel
data refused above the pixel limit before decoding; child-process runs with their own peak RSS); nothing
written outside the output directory. The command-line cases run ``mammoscreen`` in a child process
(tests/clirun.py).
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testutils import examples

from clirun import assert_clean_error, changed_outside, run_cli, tree_snapshot
from mammoscreen.data.convert import _scan_file, convert_file
from mammoscreen.data.dicom import AcceptPolicy, DicomFileError, header_metadata, inspect_dicom, read_dicom
from mammoscreen.data.dicom_write import mammogram_dataset, uid_from
from mammoscreen.data.exams import VIEWS, Exam, save_exam_list
from mammoscreen.data.images import read_png
from mammoscreen.evaluate import evaluate_predictions
from mammoscreen.evaluate.mrmc import analyse_mrmc_file
from mammoscreen.evaluate.readers import evaluate_reader_study
from mammoscreen.evaluate.validation import EvaluationInputError

# Examples per property: enough for CI's minute or two (a tenth in the fast loop, testutils.examples);
# MAMMOSCREEN_FUZZ_EXAMPLES=2000 searches longer.
_EXAMPLES = int(os.environ.get("MAMMOSCREEN_FUZZ_EXAMPLES", "0")) or examples(150)
FUZZ = settings(max_examples=_EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
FEW = settings(max_examples=max(1, _EXAMPLES // 2),
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PEAK_RSS_MB = 1500  # a child run of a few-kilobyte input may not take more


def one_line_naming(error: BaseException, path: Path | str) -> None:
    message = str(error)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message


# ---------------------------------------------------------------------------------------------------------------
# DICOM
# ---------------------------------------------------------------------------------------------------------------

def _pixels(shape=(64, 48)) -> np.ndarray:
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    image = ((rows * 37 + cols * 11) % 4000).astype(np.uint16)
    image[:, shape[1] // 2:] = 0
    return image


def base_dataset(**kwargs) -> pydicom.Dataset:
    options = dict(laterality="L", view="CC", study_uid=uid_from("fuzz"), patient_id="fuzz", rescale=(1.0, 0.0),
                   window=(2048, 4096), extra={"Manufacturer": "HOLOGIC, Inc.", "PatientAge": "061Y"})
    options.update(kwargs)
    return mammogram_dataset(_pixels(), **options)


@functools.lru_cache(maxsize=None)
def base_bytes(compression: str | None) -> bytes:
    buffer = io.BytesIO()
    ds = base_dataset()
    if compression:
        ds.compress({"rle": pydicom.uid.RLELossless, "jpeg2000": pydicom.uid.JPEG2000Lossless}[compression])
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# Attribute edits made on the dataset before it is written: missing tags and absurd or wrong values.
DELETABLE = ["Modality", "SOPClassUID", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
             "PhotometricInterpretation", "SamplesPerPixel", "PixelRepresentation", "PixelData", "ImageLaterality",
             "Laterality", "ViewPosition", "ViewCodeSequence", "StudyInstanceUID", "RescaleSlope", "RescaleIntercept",
             "WindowCenter", "WindowWidth", "PresentationIntentType", "PatientOrientation"]
ABSURD = {
    "Rows": [0, 1, 3, 65535], "Columns": [0, 1, 7, 65535], "BitsStored": [0, 1, 9, 17, 40],
    "BitsAllocated": [1, 8, 12, 32, 64], "SamplesPerPixel": [0, 3], "NumberOfFrames": ["0", "2", "-1"],
    "PhotometricInterpretation": ["RGB", "PALETTE COLOR", "", "YBR_FULL"], "PixelRepresentation": [1, 2],
    "RescaleSlope": ["0", "-1", "1e-30", "65535"], "RescaleIntercept": ["-70000", "1e30"], "HighBit": [0, 31],
    "WindowWidth": ["0", "-5"], "ImageLaterality": ["B", "X", ""], "ViewPosition": ["XCCL", "", "LM"],
    "SOPClassUID": ["1.2.840.10008.5.1.4.1.1.13.1.3", "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.3"],
    "Modality": ["CT", ""], "PatientAge": ["abc", "999Y", "-4Y"], "Manufacturer": ["", " \x00 "],
}
# Values pydicom will not write (not numbers in a number VR): patched into the bytes after writing.
RAW_TEXT = {"RescaleSlope": ["abc", "nan", "inf", "1e999"], "RescaleIntercept": ["x1"], "WindowCenter": ["wide"],
            "PatientAge": ["\xff\xfe"], "BitsStored": [b"\xff\xff"]}

attribute_edits = st.lists(st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(DELETABLE)),
    st.sampled_from(sorted(ABSURD)).flatmap(
        lambda k: st.tuples(st.just("set"), st.just(k), st.sampled_from(ABSURD[k]))),
), max_size=3)

byte_edits = st.lists(st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.floats(0.0, 1.0), st.integers(1, 64), st.integers(0, 255)),
    st.tuples(st.just("wrong_vr"), st.sampled_from([(0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0100),
                                                    (0x0008, 0x0060), (0x0028, 0x1053)]),
              st.sampled_from([b"DS", b"UN", b"SQ", b"OB", b"ZZ", b"US"])),
), max_size=2)


def build_dicom(path: Path, compression: str | None, edits, raw, byte_ops) -> Path:
    """A mutated DICOM file at ``path``."""
    ds = pydicom.dcmread(io.BytesIO(base_bytes(compression)))
    for edit in edits:
        if edit[0] == "delete":
            if edit[1] in ds:
                delattr(ds, edit[1])
        else:
            try:
                setattr(ds, edit[1], edit[2])
            except (ValueError, TypeError, OverflowError, struct.error):
                pass  # pydicom refuses this value for the VR: the raw edits cover such values
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except Exception:  # a combination pydicom will not write: fall back to the base file
        buffer = io.BytesIO(base_bytes(compression))
    data = bytearray(buffer.getvalue())
    if raw is not None:
        keyword, text = raw
        data = bytearray(_patch_value(bytes(data), keyword, text))
    for op in byte_ops:
        if op[0] == "truncate":
            data = data[:int(len(data) * op[1])]
        elif op[0] == "flip" and data:
            start = int((len(data) - 1) * op[1])
            for i in range(start, min(len(data), start + op[2])):
                data[i] ^= op[3] or 0xFF
        elif op[0] == "wrong_vr":
            tag = struct.pack("<HH", *op[1])
            at = data.find(tag, 132)
            if at >= 0:
                data[at + 4:at + 6] = op[2]
    path.write_bytes(bytes(data))
    return path


def _patch_value(data: bytes, keyword: str, text) -> bytes:
    """Replace the value of ``keyword`` in the file's bytes by ``text`` (same length, padded)."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    needle = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.find(needle, 132)
    if at < 0:
        return data
    length = struct.unpack("<H", data[at + 6:at + 8])[0]
    value = text if isinstance(text, bytes) else text.encode("latin-1")
    value = (value + b" " * length)[:length] if length else value
    return data[:at + 8] + value + data[at + 8 + length:]


def check_dicom(path: Path, out_dir: Path) -> str:
    """Every step of reading and converting ``path``: processed, or a one-line DicomFileError naming it."""
    outcome = []
    try:
        ds = read_dicom(path)
    except DicomFileError as e:
        one_line_naming(e, path)
        return "unreadable"
    header_metadata(ds)  # never raises: values it cannot read are left out
    try:
        scanned = _scan_file(str(path), AcceptPolicy())
        outcome.append("skipped" if "skip" in scanned else "scanned")
    except DicomFileError as e:
        one_line_naming(e, path)
        outcome.append("scan-failed")
    try:
        rows = inspect_dicom(path)
        assert rows[-1][0] == "mammoscreen"
    except DicomFileError as e:
        one_line_naming(e, path)
    png = out_dir / "out.png"
    try:
        record = convert_file(path, png)
    except DicomFileError as e:
        one_line_naming(e, path)
        assert not png.exists()
        outcome.append("convert-failed")
    else:
        image = read_png(png)
        assert image.shape == (record["rows"], record["columns"]) and image.dtype == np.uint16
        png.unlink()
        outcome.append("converted")
    return "/".join(outcome)


@FUZZ
@given(compression=st.sampled_from([None, None, "rle", "jpeg2000"]), edits=attribute_edits,
       raw=st.one_of(st.none(), st.sampled_from(sorted(RAW_TEXT)).flatmap(
           lambda k: st.tuples(st.just(k), st.sampled_from(RAW_TEXT[k])))),
       byte_ops=byte_edits)
def test_mutated_dicom_is_converted_or_refused_with_one_line(tmp_path_factory, compression, edits, raw, byte_ops):
    work = tmp_path_factory.mktemp("dicom")
    path = build_dicom(work / "case.dcm", compression, edits, raw, byte_ops)
    check_dicom(path, work)


@pytest.mark.parametrize("compression", [None, "rle", "jpeg2000"])
@pytest.mark.parametrize("rows, columns", [(65535, 65535), (30000, 30000), (0, 48)])
def test_absurd_sizes_are_refused_before_decoding(tmp_path, compression, rows, columns):
    path = build_dicom(tmp_path / "huge.dcm", compression, [("set", "Rows", rows), ("set", "Columns", columns)],
                       None, [])
    with pytest.raises(DicomFileError) as caught:
        convert_file(path, tmp_path / "x.png")
    one_line_naming(caught.value, path)
    assert "Rows/Columns" in str(caught.value) or "refused before decoding" in str(caught.value)


def test_fixed_regression_cases_from_the_robustness_run(tmp_path):
    """The findings of issue 11.4/16.6, each once, in-process."""
    cases = {
        "slope_zero.dcm": (None, [("set", "RescaleSlope", "0")], None, [], "RescaleSlope (0028,1053) is 0"),
        "slope_abc.dcm": (None, [], ("RescaleSlope", "abc"), [], "RescaleSlope (0028,1053) is 'abc', not a number"),
        "truncated.dcm": (None, [], None, [("truncate", 0.7)], "truncated DICOM file"),
    }
    for name, (compression, edits, raw, ops, message) in cases.items():
        path = build_dicom(tmp_path / name, compression, edits, raw, ops)
        with pytest.raises(DicomFileError) as caught:
            convert_file(path, tmp_path / "x.png")
        one_line_naming(caught.value, path)
        assert message in str(caught.value), (name, str(caught.value))
    # corrupt compressed data with its decoder installed: "corrupt", not "install the decoders"
    data = bytearray(base_bytes("rle"))
    item = b"\xfe\xff\x00\xe0"
    frame = data.find(item, data.find(item, 132) + 8)
    data[frame + 12:frame + 16] = b"\xff\xff\xff\x7f"
    (tmp_path / "corrupt_rle.dcm").write_bytes(bytes(data))
    with pytest.raises(DicomFileError) as caught:
        convert_file(tmp_path / "corrupt_rle.dcm", tmp_path / "x.png")
    one_line_naming(caught.value, tmp_path / "corrupt_rle.dcm")
    assert "the compressed pixel data (transfer syntax RLE Lossless) is corrupt or truncated - the decoder is " \
           "installed" in str(caught.value) and "pip install" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# Text tables: prediction CSVs, .imrmc files, reader-study tables
# ---------------------------------------------------------------------------------------------------------------

def accepted_error(error: BaseException, *paths: Path | str) -> None:
    """One line naming one of ``paths`` (the file read, or the exam list it is matched with)."""
    message = str(error)
    assert any(message.startswith((f"{p}: ", f"{p}, line ")) for p in paths), message
    assert "\n" not in message.strip() and "Traceback" not in message, message


# Cell values that break a numeric column in every way a CSV can.
BAD_CELLS = ["", "nan", "NaN", "inf", "-inf", "1e400", "-1", "2", "0.5", "x", "1,5", '"', "\x00", "١", " 1 ",
             "9" * 400, "True"]

line_edits = st.lists(st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 10_000), st.integers(0, 20), st.sampled_from(BAD_CELLS)),
    st.tuples(st.just("extra_field"), st.integers(0, 10_000)),
    st.tuples(st.just("drop_field"), st.integers(0, 10_000)),
    st.tuples(st.just("drop_line"), st.integers(0, 10_000)),
    st.tuples(st.just("duplicate_line"), st.integers(0, 10_000)),
    st.tuples(st.just("drop_column"), st.integers(0, 20)),
    st.tuples(st.just("blank_line"), st.integers(0, 10_000)),
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("long_field"), st.integers(0, 10_000)),
), max_size=3)


def mutate_lines(text: str, edits, separator: str = ",") -> bytes:
    lines = text.splitlines()
    for edit in edits:
        kind = edit[0]
        if not lines and kind not in ("garbage",):
            continue
        at = edit[1] % len(lines) if lines and isinstance(edit[1], int) else 0
        if kind == "cell":
            fields = lines[at].split(separator)
            fields[edit[2] % len(fields)] = edit[3]
            lines[at] = separator.join(fields)
        elif kind == "extra_field":
            lines[at] += separator + "extra"
        elif kind == "drop_field":
            lines[at] = separator.join(lines[at].split(separator)[:-1])
        elif kind == "drop_line":
            del lines[at]
        elif kind == "duplicate_line":
            lines.insert(at, lines[at])
        elif kind == "drop_column":
            width = len(lines[0].split(separator))
            column = edit[1] % width
            lines = [separator.join(f for i, f in enumerate(line.split(separator)) if i != column) for line in lines]
        elif kind == "blank_line":
            lines.insert(at, "")
        elif kind == "truncate":
            joined = "\n".join(lines)
            lines = joined[:int(len(joined) * edit[1])].splitlines()
        elif kind == "long_field":
            fields = lines[at].split(separator)
            fields[-1] = "7" * 200_000  # beyond the csv module's field limit
            lines[at] = separator.join(fields)
    data = ("\n".join(lines) + "\n").encode("utf-8")
    for edit in edits:
        if edit[0] == "garbage":
            data = data[: len(data) // 2] + edit[1] + data[len(data) // 2:]
    return data


def prediction_study(directory: Path, level: str) -> tuple[str, Path]:
    """A valid exam list (written) and the text of a valid prediction CSV of ``level``."""
    rng = np.random.default_rng(1)
    exams, rows = [], []
    for i in range(16):
        labels = {"left_malignant": int(i % 3 == 0), "right_malignant": int(i % 5 == 1), "left_benign": int(i % 2),
                  "right_benign": int(i % 4 == 2)}
        exams.append(Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label=labels))
        if level == "image":
            for view in VIEWS:
                side = "left" if view[0] == "L" else "right"
                rows.append(f"{i}_{view},{rng.random():.4f},{rng.random():.4f},{labels[side + '_benign']},"
                            f"{labels[side + '_malignant']}")
        else:
            rows.append(",".join(f"{rng.random():.4f}" for _ in range(4)))
    exam_path = directory / "exams.pkl"
    save_exam_list(exams, exam_path)
    header = ("image_index,benign_pred,malignant_pred,benign_label,malignant_label" if level == "image"
              else "left_malignant,right_malignant,left_benign,right_benign")
    return "\n".join([header, *rows]) + "\n", exam_path


@FUZZ
@given(level=st.sampled_from(["image", "breast"]), with_exams=st.booleans(), edits=line_edits,
       bootstrap=st.sampled_from([0, 20]))
def test_mutated_prediction_csv_is_evaluated_or_refused_with_one_line(tmp_path_factory, level, with_exams, edits,
                                                                       bootstrap):
    work = tmp_path_factory.mktemp("predictions")
    text, exam_path = prediction_study(work, level)
    path = work / "predictions.csv"
    path.write_bytes(mutate_lines(text, edits))
    try:
        result = evaluate_predictions(path, exam_path if with_exams else None, n_bootstrap=bootstrap)
    except EvaluationInputError as e:
        accepted_error(e, path, exam_path)
    else:
        for level_result in result.levels.values():
            assert all(math.isfinite(m.value) for m in level_result.metrics.values())


def imrmc_text(n_readers: int = 3, n_cases: int = 10) -> str:
    rng = np.random.default_rng(2)
    lines = ["Simulated study", f"N0: {n_cases // 2}", f"N1: {n_cases - n_cases // 2}", f"NR: {n_readers}", "NM: 2",
             "BEGIN DATA:"]
    lines += [f"-1,{c},truth,{int(c >= n_cases // 2)}" for c in range(n_cases)]
    for r in range(n_readers):
        for m in ("A", "B"):
            lines += [f"R{r},{c},{m},{rng.integers(1, 6) + (c >= n_cases // 2)}" for c in range(n_cases)]
    return "\n".join(lines) + "\n"


@FUZZ
@given(edits=line_edits, ai=st.sampled_from([None, "R0"]))
def test_mutated_imrmc_is_analysed_or_refused_with_one_line(tmp_path_factory, edits, ai):
    work = tmp_path_factory.mktemp("imrmc")
    path = work / "study.imrmc"
    path.write_bytes(mutate_lines(imrmc_text(4 if ai else 3), edits))
    try:
        analyse_mrmc_file(path, ai=ai)
    except EvaluationInputError as e:
        accepted_error(e, path)


def reader_study_text(n_exams: int = 14) -> str:
    rng = np.random.default_rng(3)
    lines = ["case_ID,side,label,Reader01_POM,Reader02_POM,Reader03_POM,AI_model_POM"]
    for case in range(n_exams):
        for side in ("left", "right"):
            label = int((case + (side == "right")) % 3 == 0)
            scores = [min(1.0, max(0.0, 0.3 + 0.4 * label + rng.normal(0, 0.2))) for _ in range(4)]
            lines.append(f"{1000 + case},{side},{label}," + ",".join(f"{s:.3f}" for s in scores))
    return "\n".join(lines) + "\n"


@FEW
@given(edits=line_edits, resample=st.sampled_from(["case", "row"]))
def test_mutated_reader_study_table_is_evaluated_or_refused_with_one_line(tmp_path_factory, edits, resample):
    work = tmp_path_factory.mktemp("readers")
    path = work / "study.csv"
    path.write_bytes(mutate_lines(reader_study_text(), edits))
    try:
        evaluate_reader_study(path, n_bootstrap=20, resample=resample)
    except EvaluationInputError as e:
        accepted_error(e, path)
    try:
        analyse_mrmc_file(path, ai="AI_model_POM")
    except EvaluationInputError as e:
        accepted_error(e, path)


# ---------------------------------------------------------------------------------------------------------------
# The same inputs through the command line, in a child process: exit status, one line, peak memory, no writes
# outside the output directory
# ---------------------------------------------------------------------------------------------------------------

# Each case below starts a child interpreter (a second or more): the first case of each command stays in the fast
# loop, the others are slow (CI runs them all; the in-process properties above cover the loaders in both loops).
CHILD_RUN = pytest.mark.slow


def run_checked(args: list[str], root: Path, out: str = "out"):
    before = tree_snapshot(root)
    result = run_cli(args, cwd=root, timeout=180)
    assert not result.timed_out, args
    assert "Traceback (most recent call last)" not in result.stderr, result.stderr
    assert result.peak_rss_mb is not None and result.peak_rss_mb < PEAK_RSS_MB, result.peak_rss_mb
    assert changed_outside(before, tree_snapshot(root), allowed=[out]) == []
    return result


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_convert_dicom_on_a_folder_of_damaged_files(tmp_path):
    """One run over many kinds of damage: every file is in the manifest, failures name their file, good files
    convert; never a traceback, bounded memory."""
    source = tmp_path / "in"
    source.mkdir()
    damage = {
        "good.dcm": (None, [], None, []), "good_rle.dcm": ("rle", [], None, []),
        "slope0.dcm": (None, [("set", "RescaleSlope", "0")], None, []),
        "slope_abc.dcm": (None, [], ("RescaleSlope", "abc"), []),
        "truncated.dcm": (None, [], None, [("truncate", 0.6)]),
        "truncated_j2k.dcm": ("jpeg2000", [], None, [("truncate", 0.9)]),
        "huge.dcm": ("rle", [("set", "Rows", 65535), ("set", "Columns", 65535)], None, []),
        "no_pixels.dcm": (None, [("delete", "PixelData")], None, []),
        "wrong_vr.dcm": (None, [], None, [("wrong_vr", (0x0028, 0x0010), b"SQ")]),
        "bits.dcm": (None, [("set", "BitsStored", 40)], None, []),
        "noise.dcm": (None, [], None, [("flip", 0.3, 64, 0x5A)]),
    }
    for name, (compression, edits, raw, ops) in damage.items():
        build_dicom(source / name, compression, edits, raw, ops)
    (source / "notes.txt").write_text("not a DICOM file\n")
    result = run_checked(["convert-dicom", str(source), "--output-dir", str(tmp_path / "out"), "--workers", "1",
                          "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in pd.read_csv(tmp_path / "out" / "manifest.csv",
                                                                 keep_default_na=False).to_dict("records")}
    assert set(rows) == set(damage) | {"notes.txt"}
    assert rows["good.dcm"]["status"] == rows["good_rle.dcm"]["status"] == "converted"
    for name in ("slope0.dcm", "slope_abc.dcm", "truncated.dcm", "truncated_j2k.dcm", "huge.dcm"):
        assert rows[name]["status"] == "failed" and rows[name]["reason"], rows[name]
        assert f"{name}:" in result.stderr  # the failure lines name the file
    assert "truncated DICOM file" in rows["truncated.dcm"]["reason"]
    assert "RescaleSlope (0028,1053) is 0" in rows["slope0.dcm"]["reason"]
    for row in rows.values():
        if row["status"] == "converted":
            assert read_png(tmp_path / "out" / "images" / f"{row['image']}.png").max() > 0


@pytest.mark.parametrize("name, build, mention", [
    ("slope_abc.dcm", lambda p: build_dicom(p, None, [], ("RescaleSlope", "abc"), []), "RescaleSlope (0028,1053)"),
    pytest.param("truncated.dcm", lambda p: build_dicom(p, None, [], None, [("truncate", 0.3)]), "truncated DICOM file",
                 marks=CHILD_RUN),
])
def test_inspect_of_a_damaged_file(tmp_path, name, build, mention):
    path = tmp_path / name
    build(path)
    result = run_checked(["inspect", str(path), "--pixels"], tmp_path)
    assert_clean_error(result, "inspect", mentions=[name, mention])


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("content, mention", [
    (b"image_index,malignant_pred,malignant_label\na,0.1,0,extra\nb,0.9,1\n", "CSV line 2 has 4 field(s)"),
    pytest.param(b"image_index,malignant_pred\na,0.1\nb,0.9\n", "missing column(s) 'malignant_label'", marks=CHILD_RUN),
    pytest.param(b"image_index,malignant_pred,malignant_label\na,0.1,0\nb," + b"9" * 300_000 + b",1\n",
                 "field larger than", marks=CHILD_RUN),
    pytest.param(b"\xff\xfe\x00\x01garbage", "not a UTF-8 text CSV file", marks=CHILD_RUN),
])
def test_evaluate_on_a_bad_prediction_csv(tmp_path, content, mention):
    path = tmp_path / "predictions.csv"
    path.write_bytes(content)
    result = run_checked(["evaluate", "--predictions", str(path), "--output-dir", str(tmp_path / "out"),
                          "--bootstrap", "0"], tmp_path)
    assert_clean_error(result, "evaluate", mentions=[str(path), mention])
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.slow
def test_evaluate_on_a_large_prediction_csv_is_bounded(tmp_path):
    """200,000 rows (a real large test set): evaluated, within the memory bound."""
    rng = np.random.default_rng(4)
    n = 200_000
    labels = (rng.random(n) < 0.1).astype(int)
    pd.DataFrame({"image_index": [f"img{i}" for i in range(n)], "malignant_pred": rng.random(n).round(5) + labels * 0.2,
                  "malignant_label": labels}).to_csv(tmp_path / "big.csv", index=False)
    result = run_checked(["evaluate", "--predictions", str(tmp_path / "big.csv"), "--output-dir",
                          str(tmp_path / "out"), "--bootstrap", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "metrics.json").is_file()


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("edits, mention", [
    ([("cell", 1, 0, "N0: 7")], "the header says N0:7 but the data have 5"),
    pytest.param([("cell", 20, 3, "x")], "line 21: score 'x' is not a number", marks=CHILD_RUN),
    pytest.param([("cell", 6, 3, "2")], "line 7: truth must be 0 (normal) or 1 (abnormal), got '2'", marks=CHILD_RUN),
])
def test_mrmc_on_a_bad_imrmc_file(tmp_path, edits, mention):
    path = tmp_path / "study.imrmc"
    path.write_bytes(mutate_lines(imrmc_text(), edits))
    result = run_checked(["mrmc", str(path), "--output-dir", str(tmp_path / "out")], tmp_path)
    assert_clean_error(result, "mrmc", mentions=[str(path), mention])


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("command, edits, mention", [
    ("reader-study", [("cell", 1, 0, "")], "'case_ID' is empty in data row(s) 1"),
    pytest.param("reader-study", [("extra_field", 3)], "CSV line 4 has 8 field(s)", marks=CHILD_RUN),
    pytest.param("mrmc", [("cell", 2, 3, "x")], "column 'Reader01_POM'", marks=CHILD_RUN),
])
def test_reader_study_commands_on_a_bad_table(tmp_path, command, edits, mention):
    path = tmp_path / "study.csv"
    path.write_bytes(mutate_lines(reader_study_text(), edits))
    args = [command, str(path), "--output-dir", str(tmp_path / "out")] + (["--bootstrap", "20"]
                                                                          if command == "reader-study" else [])
    result = run_checked(args, tmp_path)
    assert_clean_error(result, command, mentions=[str(path), mention])
