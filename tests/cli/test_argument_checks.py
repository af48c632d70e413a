"""Arguments validated at the door (issue 16.2): every numeric option has its range and every path option its
existence/type check, refused while parsing in argparse's terms - exit status 2 and one line naming the
option - instead of failing per image or reporting "done 0 failed 0"."""

from __future__ import annotations

import pytest

from mammoscreen.cli import build_parser, main


@pytest.fixture
def paths(tmp_path):
    """Existing inputs of each kind, and a file where a directory is expected."""
    images = tmp_path / "images"
    images.mkdir()
    exam_list = tmp_path / "exam_list.pkl"
    exam_list.write_bytes(b"")
    table = tmp_path / "table.csv"
    table.write_text("x\n")
    return {"images": str(images), "exams": str(exam_list), "csv": str(table), "out": str(tmp_path / "out"),
            "missing": str(tmp_path / "missing"), "file": str(table), "tmp": str(tmp_path)}


WEIGHTS_MISSING = ("weights not found: {missing} (give a checkpoint file, a directory holding the official file names, "
                   "or 'official')")

# (command line with {placeholders}, the option named in the error, what the message says)
CASES = [
    # the cases the robustness run found accepted
    ("crop --images {images} --exam-list {exams} --output-dir {out} --iterations -5", "--iterations",
     "must be at least 1, got -5"),
    ("crop --images {images} --exam-list {exams} --output-dir {out} --buffer-size -500", "--buffer-size",
     "must be at least 0, got -500"),
    ("centers --images {images} --exam-list {exams} --output {out}.pkl --window 0 0", "--window",
     "must be at least 1, got 0"),
    ("centers --images {images} --exam-list {exams} --output {out}.pkl --window -3 100", "--window",
     "must be at least 1, got -3"),
    ("validate --images {images} --exam-list {exams} --max-issues -5", "--max-issues", "must be at least 0, got -5"),
    ("run --images {missing} --exam-list {exams} --output-dir {out}", "--images", "directory not found: {missing}"),
    # every other numeric option
    ("crop --images {images} --exam-list {exams} --output-dir {out} --iterations 0", "--iterations",
     "must be at least 1, got 0"),
    ("crop --images {images} --exam-list {exams} --output-dir {out} --workers 0", "--workers",
     "must be at least 1, got 0"),
    ("centers --images {images} --exam-list {exams} --output {out}.pkl --window 100000 10", "--window",
     "must be at most 10000, got 100000"),
    ("run --images {images} --exam-list {exams} --output-dir {out} --bootstrap -1", "--bootstrap",
     "must be at least 0, got -1"),
    ("run --images {images} --exam-list {exams} --output-dir {out} --batch-size 0", "--batch-size",
     "must be at least 1, got 0"),
    ("run --images {images} --exam-list {exams} --output-dir {out} --seed -1", "--seed", "must be at least 0, got -1"),
    ("predict --images {images} --exam-list {exams} --output-dir {out} --epochs 0", "--epochs",
     "must be at least 1, got 0"),
    ("predict --images {images} --exam-list {exams} --output-dir {out} --heatmap-batch-size -2",
     "--heatmap-batch-size", "must be at least 1, got -2"),
    ("convert-dicom {images} --output-dir {out} --voi-index -1", "--voi-index", "must be at least 0, got -1"),
    ("convert-dicom {images} --output-dir {out} --bit-depth 0", "--bit-depth", "must be at least 1, got 0"),
    ("inspect {file} --bit-depth 17", "--bit-depth", "must be at most 16, got 17"),
    ("synth --output-dir {out} --exams 0", "--exams", "must be at least 1, got 0"),
    ("synth --output-dir {out} --exams 2 --scale 0", "--scale", "must be at least 0.05, got 0"),
    ("synth --output-dir {out} --exams 2 --scale nan", "--scale", "must be a finite number, got 'nan'"),
    ("synth --output-dir {out} --exams 2 --p-benign 1.5", "--p-benign", "must be at most 1, got 1.5"),
    ("synth --output-dir {out} --exams 2 --p-malignant -0.1", "--p-malignant", "must be at least 0, got -0.1"),
    ("synth --output-dir {out} --exams 2 --contrast 0", "--contrast", "must be more than 0, got 0"),
    ("synth --output-dir {out} --exams 2 --background-noise 2", "--background-noise", "must be at most 1, got 2"),
    ("synth --output-dir {out} --exams 2 --start -1", "--start", "must be at least 0, got -1"),
    ("synth --output-dir {out} --exams 2 --seed x", "--seed", "expected a whole number, got 'x'"),
    ("evaluate --predictions {csv} --output-dir {out} --bootstrap -3", "--bootstrap", "must be at least 0, got -3"),
    ("evaluate --predictions {csv} --output-dir {out} --confidence 1", "--confidence", "must be less than 1, got 1"),
    ("compare {csv} {csv} --output-dir {out} --calibration-bins 1", "--calibration-bins",
     "must be at least 2, got 1"),
    ("compare {csv} {csv} --output-dir {out} --specificities 0.9 1.2", "--specificities",
     "must be less than 1, got 1.2"),
    ("reader-study {csv} --output-dir {out} --seed -4", "--seed", "must be at least 0, got -4"),
    ("mrmc {csv} --output-dir {out} --margin 0", "--margin", "must be more than 0, got 0"),
    ("localize --maps {images} --segmentations {images} --output-dir {out} --threshold 1.5", "--threshold",
     "must be at most 1, got 1.5"),
    ("report {images} --max-gallery -1", "--max-gallery", "must be at least 0, got -1"),
    ("demo --exams 1", "--exams", "must be at least 2, got 1"),
    ("demo --bootstrap -1", "--bootstrap", "must be at least 0, got -1"),
    ("demo --workers 0", "--workers", "must be at least 1, got 0"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --lr 0", "--lr",
     "must be more than 0, got 0"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --lr inf", "--lr",
     "must be a finite number, got 'inf'"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --beta -1", "--beta",
     "must be at least 0, got -1"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --percent-t 5",
     "--percent-t", "must be at most 1, got 5"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --label-smoothing 1",
     "--label-smoothing", "must be less than 1, got 1"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --workers -1",
     "--workers", "must be at least 0, got -1"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --epochs 0",
     "--epochs", "must be at least 1, got 0"),
    # every path option: inputs must exist and be of the right kind, outputs must not be the wrong kind
    ("crop --images {file} --exam-list {exams} --output-dir {out}", "--images", "{file} is a file, not a directory"),
    ("crop --images {images} --exam-list {images} --output-dir {out}", "--exam-list",
     "{images} is a directory, not a file"),
    ("crop --images {images} --exam-list {exams} --output-dir {file}", "--output-dir",
     "{file} is a file; the output must be a directory"),
    ("crop --images {images} --exam-list {exams} --output-dir {file}/sub", "--output-dir",
     "{file} is a file, so {file}/sub cannot be created"),
    ("centers --images {images} --exam-list {exams} --output {images}", "--output",
     "{images} is a directory; give a file name"),
    ("predict --images {images} --exam-list {missing} --output-dir {out}", "--exam-list", "file not found: {missing}"),
    ("predict --images {images} --exam-list {exams} --output-dir {out} --segmentations {missing}", "--segmentations",
     "directory not found: {missing}"),
    ("predict --images {images} --exam-list {exams} --output-dir {out} --weights {missing}", "--weights",
     WEIGHTS_MISSING),
    ("run --images {images} --exam-list {exams} --output-dir {out} --weights gmic={missing}", "--weights",
     WEIGHTS_MISSING),
    ("run --images {images} --exam-list {exams} --output-dir {out} --patch-weights {missing}", "--patch-weights",
     WEIGHTS_MISSING),
    ("convert-dicom {missing} --output-dir {out}", "INPUT_DIR", "directory not found: {missing}"),
    ("convert-dicom {images} --output-dir {out} --labels {missing}", "--labels", "file not found: {missing}"),
    ("inspect {missing}", "FILE.dcm", "file not found: {missing}"),
    ("validate --images {missing} --exam-list {exams}", "--images", "directory not found: {missing}"),
    ("synth --output-dir {file} --exams 2", "--output-dir", "{file} is a file; the output must be a directory"),
    ("import-dataset rsna --root {missing} --output-dir {out}", "--root", "directory not found: {missing}"),
    ("import-dataset rsna --root {images} --output-dir {file}", "--output-dir",
     "{file} is a file; the output must be a directory"),
    ("evaluate --predictions {missing} --output-dir {out}", "--predictions", "file not found: {missing}"),
    ("evaluate --predictions {csv} --exam-list {missing} --output-dir {out}", "--exam-list",
     "file not found: {missing}"),
    ("compare {csv} {missing} --output-dir {out}", "predictions", "file not found: {missing}"),
    ("reader-study {missing} --output-dir {out}", "file", "file not found: {missing}"),
    ("mrmc {images} --output-dir {out}", "file", "{images} is a directory, not a file"),
    ("localize --maps {missing} --segmentations {images} --output-dir {out}", "--maps",
     "directory not found: {missing}"),
    ("localize --maps {images} --segmentations {missing} --output-dir {out}", "--segmentations",
     "directory not found: {missing}"),
    ("localize --maps {images} --segmentations {images} --output-dir {out} --exam-list {missing}", "--exam-list",
     "file not found: {missing}"),
    ("report {missing}", "RUN_DIR", "directory not found: {missing}"),
    ("report {images} --output {images}", "--output", "{images} is a directory; give a file name"),
    ("report {images} --segmentations {missing}", "--segmentations", "directory not found: {missing}"),
    ("demo --output-dir {file}", "--output-dir", "{file} is a file; the output must be a directory"),
    ("train --images {missing} --exam-list {exams} --val-exam-list {exams} --output-dir {out}", "--images",
     "directory not found: {missing}"),
    ("train --images {images} --val-images {missing} --exam-list {exams} --val-exam-list {exams} --output-dir {out}",
     "--val-images", "directory not found: {missing}"),
    ("train --images {images} --exam-list {exams} --val-exam-list {missing} --output-dir {out}", "--val-exam-list",
     "file not found: {missing}"),
    ("train --images {images} --exam-list {exams} --val-exam-list {exams} --output-dir {out} --init {missing}",
     "--init", "file not found: {missing}"),
]


