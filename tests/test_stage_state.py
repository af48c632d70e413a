"""Stage state that cannot go stale, failures that are counted, outputs that say when they are not numbers.

Regression tests of the robustness run's findings (issue 11 items 3 and 4, issue 16 items 1 and 6), on a
one-exam copy of the synthetic data with the bundled ``gmic_demo`` model, through the ``run`` command
in-process (a child process each would cost a second of start-up per run).
"""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil

import numpy as np
import pytest
from stageutils import demo_checkpoint, small_dataset

from mammoscreen.cli import main
from mammoscreen.data.images import read_png, write_png
from mammoscreen.preprocess.crop import apply_crop, breast_facing, crop_info

NAMES = ["0_L-CC", "0_R-CC", "0_L-MLO", "0_R-MLO"]


@pytest.fixture(scope="module")
def reference(synthetic_dataset, tmp_path_factory):
    """One uninterrupted run of exam 0 with maps: what every resumed or repaired run must end with."""
    root = tmp_path_factory.mktemp("reference")
    images, exam_list = small_dataset(synthetic_dataset, root)
    assert run(images, exam_list, root / "out", "--save-maps") == 0
    return root / "out"


@pytest.fixture
def data(synthetic_dataset, tmp_path):
    return small_dataset(synthetic_dataset, tmp_path)


def run(images, exam_list, out, *extra) -> int:
    return main(["run", "--model", "gmic_demo", "--images", str(images), "--exam-list", str(exam_list),
                 "--output-dir", str(out), "--device", "cpu", "--workers", "1", "--quiet", "--no-evaluate", *extra])


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def stamps(out, names=NAMES):
    """(inode, mtime) of each image's per-image outputs: equal before and after means not rewritten."""
    paths = {n: [out / "cropped_images" / f"{n}.png", out / "gmic_demo" / "maps" / f"{n}.npz"] for n in names}
    return {n: [(p.stat().st_ino, p.stat().st_mtime_ns) for p in ps] for n, ps in paths.items()}


def finished(reference, tmp_path):
    """A copy of the reference run's output directory (as if this test had run it)."""
    shutil.copytree(reference, tmp_path / "out")
    return tmp_path / "out"


@pytest.mark.slow  # two or three whole runs
def test_a_replaced_input_image_is_recomputed_and_only_it(data, reference, synthetic_dataset, tmp_path, capsys):
    images, exam_list = data
    out = finished(reference, tmp_path)
    before = stamps(out)
    # Replace one mammogram by another (exam 1's: another plausible image of the same view).
    shutil.copy(synthetic_dataset / "images" / "1_L-CC.png", images / "0_L-CC.png")
    capsys.readouterr()
    assert run(images, exam_list, out, "--save-maps") == 0
    err = capsys.readouterr().err
    assert "crop: 1 computed, 3 reused" in err and "16 predictions" not in err
    after = stamps(out)
    assert after["0_L-CC"][0] != before["0_L-CC"][0] and after["0_L-CC"][1] != before["0_L-CC"][1]
    assert {n: after[n] for n in NAMES[1:]} == {n: before[n] for n in NAMES[1:]}  # the others not rewritten
    # The new crop is the new image's, and the prediction equals a fresh run's on the new inputs.
    new = read_png(images / "0_L-CC.png")
    expected = apply_crop(new, crop_info(new, breast_facing("L-CC", "NO")))
    assert np.array_equal(read_png(out / "cropped_images" / "0_L-CC.png"), expected)
    assert run(images, exam_list, tmp_path / "fresh", "--save-maps") == 0
    assert (out / "gmic_demo" / "predictions.csv").read_bytes() == \
        (tmp_path / "fresh" / "gmic_demo" / "predictions.csv").read_bytes()


@pytest.mark.slow  # two or three whole runs
def test_a_restored_missing_image_is_processed(data, reference, tmp_path):
    images, exam_list = data
    out = tmp_path / "out"
    kept = tmp_path / "0_R-MLO.png"
    shutil.move(images / "0_R-MLO.png", kept)
    assert run(images, exam_list, out, "--save-maps") == 0  # one missing image: reported, the others done
    (failure,) = read_rows(out / "failures.csv")
    assert (failure["stage"], failure["item"], failure["kind"]) == ("crop", "0_R-MLO", "input")
    assert "file not found" in failure["reason"]
    assert len(read_rows(out / "gmic_demo" / "predictions.csv")) == 3
    shutil.move(kept, images / "0_R-MLO.png")
    assert run(images, exam_list, out, "--save-maps") == 0
    assert (out / "gmic_demo" / "predictions.csv").read_bytes() == \
        (reference / "gmic_demo" / "predictions.csv").read_bytes()
    assert not (out / "failures.csv").exists()  # nothing failed this time: no stale list


