"""Model comparison: paired bootstrap, compare_models, the command (DeLong itself: test_eval_delong.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mammoscreen.cli import main
from mammoscreen.data.exams import VIEWS, Exam, save_exam_list
from mammoscreen.evaluate import compare_models, compare_scores
from mammoscreen.evaluate.bootstrap import bootstrap_counts
from mammoscreen.evaluate.compare import paired_bootstrap_difference
from mammoscreen.evaluate.validation import EvaluationInputError


def test_paired_bootstrap_difference_uses_the_same_cases():
    rng = np.random.default_rng(2)
    y = (rng.random(120) < 0.3).astype(int)
    a, b = rng.random(120) + 0.6 * y, rng.random(120) + 0.2 * y
    estimate = paired_bootstrap_difference(y, a, b, 80, random_state=5)
    diffs = []
    for counts in bootstrap_counts(120, 80, random_state=5):
        for row in counts:
            idx = np.repeat(np.arange(120), row)
            diffs.append(skm.roc_auc_score(y[idx], a[idx]) - skm.roc_auc_score(y[idx], b[idx]))
    diffs = np.sort(diffs)
    assert estimate.value == pytest.approx(skm.roc_auc_score(y, a) - skm.roc_auc_score(y, b), abs=1e-12)
    assert estimate.ci_low == pytest.approx(diffs[int(0.025000000000000022 * 80)], abs=1e-12)
    assert estimate.ci_high == pytest.approx(diffs[int(0.975 * 80)], abs=1e-12)


def test_compare_scores_tables():
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.25).astype(int)
    scores = {"strong": 1 / (1 + np.exp(-(rng.normal(size=200) + 2 * y - 1))), "weak": rng.random(200)}
    result = compare_scores(y, scores, n_bootstrap=150, seed=1, specificities=(0.9,), sensitivities=(0.8,))
    strong = result.models["strong"]
    assert strong.metrics["auroc"].value == pytest.approx(skm.roc_auc_score(y, scores["strong"]), abs=1e-12)
    assert strong.metrics["auroc"].ci_low < strong.metrics["auroc"].value < strong.metrics["auroc"].ci_high
    op = strong.sensitivity_at_specificity[0.9]
    assert op.ci_low <= op.value <= op.ci_high and op.reached >= 0.9
    assert strong.brier_score == pytest.approx(skm.brier_score_loss(y, scores["strong"]), abs=1e-12)
    assert len(strong.calibration["count"]) <= 10
    (pair,) = result.pairs
    assert (pair.model_a, pair.model_b) == ("strong", "weak")
    assert pair.delong.difference > 0 and pair.bootstrap_difference.ci_low > 0
    json.dumps(result.to_dict())  # plain data
    # scores that are not probabilities get no calibration, with a note
    result = compare_scores(y, {"logit": rng.normal(size=200)}, n_bootstrap=0)
    assert result.models["logit"].calibration is None and "not probabilities" in result.notes[0]


def _study(tmp_path, n_exams=30, seed=0):
    rng = np.random.default_rng(seed)
    exams, rows = [], []
    for i in range(n_exams):
        labels = {"left_malignant": int(rng.random() < 0.3), "right_malignant": int(rng.random() < 0.3)}
        exams.append(Exam(images={v: [f"{i}_{v}"] for v in VIEWS}, cancer_label=labels))
        for v in VIEWS:
            rows.append((f"{i}_{v}", labels["left_malignant" if v[0] == "L" else "right_malignant"]))
    save_exam_list(exams, tmp_path / "exams.pkl")
    paths = []
    for k, strength in enumerate((0.6, 0.2)):
        frame = pd.DataFrame(rows, columns=["image_index", "malignant_label"])
        frame["malignant_pred"] = rng.random(len(frame)) * (1 - strength) + strength * frame["malignant_label"]
        if k == 1:
            frame = frame.iloc[::-1]  # another row order: compare must align by image name
        paths.append(tmp_path / f"model{k}.csv")
        frame[["image_index", "malignant_pred", "malignant_label"]].to_csv(paths[-1], index=False)
    return exams, paths


def test_compare_models_aligns_files(tmp_path):
    exams, paths = _study(tmp_path)
    image = compare_models(paths, ["A", "B"], level="image", n_bootstrap=0)
    frames = [pd.read_csv(p).set_index("image_index").loc[pd.read_csv(paths[0])["image_index"]] for p in paths]
    y = frames[0]["malignant_label"].to_numpy()
    for name, frame in zip("AB", frames):
        assert image.models[name].metrics["auroc"].value == pytest.approx(
            skm.roc_auc_score(y, frame["malignant_pred"]), abs=1e-12)
    breast = compare_models(paths, ["A", "B"], tmp_path / "exams.pkl", n_bootstrap=0)
    assert breast.level == "breast" and breast.n_cases == 2 * len(exams)


def test_compare_models_refuses_different_cases_or_labels(tmp_path):
    _, paths = _study(tmp_path)
    frame = pd.read_csv(paths[1])
    frame.iloc[:-1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(EvaluationInputError, match="do not cover the same cases"):
        compare_models([paths[0], tmp_path / "short.csv"], level="image", n_bootstrap=0)
    frame.loc[0, "malignant_label"] = 1 - frame.loc[0, "malignant_label"]
    frame.to_csv(tmp_path / "relabelled.csv", index=False)
    with pytest.raises(EvaluationInputError, match="different labels for 1 case"):
        compare_models([paths[0], tmp_path / "relabelled.csv"], level="image", n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match="got 1 names for 2 prediction files"):
        compare_models(paths, ["only one"])


def test_compare_command(tmp_path, capsys):
    _, paths = _study(tmp_path)
    out = tmp_path / "cmp"
    code = main(["compare", *map(str, paths), "--names", "A", "B", "--exam-list", str(tmp_path / "exams.pkl"),
                 "--output-dir", str(out), "--bootstrap", "100", "--specificities", "0.9"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "A - B" in printed and "DeLong" in printed and "sens @ spec 0.9" in printed
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["level"] == "breast" and set(summary["models"]) == {"A", "B"}
    assert summary["pairs"][0]["delong"]["p_value"] < 1
    for stem in ("roc_curves", "pr_curves", "calibration"):
        assert (out / f"{stem}.png").is_file() and (out / f"{stem}.svg").is_file()
