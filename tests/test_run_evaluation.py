"""Evaluating and comparing the models of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mammoscreen.data import exams_from_data, load_exam_list, save_exam_list
from mammoscreen.engine import PredictionRun, write_predictions_csv
from mammoscreen.models.registry import get_model_spec
from mammoscreen.workflows.pipeline import ModelOutcome, RunResult
from mammoscreen.workflows.run_evaluation import evaluate_run

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def make_run(tmp_path, n_exams=40, labelled=True):
    rng = np.random.default_rng(0)
    data, image_rows, breast_rows, truth = [], [], [], []
    for e in range(n_exams):
        left, right = int(rng.random() < 0.3), int(rng.random() < 0.3)
        label = {"left_benign": 0, "right_benign": 0, "left_malignant": left, "right_malignant": right}
        data.append({"horizontal_flip": "NO", **{v: [f"{e}_{v}"] for v in VIEWS},
                     "cancer_label": label if labelled else None})
        for v in VIEWS:
            y = left if v[0] == "L" else right
            image_rows.append({"image_index": f"{e}_{v}", "benign_pred": 0.5, "malignant_pred": 0.4 * y + rng.random(),
                               "benign_label": 0, "malignant_label": y})
        breast_rows.append({"left_malignant": 0.3 * left + rng.random(), "right_malignant": 0.3 * right + rng.random()})
        truth.append((left, right))
    if not labelled:
        for d in data:
            del d["cancer_label"]
    exams_path = save_exam_list(exams_from_data(data), tmp_path / "cropped_exam_list.pkl")
    image_csv, breast_csv = tmp_path / "a.csv", tmp_path / "b.csv"
    write_predictions_csv(image_csv, image_rows, list(image_rows[0]))
    write_predictions_csv(breast_csv, breast_rows, list(breast_rows[0]))
    outcomes = {
        "gmic": ModelOutcome("gmic", "1", get_model_spec("gmic"), "done", run=PredictionRun(image_csv, image_rows, [])),
        "breasty": ModelOutcome("breasty", None, get_model_spec("gmic"), "done",
                                run=PredictionRun(breast_csv, breast_rows, [])),
        "absent": ModelOutcome("absent", None, get_model_spec("gmic"), "skipped", reason="no weights"),
    }
    return RunResult(exams_path, {}, {}, {}, outcomes), breast_rows, truth


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_each_model_is_evaluated_and_the_models_compared(tmp_path):
    result, breast_rows, truth = make_run(tmp_path)
    out = tmp_path / "out"
    evaluation = evaluate_run(result, out, n_bootstrap=200, log=lambda m: None)
    assert set(evaluation.evaluations) == {"gmic", "breasty"} and not evaluation.problems
    y = np.array([t[0] for t in truth] + [t[1] for t in truth])
    scores = np.array([r["left_malignant"] for r in breast_rows] + [r["right_malignant"] for r in breast_rows])
    breast = evaluation.evaluations["breasty"].levels["breast"].metrics["auroc"]
    assert breast.value == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert breast.ci_low < breast.value < breast.ci_high
    metrics = json.loads((out / "gmic" / "evaluation" / "metrics.json").read_text())
    assert metrics["bootstrap"]["replicates"] == 200 and set(metrics["levels"]) == {"image", "breast"}
    comparison = json.loads((out / "comparison" / "comparison.json").read_text())
    assert comparison["level"] == "breast" and set(comparison["sources"]) == {"gmic", "breasty"}
    assert evaluation.comparison.pairs  # DeLong etc. for the one pair


def test_unlabelled_data_is_not_evaluated(tmp_path):
    result, _, _ = make_run(tmp_path, labelled=False)
    messages = []
    evaluation = evaluate_run(result, tmp_path / "out", n_bootstrap=0, log=messages.append)
    assert not evaluation.evaluations and "no cancer labels" in messages[0]


def test_single_class_labels_are_reported_once(tmp_path):
    result, _, _ = make_run(tmp_path, n_exams=3)
    exams = load_exam_list(result.cropped_exam_list)
    for exam in exams:
        exam.cancer_label.update(left_malignant=0, right_malignant=0)
    save_exam_list(exams, result.cropped_exam_list)
    messages = []
    evaluation = evaluate_run(result, tmp_path / "out", n_bootstrap=0, log=messages.append)
    assert not evaluation.evaluations and len(messages) == 1 and "both classes" in messages[0]