@pytest.mark.slow  # two or three whole runs
def test_a_disk_full_crop_is_an_incomplete_run_retried_in_full(data, reference, tmp_path, monkeypatch, capsys):
    import mammoscreen.preprocess.crop as crop

    images, exam_list = data
    out = tmp_path / "out"
    real = crop.write_png

    def disk_full(path, array, *args, **kwargs):
        if "MLO" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, array, *args, **kwargs)

    monkeypatch.setattr(crop, "write_png", disk_full)
    assert run(images, exam_list, out, "--save-maps") == 1  # incomplete: non-zero
    captured = capsys.readouterr()
    assert "mammoscreen run: incomplete (crop)" in captured.err and "re-run the same command" in captured.err
    table = {line.split()[0]: line.split() for line in captured.out.splitlines()}
    assert table["crop"][2:5] == ["incomplete", "2", "2"]  # status, images done, failed
    failures = read_rows(out / "failures.csv")
    assert [(f["stage"], f["item"], f["kind"]) for f in failures] == [("crop", "0_L-MLO", "io"),
                                                                      ("crop", "0_R-MLO", "io")]
    assert "No space left on device" in failures[0]["reason"]
    summary = json.loads((out / "run_summary.json").read_text())["run"]
    assert summary["failures"]["crop"] == 2 and summary["incomplete"] == ["crop"]
    assert summary["stages"]["crop"]["failed"] == 2

    monkeypatch.setattr(crop, "write_png", real)  # space freed
    assert run(images, exam_list, out, "--save-maps") == 0
    assert "crop: 2 computed, 2 reused" in capsys.readouterr().err
    for name in ("gmic_demo/predictions.csv", "cropped_images/cropped_exam_list.pkl",
                 "data_CC736x480_MLO736x480.pkl", *[f"gmic_demo/maps/{n}.npz" for n in NAMES]):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert not (out / "failures.csv").exists()


@pytest.mark.slow  # two or three whole runs
def test_a_crop_failure_is_listed_with_its_stage_and_counted(data, tmp_path, capsys):
    images, exam_list = data
    write_png(images / "0_L-CC.png", np.zeros((400, 300), np.uint16))  # nothing to crop
    out = tmp_path / "out"
    assert run(images, exam_list, out) == 0  # one bad image does not fail the run
    captured = capsys.readouterr()
    (failure,) = read_rows(out / "failures.csv")
    assert (failure["stage"], failure["item"], failure["kind"]) == ("crop", "0_L-CC", "input")
    assert "cannot crop" in failure["reason"]
    table = {line.split()[0]: line.split() for line in captured.out.splitlines()}
    assert table["crop"][2:5] == ["done", "3", "1"] and table["gmic_demo"][2:5] == ["done", "3", "0"]
    summary = json.loads((out / "run_summary.json").read_text())["run"]
    assert summary["failures"]["crop"] == 1 and summary["stages"]["crop"] == {
        "images": 4, "reused": 0, "computed": 3, "failed": 1, "warnings": 0}


@pytest.mark.slow  # two or three whole runs
def test_a_corrupt_journal_line_is_reported_and_its_image_recomputed(data, reference, tmp_path, capsys):
    images, exam_list = data
    out = finished(reference, tmp_path)
    before = stamps(out)
    journal = out / "gmic_demo" / ".predict_journal.jsonl"
    lines = journal.read_text().splitlines()
    damaged = next(i for i, line in enumerate(lines) if '"0_R-CC"' in line)
    lines[damaged] = "[]"  # valid JSON, not a record
    journal.write_text("\n".join(lines) + "\n")
    assert run(images, exam_list, out, "--save-maps") == 0
    reported = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert reported == [f"mammoscreen: warning: {journal}: ignoring 1 unreadable line(s) ({damaged + 1}); the items "
                        "they recorded are recomputed"]
    after = stamps(out)
    assert after["0_R-CC"][1] != before["0_R-CC"][1]  # its maps were written again
    assert {n: after[n] for n in NAMES if n != "0_R-CC"} == {n: before[n] for n in NAMES if n != "0_R-CC"}
    assert (out / "gmic_demo" / "predictions.csv").read_bytes() == \
        (reference / "gmic_demo" / "predictions.csv").read_bytes()


@pytest.mark.slow  # two or three whole runs
def test_predictions_of_other_weights_are_never_reused(data, reference, tmp_path):
    images, exam_list = data

    def nudge(state):
        key = next(k for k, v in state.items() if v.ndim == 4)
        state[key] = state[key] * 1.5

    other = demo_checkpoint(tmp_path / "weights", "other", nudge)
    out = finished(reference, tmp_path)
    assert run(images, exam_list, out, "--save-maps", "--weights", str(other)) == 0
    assert run(images, exam_list, tmp_path / "fresh", "--save-maps", "--weights", str(other)) == 0
    ours = (out / "gmic_demo" / "predictions.csv").read_bytes()
    assert ours == (tmp_path / "fresh" / "gmic_demo" / "predictions.csv").read_bytes()
    assert ours != (reference / "gmic_demo" / "predictions.csv").read_bytes()


