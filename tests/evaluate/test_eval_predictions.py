"""evaluate_predictions and ``mammoscreen evaluate``: the meta-repository's procedure on synthetic files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.utils import resample

from mammoscreen.cli import main
from mammoscreen.data.exams import VIEWS, Exam, load_exam_list, save_exam_list
from mammoscreen.evaluate import evaluate_predictions
from mammoscreen.evaluate.io import read_predictions
from mammoscreen.evaluate.levels import breast_level_data
from mammoscreen.evaluate.validation import EvaluationInputError
from mammoscreen.core.files import sha256_file


def make_study(n_exams=40, seed=0, drop_views=True, extra_images=False):
    """A synthetic exam list and GMIC-style image-level predictions (benign columns included)."""
    rng = np.random.default_rng(seed)
    exams, rows = [], []
    for i in range(n_exams):
        labels = {"left_malignant": int(rng.random() < 0.3), "right_malignant": int(rng.random() < 0.3),
                  "left_benign": int(rng.random() < 0.4), "right_benign": int(rng.random() < 0.4)}
        images = {}
        for view in VIEWS:
            count = 1
            if drop_views and rng.random() < 0.1:
                count = 0  # missing view
            elif extra_images and rng.random() < 0.2:
                count = 2  # two images of one view
            images[view] = [f"{i}_{view}_{k}" for k in range(count)]
        exams.append(Exam(images=images, cancer_label=labels))
        for view in VIEWS:
            side = "left" if view[0] == "L" else "right"
            for name in images[view]:
                rows.append({"image_index": name,
                             "benign_pred": round(float(rng.random() * 0.6 + 0.3 * labels[f"{side}_benign"]), 4),
                             "malignant_pred": round(float(rng.random() * 0.7 + 0.3 * labels[f"{side}_malignant"]), 4),
                             "benign_label": labels[f"{side}_benign"], "malignant_label": labels[f"{side}_malignant"]})
    return exams, pd.DataFrame(rows)


def write_study(tmp_path, exams, frame, name="predictions.csv"):
    exam_path = tmp_path / "exams.pkl"
    save_exam_list(exams, exam_path)
    csv_path = tmp_path / name
    frame.to_csv(csv_path, index=False)
    return csv_path, exam_path


def reference_breast_scores(exams, frame, column="malignant_pred", label="malignant"):
    """score.py's breast rule written plainly: per breast, mean over views of the view's first CSV row."""
    left, right, left_y, right_y = [], [], [], []
    for exam in exams:
        for side, views, scores, ys in (("left", ("L-CC", "L-MLO"), left, left_y),
                                        ("right", ("R-CC", "R-MLO"), right, right_y)):
            values = [frame[frame["image_index"].isin(exam.images[v])][column].iloc[0]
                      for v in views if exam.images[v]]
            if values:
                scores.append(sum(values) / len(values))
                ys.append(exam.cancer_label[f"{side}_{label}"])
    return np.array(left_y + right_y), np.array(left + right)


def test_image_and_breast_metrics_equal_sklearn(tmp_path):
    exams, frame = make_study(extra_images=True)
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    result = evaluate_predictions(csv_path, exam_path, n_bootstrap=0)
    assert list(result.levels) == ["image", "breast"]
    image = result.levels["image"]
    y, s = frame["malignant_label"].to_numpy(), frame["malignant_pred"].to_numpy()
    p, r, _ = skm.precision_recall_curve(y, s)
    assert image.n_cases == len(frame)
    assert abs(image.metrics["auroc"].value - skm.roc_auc_score(y, s)) < 1e-12
    assert abs(image.metrics["auprc_trapezoid"].value - skm.auc(r, p)) < 1e-12
    assert abs(image.metrics["average_precision"].value - skm.average_precision_score(y, s)) < 1e-12
    benign_auc = skm.roc_auc_score(frame["benign_label"], frame["benign_pred"])
    assert abs(image.metrics["benign_auroc"].value - benign_auc) < 1e-12

    breast = result.levels["breast"]
    y_b, s_b = reference_breast_scores(exams, frame)
    np.testing.assert_array_equal(breast.data.y_true, y_b)
    np.testing.assert_array_equal(breast.data.y_score, s_b)  # same arithmetic, bit for bit
    assert abs(breast.metrics["auroc"].value - skm.roc_auc_score(y_b, s_b)) < 1e-12
    y_bb, s_bb = reference_breast_scores(exams, frame, "benign_pred", "benign")
    assert abs(breast.metrics["benign_auroc"].value - skm.roc_auc_score(y_bb, s_bb)) < 1e-12
    assert breast.bootstrap is None and breast.metrics["auroc"].ci_low is None


def test_bootstrap_cis_equal_the_reference_procedure(tmp_path):
    """score.py after numpy.random.seed(S): breast level bootstrapped first, then image level, one stream."""
    exams, frame = make_study(n_exams=30, seed=4)
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    n_boot, seed = 80, 17
    result = evaluate_predictions(csv_path, exam_path, n_bootstrap=n_boot, seed=seed)

    np.random.seed(seed)
    expected = {}
    breast_y, breast_s = reference_breast_scores(exams, frame)
    levels = (("breast", breast_y, breast_s),
              ("image", frame["malignant_label"].to_numpy(), frame["malignant_pred"].to_numpy()))
    for name, y, s in levels:
        aucs, auprcs = [], []
        for _ in range(n_boot):
            labels, scores = map(np.array, zip(*resample(list(zip(y, s)), replace=True, n_samples=len(y))))
            if len(set(labels.tolist())) == 1:
                continue
            aucs.append(skm.roc_auc_score(labels, scores))
            p, r, _ = skm.precision_recall_curve(labels, scores)
            auprcs.append(skm.auc(r, p))
        expected[name] = [sorted(v) for v in (aucs, auprcs)]
    for name in ("breast", "image"):
        level = result.levels[name]
        used = len(expected[name][0])
        assert level.bootstrap["malignant"]["used"] == used
        for metric, values in zip(("auroc", "auprc_trapezoid"), expected[name]):
            low = values[int(0.025000000000000022 * used)]
            high = values[int(0.975 * used)]
            assert level.metrics[metric].ci_low == pytest.approx(low, abs=1e-12)
            assert level.metrics[metric].ci_high == pytest.approx(high, abs=1e-12)


def test_breast_level_file(tmp_path):
    exams, _ = make_study(n_exams=25, seed=2, drop_views=False)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"left_benign": rng.random(25), "right_benign": rng.random(25),
                          "left_malignant": rng.random(25), "right_malignant": rng.random(25)})
    frame.index.name = "index"
    exam_path = tmp_path / "exams.json"
    save_exam_list(exams, exam_path)
    frame.to_csv(tmp_path / "breast.csv")  # with an 'index' column, as some models write
    result = evaluate_predictions(tmp_path / "breast.csv", exam_path, n_bootstrap=0)
    assert list(result.levels) == ["breast"] and result.input_level == "breast"
    y = [e.cancer_label["left_malignant"] for e in exams] + [e.cancer_label["right_malignant"] for e in exams]
    s = frame["left_malignant"].tolist() + frame["right_malignant"].tolist()
    assert abs(result.levels["breast"].metrics["auroc"].value - skm.roc_auc_score(y, s)) < 1e-12
    yb = [e.cancer_label["left_benign"] for e in exams] + [e.cancer_label["right_benign"] for e in exams]
    sb = frame["left_benign"].tolist() + frame["right_benign"].tolist()
    assert abs(result.levels["breast"].metrics["benign_auroc"].value - skm.roc_auc_score(yb, sb)) < 1e-12
    with pytest.raises(EvaluationInputError, match="breast-level file; it has no image-level predictions"):
        evaluate_predictions(tmp_path / "breast.csv", exam_path, level="image")


def test_image_file_without_exam_list_gives_image_level_only(tmp_path):
    _, frame = make_study(n_exams=10)
    frame.to_csv(tmp_path / "p.csv", index=False)
    result = evaluate_predictions(tmp_path / "p.csv", n_bootstrap=0)
    assert list(result.levels) == ["image"]
    assert any("exam list" in w for w in result.warnings)
    with pytest.raises(EvaluationInputError, match="need the exam list"):
        evaluate_predictions(tmp_path / "p.csv", level="breast")


def test_few_cases_are_not_bootstrapped(tmp_path):
    exams, frame = make_study(n_exams=1, drop_views=False)
    exams[0].cancer_label.update(left_malignant=1, right_malignant=0)
    frame["malignant_label"] = [1, 0, 1, 0]
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    result = evaluate_predictions(csv_path, exam_path, n_bootstrap=50)
    assert result.levels["breast"].bootstrap is None
    assert any("fewer than 8 cases" in n for n in result.levels["breast"].notes)
    assert result.levels["image"].metrics["auroc"].ci_low is None


# ---------------------------------------------------------------------------------------------
# garbage in: clear errors naming the file, the problem and the fix
# ---------------------------------------------------------------------------------------------

def _write(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("image_index,malignant_pred\n0_L-CC,0.1\n", r"missing column\(s\) 'malignant_label'"),
    ("foo,bar\n1,2\n", "missing column.*'image_index'.*breast-level files need"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,nan,1\n", "'malignant_pred' has NaN on CSV line 3"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,,1\n",
     "'malignant_pred' has an empty value on CSV line 3"),
    ("image_index,malignant_pred,malignant_label\na,inf,0\nb,0.2,1\n", "has an infinite value .* line 2"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,high,1\n", "not a number \\('high'\\)"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,0.2,2\n", "labels 0 and 1, but has 2 on CSV line 3"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\nb,0.2,0\n", "all 2 cases .* are negative"),
    ("image_index,malignant_pred,malignant_label\na,0.1,0\na,0.2,1\n", r"\['a'\] appear more than once"),
    ("", "the file is empty"),
    ("image_index,malignant_pred,malignant_label\n", "no rows"),
])
def test_bad_image_level_files(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(EvaluationInputError, match=message) as info:
        evaluate_predictions(path, n_bootstrap=0)
    assert str(path) in str(info.value)


def test_image_names_absent_from_the_exam_list(tmp_path):
    exams, frame = make_study(n_exams=5)
    frame.loc[2, "image_index"] = "not_in_list"
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    with pytest.raises(EvaluationInputError, match=r"1 image\(s\) are not in the exam list .*not_in_list"):
        evaluate_predictions(csv_path, exam_path)


def test_exam_list_image_without_prediction(tmp_path):
    exams, frame = make_study(n_exams=5, drop_views=False)
    frame = frame[frame["image_index"] != "3_R-MLO_0"]
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    with pytest.raises(EvaluationInputError, match="no prediction for exam 3 view R-MLO"):
        evaluate_predictions(csv_path, exam_path)


def test_breast_file_row_count_must_equal_exam_count(tmp_path):
    exams, _ = make_study(n_exams=4, drop_views=False)
    exam_path = tmp_path / "exams.pkl"
    save_exam_list(exams, exam_path)
    path = _write(tmp_path, "left_malignant,right_malignant\n0.1,0.2\n0.3,0.4\n0.5,0.6\n")
    with pytest.raises(EvaluationInputError, match="has 3 rows but the exam list .* has 4 exams"):
        evaluate_predictions(path, exam_path)
    with pytest.raises(EvaluationInputError, match="need the exam list"):
        evaluate_predictions(path)
    path = _write(tmp_path, "index,left_malignant,right_malignant\n1,0.1,0.2\n0,0.3,0.4\n2,0.5,0.6\n3,0.1,0.1\n")
    with pytest.raises(EvaluationInputError, match="does not number the rows 0, 1, 2"):
        evaluate_predictions(path, exam_path)


def test_exam_without_labels(tmp_path):
    exams, frame = make_study(n_exams=5, drop_views=False)
    exams[2].cancer_label = None
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    with pytest.raises(EvaluationInputError, match="exam 2 has no 'left_malignant'"):
        evaluate_predictions(csv_path, exam_path)


# ---------------------------------------------------------------------------------------------
# real files in the official formats
# ---------------------------------------------------------------------------------------------

@pytest.mark.reference
@pytest.mark.parametrize("relative", ["end2end/predictions_visible.csv", "glam/predictions.csv",
                                      "frcnn_cad/predictions.csv"])
def test_official_prediction_files_aggregate_as_score_py(reference_dir, relative):
    """Files written by the official implementations (pandas index column, other row orders) read correctly."""
    exams = load_exam_list(reference_dir / "exam_list_before_cropping.pkl")
    table = read_predictions(reference_dir / relative)
    assert table.level == "image"
    frame = pd.read_csv(reference_dir / relative)
    data = breast_level_data(table, exams)
    _, expected = reference_breast_scores(exams, frame)
    np.testing.assert_array_equal(data.y_score, expected)
    # the sample exams have no malignant breast: a clear error, not a crash or a NaN
    with pytest.raises(EvaluationInputError, match="are negative"):
        evaluate_predictions(reference_dir / relative, exams)


# ---------------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------------

def test_evaluate_command_writes_outputs(tmp_path, capsys):
    exams, frame = make_study(n_exams=30, seed=8)
    csv_path, exam_path = write_study(tmp_path, exams, frame)
    out = tmp_path / "out"
    code = main(["evaluate", "--predictions", str(csv_path), "--exam-list", str(exam_path), "--output-dir", str(out),
                 "--bootstrap", "200", "--seed", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AUROC (95% CI)" in printed and "breast" in printed and "image" in printed
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["predictions"]["sha256"] == sha256_file(csv_path)
    assert summary["exam_list"]["sha256"] == sha256_file(exam_path)
    assert summary["bootstrap"]["replicates"] == 200 and summary["bootstrap"]["seed"] == 3
    assert summary["version"]
    breast = summary["levels"]["breast"]
    assert breast["bootstrap_replicates"]["malignant"]["used"] <= 200
    auroc = breast["metrics"]["auroc"]
    assert auroc["ci_low"] <= auroc["value"] <= auroc["ci_high"]
    api = evaluate_predictions(csv_path, exam_path, n_bootstrap=200, seed=3)
    assert breast["metrics"]["auroc"]["ci_high"] == api.levels["breast"].metrics["auroc"].ci_high
    for level in ("image", "breast"):
        for kind in ("roc", "pr"):
            for ext in ("png", "svg"):
                path = out / f"{level}_level_{kind}_curve.{ext}"
                assert path.stat().st_size > 1000
    assert (out / "image_level_roc_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "metrics.txt").read_text().startswith("Predictions:")


def test_evaluate_command_reports_bad_input_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, "image_index,malignant_pred,malignant_label\na,0.1,0\nb,nan,1\n")
    code = main(["evaluate", "--predictions", str(path), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "mammoscreen evaluate: error:" in err and "NaN on CSV line 3" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()
