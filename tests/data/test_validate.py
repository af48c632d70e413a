"""validate: a clean dataset passes; each listed fault is caught and named; the CLI exits non-zero."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mammoscreen.cli import main
from mammoscreen.data.exams import Exam, save_exam_list
from mammoscreen.data.images import write_png
from mammoscreen.data.validate import validate_dataset

LABEL = {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 1, "benign": 0,
         "malignant": 1, "unknown": 0}


SHAPE = (600, 480)


@pytest.fixture
def big(breast):
    """A 600 x 480 16-bit 'breast' facing the standard way for its side."""
    return lambda side: breast(side, shape=SHAPE) * 16


def dataset(tmp_path, big, images=None, label=None, flip="NO"):
    """One exam, images written as 16-bit PNGs facing the standard way unless given."""
    directory = tmp_path / "images"
    directory.mkdir(exist_ok=True)
    arrays = images or {"L-CC": big("L"), "R-CC": big("R")}
    names = {}
    for view, array in arrays.items():
        name = f"e_{view}"
        if isinstance(array, np.ndarray):
            write_png(directory / f"{name}.png", array)
        names[view] = [name]
    exam = Exam(images={v: names.get(v, []) for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")}, horizontal_flip=flip,
                cancer_label=dict(LABEL) if label is None else label)
    save_exam_list([exam], tmp_path / "exams.pkl")
    return directory, tmp_path / "exams.pkl"


def messages(report):
    return [f"{issue.level}: {issue.message}" for issue in report.issues]


def test_clean_dataset_passes(tmp_path, big):
    images, exams = dataset(tmp_path, big)
    report = validate_dataset(images, exams, progress=False)
    assert report.ok and report.errors == [] and report.warnings == [], messages(report)
    assert (report.exams, report.images) == (1, 2)


def test_missing_image(tmp_path, big):
    images, exams = dataset(tmp_path, big, images={"L-CC": big("L"), "R-CC": None})
    report = validate_dataset(images, exams, progress=False)
    (error,) = report.errors
    assert error.where.endswith("e_R-CC.png") and "file not found" in error.message


def test_eight_bit_png_is_an_error(tmp_path, big):
    images, exams = dataset(tmp_path, big, images={"L-CC": (big("L") // 256).astype(np.uint8)})
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "8-bit PNG" in error.message


def test_rgb_png_is_an_error(tmp_path, big):
    images, exams = dataset(tmp_path, big, images={"L-CC": None})
    grey = (big("L") // 256).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(images / "e_L-CC.png")
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "RGB image" in error.message and "single-channel" in error.message


def test_implausible_size_and_small_size(tmp_path, big, breast):
    images, exams = dataset(tmp_path, big, images={"L-CC": np.full((40, 30), 500, np.uint16)})
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "implausible size 40x30" in error.message
    images, exams = dataset(tmp_path, big, images={"L-CC": breast("L", shape=(300, 220)) * 16, "R-CC": big("R")})
    report = validate_dataset(images, exams, progress=False)
    assert report.ok and [w.message for w in report.warnings] == [
        "small image (300x220); full-field mammograms are thousands of pixels per side"]


def test_empty_and_inverted_images(tmp_path, big):
    images, exams = dataset(tmp_path, big, images={"L-CC": np.zeros(SHAPE, np.uint16)})
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "almost empty" in error.message
    inverted = 65535 - big("L")  # MONOCHROME1 left as stored
    images, exams = dataset(tmp_path, big, images={"L-CC": inverted})
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "no zero-valued background" in error.message


def test_wrong_facing_for_view_and_flag(tmp_path, big):
    # a left breast stored facing left with horizontal_flip 'NO'
    images, exams = dataset(tmp_path, big, images={"L-CC": big("R")})
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "faces left" in error.message and "L-CC" in error.message
    # the same images are right with horizontal_flip 'YES' (stored mirrored)
    images, exams = dataset(tmp_path, big, images={"L-CC": big("R"), "R-CC": big("L")},
                            flip="YES")
    assert validate_dataset(images, exams, progress=False).ok


def test_label_faults(tmp_path, big):
    bad = dict(LABEL, malignant=0)  # inconsistent with right_malignant 1
    images, exams = dataset(tmp_path, big, label=bad)
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "cancer_label['malignant'] is 0" in error.message
    unknown_key = dict(LABEL, cancer=1)
    images, exams = dataset(tmp_path, big, label=unknown_key)
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "unknown cancer_label key(s) ['cancer']" in error.message
    partial = {"malignant": 1}
    images, exams = dataset(tmp_path, big, label=partial)
    assert any("lacks" in e.message for e in validate_dataset(images, exams, progress=False).errors)


def test_label_values_outside_0_1_make_the_exam_list_unreadable(tmp_path, big):
    images, exams = dataset(tmp_path, big)
    import pickle

    data = pickle.loads(exams.read_bytes())
    data[0]["cancer_label"]["left_benign"] = 2
    exams.write_bytes(pickle.dumps(data, protocol=4))
    (error,) = validate_dataset(images, exams, progress=False).errors
    assert "labels must be 0 or 1" in error.message


def test_image_listed_twice(tmp_path, big):
    images, _ = dataset(tmp_path, big)
    exam = Exam(images={"L-CC": ["e_L-CC"], "R-CC": ["e_R-CC"], "L-MLO": ["e_L-CC"], "R-MLO": []},
                cancer_label=dict(LABEL))
    save_exam_list([exam], tmp_path / "twice.pkl")
    errors = validate_dataset(images, tmp_path / "twice.pkl", progress=False).errors
    assert any("listed twice" in e.message for e in errors)


def test_cli_exit_codes(tmp_path, big, capsys):
    images, exams = dataset(tmp_path, big)
    assert main(["validate", "--images", str(images), "--exam-list", str(exams), "--quiet"]) == 0
    assert "OK: 1 exam(s), 2 image(s)" in capsys.readouterr().out
    (images / "e_R-CC.png").unlink()
    assert main(["validate", "--images", str(images), "--exam-list", str(exams), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "error:" in out and "e_R-CC.png" in out and "FAILED" in out
    with pytest.raises(SystemExit) as exited:  # refused while parsing (issue 16.2)
        main(["validate", "--images", str(images), "--exam-list", str(tmp_path / "none.pkl"), "--quiet"])
    assert exited.value.code == 2
    assert "argument --exam-list: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("scale", [0.25])
def test_synthetic_dataset_validates(tmp_path, scale):
    from mammoscreen.data.synth import SynthOptions, generate_exams

    generate_exams(2, tmp_path, seed=3, options=SynthOptions(scale=scale, background_noise=0.002), progress=False)
    report = validate_dataset(tmp_path / "images", tmp_path / "exam_list.pkl", progress=False)
    assert report.ok and report.warnings == [], messages(report)
    assert sum(report.notes.values()) == 8  # 12-bit values stored as they are


@pytest.mark.parametrize("exams, what", [
    ([], "no exams"), ([Exam(cancer_label=dict(LABEL))], "1 exam(s) but no image names in any view")])
def test_an_exam_list_without_images_is_an_error(tmp_path, capsys, exams, what):
    """Issue 16.6: an empty exam list gave "OK: 0 exam(s)"."""
    (tmp_path / "images").mkdir()
    save_exam_list(exams, tmp_path / "empty.pkl")
    report = validate_dataset(tmp_path / "images", tmp_path / "empty.pkl", progress=False)
    assert not report.ok
    assert [str(i) for i in report.errors] == [f"error: {tmp_path / 'empty.pkl'}: the exam list has {what}; there is "
                                               "nothing to validate or run"]
    assert main(["validate", "--images", str(tmp_path / "images"), "--exam-list", str(tmp_path / "empty.pkl"),
                 "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "OK" not in out and "FAILED" in out