def test_a_nan_checkpoint_is_refused_before_any_prediction(data, tmp_path, capsys):
    images, exam_list = data

    def poison(state):
        next(v for v in state.values() if v.ndim == 4).view(-1)[0] = float("nan")

    weights = demo_checkpoint(tmp_path / "weights", "nan", poison)
    assert run(images, exam_list, tmp_path / "out", "--weights", str(weights)) == 1
    captured = capsys.readouterr()
    assert "gmic_demo: skipped" in captured.err and "non-finite values (NaN or infinity)" in captured.err
    assert not (tmp_path / "out" / "gmic_demo" / "predictions.csv").exists()


@pytest.mark.slow  # two or three whole runs
def test_outputs_that_are_not_numbers_fail_every_image_and_the_run(data, tmp_path, capsys):
    images, exam_list = data

    def overflow(state):  # finite weights whose activations overflow: the scores come out as NaN
        for key, value in list(state.items()):
            if value.ndim == 4:
                state[key] = value * 1e8

    weights = demo_checkpoint(tmp_path / "weights", "overflow", overflow)
    out = tmp_path / "out"
    assert run(images, exam_list, out, "--weights", str(weights)) == 1
    captured = capsys.readouterr()
    assert "every image failed in gmic_demo" in captured.err
    rows = read_rows(out / "failures.csv")
    assert [r["item"] for r in rows if r["stage"] == "gmic_demo"] == NAMES
    assert all("not a number" in r["reason"] for r in rows)
    assert read_rows(out / "gmic_demo" / "predictions.csv") == []  # no empty score cells
    journal = out / "gmic_demo" / ".predict_journal.jsonl"
    assert not journal.exists() or '"0_L-CC"' not in journal.read_text()  # nothing kept to reuse


def test_unknown_view_keys_stop_the_run_or_are_dropped_with_a_warning(data, tmp_path, capsys):
    import pickle

    images, exam_list = data
    with open(exam_list, "rb") as f:
        raw = pickle.load(f)
    raw[0]["L-XCCL"] = raw[0].pop("L-CC")
    with open(exam_list, "wb") as f:
        pickle.dump(raw, f)
    assert run(images, exam_list, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mammoscreen run: error: {exam_list}: exam 0, key 'L-XCCL': not a view")
    assert run(images, exam_list, tmp_path / "out", "--ignore-unknown-views") == 0
    reported = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert reported == [f"mammoscreen: warning: {exam_list}: leaving out the images of unknown view keys "
                        "(--ignore-unknown-views): exam 0 'L-XCCL': 0_L-CC"]
    assert [r["image_index"] for r in read_rows(tmp_path / "out" / "gmic_demo" / "predictions.csv")] == NAMES[1:]


@pytest.mark.slow
def test_implausible_inputs_are_predicted_with_a_warning_in_warnings_csv_and_the_report(data, tmp_path):
    from mammoscreen.report import build_report

    images, exam_list = data
    original = {n: read_png(images / f"{n}.png") for n in NAMES}
    write_png(images / "0_L-CC.png", (4095 - original["0_L-CC"]).astype(np.uint16))  # inverted
    write_png(images / "0_R-CC.png", original["0_R-CC"] + 40)  # no zero background
    write_png(images / "0_L-MLO.png", (original["0_L-MLO"] // 16).astype(np.uint16))  # 8-bit values, 16-bit file
    out = tmp_path / "out"
    assert main(["run", "--model", "gmic_demo", "--images", str(images), "--exam-list", str(exam_list),
                 "--output-dir", str(out), "--device", "cpu", "--workers", "1", "--quiet", "--bootstrap", "0"]) == 0
    rows = read_rows(out / "warnings.csv")
    found = {r["item"]: r["warning"] for r in rows}
    assert {r["stage"] for r in rows} == {"crop"} and set(found) == {"0_L-CC", "0_R-CC", "0_L-MLO"}
    assert found["0_L-CC"].startswith("inverted polarity")
    assert found["0_R-CC"].startswith("no zero background")
    assert found["0_L-MLO"].startswith("8-bit data in a 16-bit PNG")
    assert len(read_rows(out / "gmic_demo" / "predictions.csv")) == 4  # predicted all the same
    page = build_report(out).read_text()
    assert '<section id="warnings">' in page
    for name, message in found.items():
        assert name in page and message.split(":")[0] in page
