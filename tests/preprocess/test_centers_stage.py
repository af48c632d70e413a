"""The centre stage over a dataset: each image's centre is the one :func:`optimal_center` finds on the image as it
faces right, with the window of its view's angle; bad input is reported, finished work is kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mammoscreen.core.stages import StageReport
from mammoscreen.data import exams_from_data, load_exam_list, write_png
from mammoscreen.data.exams import ExamListError, iter_images
from mammoscreen.preprocess.centers import centers_dataset, optimal_center

WINDOWS = {"CC": (40, 24), "MLO": (30, 36)}  # different per angle, so a swapped window shows


def cropped_dataset(tmp_path, flip="NO"):
    """Four cropped images with tissue in different places, and an exam list with the crop stage's points."""
    folder = tmp_path / "cropped"
    rng = np.random.default_rng(7)
    raw = {"horizontal_flip": flip}
    for k, view in enumerate(("L-CC", "R-CC", "L-MLO", "R-MLO")):
        image = np.zeros((90 + 7 * k, 50 + 3 * k), np.uint16)
        top = int(rng.integers(0, 40))
        image[top:top + 30, : 20 + 5 * k] = 1000 + k
        write_png(folder / f"i{k}.png", image)
        raw[view] = [f"i{k}"]
        raw.setdefault("rightmost_points", {})[view] = [((top, top + 29), 20 + 5 * k)]
        raw.setdefault("bottommost_points", {})[view] = [(top + 29, (0, 19 + 5 * k))]
    return folder, exams_from_data([raw])


@pytest.mark.parametrize("flip", ["NO", "YES"])
def test_each_centre_is_found_on_the_image_facing_right_with_its_angle_window(tmp_path, flip):
    folder, exams = cropped_dataset(tmp_path, flip)
    report = StageReport("centres")
    centred, failures = centers_dataset(folder, exams, windows=WINDOWS, progress=False, report=report)
    assert failures == [] and report.total == 4
    from mammoscreen.data import read_png

    for record in iter_images(centred):
        image = read_png(folder / f"{record.name}.png")
        if record.flip:
            image = image[:, ::-1]
        expected = optimal_center(image, record.view, record.metadata["rightmost_points"][1],
                                  record.metadata["bottommost_points"][0], WINDOWS[record.angle])
        assert record.metadata["best_center"] == expected
    # some images are mirrored before the search, with either flip convention
    assert any(r.flip for r in iter_images(centred))


def test_an_exam_list_without_crop_points_is_refused(tmp_path):
    exams = exams_from_data([{"L-CC": ["a"], "rightmost_points": {"L-CC": [((1, 2), 3)]}}])
    with pytest.raises(ExamListError, match=r"^image 'a' \(exam 0, L-CC\) has no 'bottommost_points': the exam list "
                                            r"must come from the crop stage \('mammoscreen crop'\)$"):
        centers_dataset(tmp_path, exams, windows=WINDOWS, progress=False)


def test_an_unreadable_image_is_left_out_and_reported(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    (folder / "i1.png").write_bytes(b"not a png")
    output = tmp_path / "data.pkl"
    centred, failures = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False)
    assert [f.name for f in failures] == ["i1"]
    assert centred[0].images["R-CC"] == [] and load_exam_list(output) == centred
    assert (tmp_path / ".data.pkl.journal.jsonl").is_file()


def test_a_re_run_reuses_finished_centres_and_a_new_window_recomputes_them(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    output = tmp_path / "data.json"
    first, _ = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False)
    report = StageReport("centres")
    again, _ = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False, report=report)
    assert again == first and report.reused == 4
    other = {"CC": (30, 20), "MLO": (30, 20)}
    report = StageReport("centres")
    changed, _ = centers_dataset(folder, exams, output, windows=other, progress=False, report=report)
    assert changed != first and load_exam_list(output) == changed and report.computed == 4


def test_an_exam_list_that_cannot_be_written_is_reported_and_not_left_stale(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    output = tmp_path / "data.pkl"
    output.mkdir()  # a directory where the file should go: writing it fails
    report = StageReport("centres")
    centred, failures = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False, report=report)
    assert [f.name for f in failures] == ["data.pkl"] and report.output_failed
    assert report.failures[-1] is failures[-1] and failures[-1].stage == "centres"
    assert len(list(iter_images(centred))) == 4  # the centres are still returned


def test_without_a_report_the_failures_are_named_after_the_stage(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    (folder / "i1.png").write_bytes(b"not a png")
    output = tmp_path / "data.pkl"
    output.mkdir()  # and the exam list cannot be written
    centred, failures = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False)
    assert [(f.name, f.stage) for f in failures] == [("i1", "centres"), ("data.pkl", "centres")]
    assert failures[-1].io_error and "directory" in failures[-1].reason.lower()
    assert len(list(iter_images(centred))) == 3


def test_a_changed_cropped_image_is_searched_again(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    output = tmp_path / "data.json"
    first, _ = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False)
    # move the tissue of the CC image i0 to the bottom: same crop points, another best row
    image = np.zeros((90, 50), np.uint16)
    image[60:90, :20] = 1000
    write_png(folder / "i0.png", image)
    report = StageReport("centres")
    again, _ = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False, report=report)
    assert (report.computed, report.reused) == (1, 3)
    # rows 20..70 keep the 40-row window inside 90 rows; rows 60-89 are covered best from row 70
    assert again[0].image_metadata["best_center"]["L-CC"] == [(70, 20 - 12 - 1)]
    assert again[0].image_metadata["best_center"]["R-CC"] == first[0].image_metadata["best_center"]["R-CC"]


def test_a_journal_entry_without_a_centre_is_computed_again(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    output = tmp_path / "data.json"
    first, _ = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False)
    journal = tmp_path / ".data.json.journal.jsonl"
    text = journal.read_text()
    assert text.count('"best_center"') == 4
    journal.write_text(text.replace('"best_center"', '"other"', 1))  # a dict, but not a centre
    report = StageReport("centres")
    again, failures = centers_dataset(folder, exams, output, windows=WINDOWS, progress=False, report=report)
    assert again == first and failures == [] and (report.computed, report.reused) == (1, 3)


def test_progress_is_shown_unless_switched_off(tmp_path, capsys):
    folder, exams = cropped_dataset(tmp_path)
    centers_dataset(folder, exams, windows=WINDOWS)
    assert "centres: 100%" in capsys.readouterr().err
    centers_dataset(folder, exams, windows=WINDOWS, progress=False)
    assert capsys.readouterr().err == ""


def test_a_given_pool_runs_the_searches(tmp_path):
    folder, exams = cropped_dataset(tmp_path)
    submitted = []

    class CountingPool(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):
            submitted.append(args[0][0])
            return super().submit(fn, *args, **kwargs)

    with CountingPool(max_workers=1) as pool:
        centred, failures = centers_dataset(folder, exams, windows=WINDOWS, progress=False, pool=pool)
    assert sorted(submitted) == ["i0", "i1", "i2", "i3"] and failures == []
    assert centred == centers_dataset(folder, exams, windows=WINDOWS, progress=False)[0]
