"""Labels that disagree (issue 16.5) and evaluation messages that point at the real problem (issue 16.6)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mammoscreen.cli import main
from mammoscreen.data.exams import VIEWS, Exam, save_exam_list
from mammoscreen.evaluate import evaluate_predictions
from mammoscreen.evaluate.validation import EvaluationInputError


def study(tmp_path, n_exams=12, flip=()):
    """An exam list and an image-level CSV whose labels follow the exam list, except the images in ``flip``."""
    rng = np.random.default_rng(5)
    exams, rows = [], []
    for i in range(n_exams):
        labels = {"left_malignant": i % 3 == 0, "right_malignant": i % 4 == 1, "left_benign": i % 2,
                  "right_benign": 0}
        labels = {k: int(v) for k, v in labels.items()}
        exams.append(Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label=labels))
        for view in VIEWS:
            side = "left" if view[0] == "L" else "right"
            name = f"{i}_{view}"
            label = labels[f"{side}_malignant"]
            rows.append({"image_index": name, "malignant_pred": round(float(rng.random()), 4),
                         "malignant_label": 1 - label if name in flip else label})
    save_exam_list(exams, tmp_path / "exams.pkl")
    pd.DataFrame(rows).to_csv(tmp_path / "predictions.csv", index=False)
    return tmp_path / "predictions.csv", tmp_path / "exams.pkl"


def test_agreeing_labels_say_where_each_level_takes_them_from(tmp_path, capsys):
    predictions, exams = study(tmp_path)
    assert main(["evaluate", "--predictions", str(predictions), "--exam-list", str(exams), "--output-dir",
                 str(tmp_path / "out"), "--bootstrap", "0"]) == 0
    printed = capsys.readouterr().out
    assert ("Labels:      image level from the prediction file's malignant_label/benign_label columns; breast level "
            "from the exam list's cancer_label") in printed
    assert "disagree" not in printed
    labels = json.loads((tmp_path / "out" / "metrics.json").read_text())["labels"]
    assert labels == {"sources": {"image": "the prediction file's malignant_label/benign_label columns",
                                  "breast": "the exam list's cancer_label"},
                      "rows_compared": 48, "rows_disagreeing": 0, "examples": []}


def test_disagreeing_labels_are_counted_in_a_warning(tmp_path, capsys):
    """Issue 16.5: the file's labels contradicted the exam list's and one of them was used without a word."""
    predictions, exams = study(tmp_path, flip={"2_L-MLO", "5_R-CC"})
    result = evaluate_predictions(predictions, exams, n_bootstrap=0)
    expected = (f"{predictions}: the labels of 2 of 48 rows disagree with {exams}'s cancer_label (e.g. CSV line 12, "
                "image 2_L-MLO: malignant_label 1, exam list left_malignant 0); the image level uses the file's "
                "labels, the breast level the exam list's - fix whichever is wrong, or pass --strict to stop on this")
    assert expected in result.warnings
    assert result.labels["rows_disagreeing"] == 2
    assert result.labels["examples"][1] == "CSV line 23, image 5_R-CC: malignant_label 0, exam list right_malignant 1"
    assert main(["evaluate", "--predictions", str(predictions), "--exam-list", str(exams), "--output-dir",
                 str(tmp_path / "out"), "--bootstrap", "0"]) == 0
    assert f"Warning: {expected}" in capsys.readouterr().out


def test_strict_makes_disagreeing_labels_an_error(tmp_path, capsys):
    predictions, exams = study(tmp_path, flip={"2_L-MLO"})
    with pytest.raises(EvaluationInputError, match=r"--strict: the labels of 1 of 48 rows disagree"):
        evaluate_predictions(predictions, exams, n_bootstrap=0, strict=True)
    code = main(["evaluate", "--predictions", str(predictions), "--exam-list", str(exams), "--output-dir",
                 str(tmp_path / "out"), "--bootstrap", "0", "--strict"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith(f"mammoscreen evaluate: error: {predictions}: --strict: the labels "
                                                   "of 1 of 48 rows disagree")
    assert not (tmp_path / "out" / "metrics.json").exists()
    # agreeing labels pass --strict
    agreeing = tmp_path / "agreeing"
    agreeing.mkdir()
    predictions, exams = study(agreeing)
    assert evaluate_predictions(predictions, exams, n_bootstrap=0, strict=True).labels["rows_disagreeing"] == 0


def test_labels_of_files_without_an_exam_list(tmp_path):
    predictions, _ = study(tmp_path)
    result = evaluate_predictions(predictions, None, n_bootstrap=0)
    assert result.labels == {"sources": {"image": "the prediction file's malignant_label/benign_label columns"},
                             "rows_compared": 0, "rows_disagreeing": 0, "examples": []}


# ---------------------------------------------------------------- issue 16.6

@pytest.mark.parametrize("text, line, fields", [
    ("image_index,malignant_pred,malignant_label\na,0.1,0,extra\nb,0.2,1\n", 2, 4),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,0.2\nc,0.3,1\n", 3, 2),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,0.9,1\nc,0.3,1,x,y\n", 4, 5),
])
def test_ragged_csv_names_the_line_with_the_wrong_number_of_fields(tmp_path, text, line, fields):
    """A row with an extra field was reported as "'image_index' is empty on CSV line 3" (or another line)."""
    path = tmp_path / "ragged.csv"
    path.write_text(text)
    with pytest.raises(EvaluationInputError, match=rf"ragged\.csv: CSV line {line} has {fields} field\(s\) but the "
                                                   r"header has 3; fix that line"):
        evaluate_predictions(path, n_bootstrap=0)


def test_reader_study_without_case_id_names_the_cli_option(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": [0, 1] * 10, "Reader01_POM": rng.random(20), "AI_model_POM": rng.random(20)})
    frame.to_csv(tmp_path / "study.csv", index=False)
    assert main(["reader-study", str(tmp_path / "study.csv"), "--output-dir", str(tmp_path / "out"),
                 "--bootstrap", "10"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"mammoscreen reader-study: error: {tmp_path / 'study.csv'}: no 'case_ID' column to resample "
                    "exams by; resample single rows instead: --resample row (in Python: resample='row')")
    assert main(["reader-study", str(tmp_path / "study.csv"), "--output-dir", str(tmp_path / "out"),
                 "--bootstrap", "10", "--resample", "row"]) == 0


def write_imrmc(path, scores):
    """An iMRMC file: scores[reader][modality] = list of 6 case scores; cases 3-5 abnormal."""
    lines = ["N0: 3", "N1: 3", f"NR: {len(scores)}", "NM: 2", "BEGIN DATA:"]
    lines += [f"-1,c{c},truth,{int(c >= 3)}" for c in range(6)]
    for reader, per_modality in scores.items():
        for modality, values in per_modality.items():
            lines += [f"{reader},c{c},{modality},{v}" for c, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_mrmc_with_every_score_tied_says_there_is_no_ranking_information(tmp_path, capsys):
    """It printed F = nan and (0.5, 0.5) intervals with no note."""
    path = write_imrmc(tmp_path / "tied.imrmc", {r: {m: [5] * 6 for m in ("A", "B")} for r in ("r1", "r2")})
    assert main(["mrmc", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert ("Note: every reader gives every case the same score in every modality: the data carry no ranking "
            "information - each AUC is 0.5 from ties alone, every variance is 0, so F and p are undefined (nan)") \
        in printed
    assert json.loads((tmp_path / "out" / "mrmc.json").read_text())["notes"][0].startswith("every reader gives")


def test_mrmc_names_the_readers_whose_scores_all_tie(tmp_path, capsys):
    ranked = [1, 2, 3, 4, 5, 6]
    path = write_imrmc(tmp_path / "some.imrmc", {"r1": {"A": ranked, "B": [3] * 6}, "r2": {"A": ranked, "B": ranked},
                                                 "r3": {"A": [2, 1, 3, 5, 4, 6], "B": ranked}})
    assert main(["mrmc", str(path), "--output-dir", str(tmp_path / "out")]) == 0
    assert ("Note: r1 in B: the same score for every case - no ranking information (AUC 0.5 from ties alone)"
            in capsys.readouterr().out)
    path = write_imrmc(tmp_path / "none.imrmc", {r: {"A": ranked, "B": [1, 3, 2, 4, 6, 5]} for r in ("r1", "r2")})
    assert main(["mrmc", str(path), "--output-dir", str(tmp_path / "out2")]) == 0
    assert "no ranking information" not in capsys.readouterr().out