@pytest.mark.parametrize("line, option, message", CASES, ids=[f"{c[0].split()[0]} {c[1]}: {c[2][:30]}" for c in CASES])
def test_bad_argument_refused_while_parsing(paths, capsys, line, option, message):
    argv = line.format(**paths).split()
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one line: the message and where to read more, no usage block
    assert lines[0] == (f"mammoscreen {argv[0]}: error: argument {option}: {message.format(**paths)} "
                        f"(see 'mammoscreen {argv[0]} --help')"), err


def test_good_values_and_defaults_still_parse(paths):
    parser = build_parser()
    args = parser.parse_args(f"crop --images {paths['images']} --exam-list {paths['exams']} --output-dir "
                             f"{paths['out']}/new/deeper".split())
    assert (args.iterations, args.buffer_size) == (100, 50)
    args = parser.parse_args(f"centers --images {paths['images']} --exam-list {paths['exams']} --output "
                             f"{paths['out']}.pkl --window 2944 1920".split())
    assert args.window == [2944, 1920]
    args = parser.parse_args(f"run --images {paths['images']} --exam-list {paths['exams']} --output-dir {paths['out']} "
                             f"--weights official --weights gmic={paths['images']} --bootstrap 0".split())
    assert args.weights == ["official", f"gmic={paths['images']}"] and args.bootstrap == 0
    args = parser.parse_args("synth --output-dir x --exams 3 --scale 0.25 --p-benign 0 --p-malignant 1".split())
    assert (args.scale, args.p_benign, args.p_malignant) == (0.25, 0.0, 1.0)
    args = parser.parse_args(f"train --images {paths['images']} --exam-list {paths['exams']} --val-exam-list "
                             f"{paths['exams']} --output-dir {paths['out']} --init official --percent-t 1".split())
    assert args.init == "official" and args.percent_t == 1.0
    assert str(parser.parse_args(["demo"]).output_dir) == "mammoscreen-demo"
