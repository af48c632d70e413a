"""Subgroups of prediction files by the exam list's metadata, and the --by options of the commands."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mammoscreen.cli import main
from mammoscreen.data import exams_from_data, save_exam_list
from mammoscreen.evaluate import evaluate_predictions
from mammoscreen.evaluate.subgroup_evaluation import (
    bins_for_keys,
    compare_subgroups,
    default_subgroup_keys,
    evaluate_subgroups,
    split_keys,
)
from mammoscreen.evaluate.validation import EvaluationInputError

VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")


def make_files(tmp_path, n_exams=40, seed=0):
    """An exam list with age per exam and density per image (one breast's images disagree, no exam value),
    two image-level prediction files, and the truth for checking."""
    rng = np.random.default_rng(seed)
    raw, rows_a, rows_b, truth = [], [], [], []
    for i in range(n_exams):
        labels = {"left_malignant": int(rng.random() < 0.35), "right_malignant": int(rng.random() < 0.35),
                  "left_benign": 0, "right_benign": 0}
        density = {"L": str(rng.choice(list("ABCD"))), "R": str(rng.choice(list("ABCD")))}
        images = {f"{i}_{v}": {"density": density[v[0]]} for v in VIEWS}
        if i == 3:
            images["3_L-MLO"]["density"] = "D" if density["L"] != "D" else "A"  # disagreement, no exam value
        metadata = {"age": int(rng.integers(42, 80)), "images": images}
        if i == 5:
            metadata = {"images": {}}  # no age, no density
        raw.append({"horizontal_flip": "NO", **{v: [f"{i}_{v}"] for v in VIEWS}, "cancer_label": labels,
                    "metadata": metadata})
        for v in VIEWS:
            label = labels["left_malignant" if v[0] == "L" else "right_malignant"]
            a = float(np.clip(0.3 + 0.35 * label + rng.normal(0, 0.2), 0, 1))
            rows_a.append((f"{i}_{v}", 0.1, a, 0, label))
            rows_b.append((f"{i}_{v}", 0.1, float(np.clip(a + rng.normal(0, 0.15), 0, 1)), 0, label))
            truth.append((i, v, label, a))
    exam_list = save_exam_list(exams_from_data(raw), tmp_path / "exam_list.json")
    columns = ["image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label"]
    pd.DataFrame(rows_a, columns=columns).to_csv(tmp_path / "model_a.csv", index=False)
    pd.DataFrame(rows_b, columns=columns).to_csv(tmp_path / "model_b.csv", index=False)
    return exam_list, tmp_path / "model_a.csv", tmp_path / "model_b.csv", raw, truth


def test_image_and_breast_subgroups_follow_the_metadata(tmp_path):
    exam_list, a, _, raw, truth = make_files(tmp_path)
    result = evaluate_subgroups(a, exam_list, "density,age", bins="50,60,70", n_bootstrap=50)
    image, breast = result.levels["image"], result.levels["breast"]

    # image level: each image's own density
    density = {f"{i}_{v}": raw[i]["metadata"]["images"].get(f"{i}_{v}", {}).get("density") for i, v, _, _ in truth}
    y = np.array([t[2] for t in truth])
    s = np.array([t[3] for t in truth])
    d = np.array([density[f"{i}_{v}"] for i, v, _, _ in truth], dtype=object)
    for group in "ABCD":
        members = d == group
        assert image.row("density", group, "auroc").value == pytest.approx(
            skm.roc_auc_score(y[members], s[members]), abs=1e-12)
    assert image.row("density", "missing", "auroc").n_cases == 4  # exam 5

    # breast level: the mean of the two views (score.py); a breast's density where its images agree
    breast_rows = []
    for i in range(len(raw)):
        for side in ("L", "R"):
            views = [t for t in truth if t[0] == i and t[1][0] == side]
            values = {raw[i]["metadata"]["images"].get(f"{i}_{v}", {}).get("density") for _, v, _, _ in views}
            value = values.pop() if len(values) == 1 else None
            breast_rows.append((views[0][2], (views[0][3] + views[1][3]) / 2, value, raw[i]["metadata"].get("age")))
    yb = np.array([r[0] for r in breast_rows])
    sb = np.array([r[1] for r in breast_rows])
    db = np.array([r[2] for r in breast_rows], dtype=object)
    ages = np.array([np.nan if r[3] is None else r[3] for r in breast_rows])
    for group in "ABCD":
        members = db == group
        row = breast.row("density", group, "auroc")
        assert row.n_cases == members.sum()
        assert row.value == pytest.approx(skm.roc_auc_score(yb[members], sb[members]), abs=1e-12)
    assert breast.row("density", "missing", "auroc").n_cases == 3  # exam 3 left, exam 5 both
    assert any("1 breast(s) whose images disagree" in w and "exam 3 left" in w for w in result.warnings)
    members = (ages >= 60) & (ages < 70)
    assert breast.row("age", "[60, 70)", "auroc").value == pytest.approx(
        skm.roc_auc_score(yb[members], sb[members]), abs=1e-12)

    # the whole set equals the plain evaluation
    plain = evaluate_predictions(a, exam_list, n_bootstrap=0)
    for level in ("image", "breast"):
        assert result.levels[level].row("", "all", "auroc").value == plain.levels[level].metrics["auroc"].value


def test_compare_subgroups_pairs_models_within_each_subgroup(tmp_path):
    exam_list, a, b, _, _ = make_files(tmp_path)
    result = compare_subgroups([a, b], ["a", "b"], exam_list, ["density"], n_bootstrap=50)
    analysis = result.levels["breast"]
    assert analysis.models == ["a", "b"]
    groups = {(p["key"], p["group"]) for p in analysis.paired}
    assert ("", "all") in groups and ("density", "C") in groups
    assert result.to_frame().predictor.unique().tolist() == ["a", "b"]


def test_keys_and_bins_options():
    assert split_keys("density, age") == ["density", "age"]
    assert split_keys(["density", "age,site"]) == ["density", "age", "site"]
    with pytest.raises(EvaluationInputError, match="more than once"):
        split_keys("age,age")
    assert bins_for_keys(None, ["age", "bmi"]) == {"age": ((50.0, 60.0, 70.0), False), "bmi": (None, False)}
    assert bins_for_keys(["q3"], ["age", "bmi"]) == {"age": (3, False), "bmi": (3, False)}
    assert bins_for_keys(["bmi=20,25,30"], ["age", "bmi"]) == {"age": ((50.0, 60.0, 70.0), False),
                                                             "bmi": ((20.0, 25.0, 30.0), True)}
    with pytest.raises(EvaluationInputError, match="not among the --by keys"):
        bins_for_keys(["weight=1,2"], ["age"])


def test_default_keys_are_those_with_two_values(tmp_path):
    exam_list, *_ = make_files(tmp_path)
    from mammoscreen.data import load_exam_list

    exams = load_exam_list(exam_list)
    assert default_subgroup_keys(exams) == ["density", "age"]
    for exam in exams:
        exam.metadata["site"] = "1"  # one value only: not a subgroup
    assert default_subgroup_keys(exams) == ["density", "age"]


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_evaluate_by_on_the_command_line(tmp_path, capsys):
    exam_list, a, _, _, _ = make_files(tmp_path)
    plain, grouped = tmp_path / "plain", tmp_path / "grouped"
    assert main(["evaluate", "--predictions", str(a), "--exam-list", str(exam_list), "--output-dir", str(plain),
                 "--bootstrap", "100"]) == 0
    assert main(["evaluate", "--predictions", str(a), "--exam-list", str(exam_list), "--output-dir", str(grouped),
                 "--bootstrap", "100", "--by", "density,age", "--bins", "50,60,70",
                 "--operating-points", "specificity=0.9", "recall_rate=0.2"]) == 0
    out = capsys.readouterr().out
    assert "SUBGROUPS, image level" in out and "SUBGROUPS, breast level" in out
    assert "density A" in out and "age [50, 60)" in out and "Heterogeneity of AUROC" in out
    assert "At recall_rate=0.2" in out
    # the plain evaluation is unchanged by --by
    assert (json.loads((plain / "metrics.json").read_text())["levels"]
            == json.loads((grouped / "metrics.json").read_text())["levels"])
    for name in ("subgroups.json", "subgroups.csv", "subgroups.txt", "subgroups_forest_image.png",
                 "subgroups_forest_breast.svg", "subgroups_roc_breast_density.png", "subgroups_roc_image_age.svg"):
        assert (grouped / name).is_file(), name
    table = pd.read_csv(grouped / "subgroups.csv")
    assert {"level", "key", "group", "metric", "value", "ci_low", "ci_high", "p_value"} <= set(table.columns)
    assert set(table.key.dropna()) == {"density", "age"}
    data = json.loads((grouped / "subgroups.json").read_text())
    assert data["sources"]["model_a"]["sha256"] and data["keys"] == ["density", "age"]
    assert (grouped / "subgroups.txt").read_text() in out


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
@pytest.mark.parametrize("extra, message", [
    (["--by", "bmi"], "no exam has the metadata key(s) 'bmi'; keys present: age, density"),
    (["--by", "density", "--bins", "density=1,2"], "'density' has values that are not numbers"),
    (["--by", "age", "--bins", "60,50"], "edges must increase"),
    (["--operating-points", "auc=0.9"], "operating point 'auc=0.9'"),
])
def test_bad_subgroup_options_are_one_line_errors(tmp_path, capsys, extra, message):
    exam_list, a, _, _, _ = make_files(tmp_path, n_exams=12)
    code = main(["evaluate", "--predictions", str(a), "--exam-list", str(exam_list), "--output-dir",
                 str(tmp_path / "out"), "--bootstrap", "0", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_by_without_an_exam_list_says_what_to_do(tmp_path, capsys):
    _, a, _, _, _ = make_files(tmp_path, n_exams=12)
    assert main(["evaluate", "--predictions", str(a), "--output-dir", str(tmp_path / "o"), "--by", "age"]) == 2
    assert "--by needs the exam list (--exam-list)" in capsys.readouterr().err


@pytest.mark.slow
def test_compare_and_reader_study_by_on_the_command_line(tmp_path, capsys):
    exam_list, a, b, _, _ = make_files(tmp_path)
    assert main(["compare", str(a), str(b), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "cmp"),
                 "--bootstrap", "50", "--by", "density"]) == 0
    data = json.loads((tmp_path / "cmp" / "subgroups.json").read_text())
    assert data["levels"]["breast"]["paired_delong"]
    assert "Paired DeLong tests between models within each subgroup" in capsys.readouterr().out

    rng = np.random.default_rng(3)
    n = 300
    label = (rng.random(n) < 0.2).astype(int)
    table = pd.DataFrame({"case_ID": np.repeat(np.arange(n // 2), 2), "side": ["L", "R"] * (n // 2),
                          "label": label, "density": rng.choice(list("ABCD"), n),
                          "Reader01_POM": np.clip(0.3 * label + rng.normal(0, 0.2, n), 0, 1).round(2),
                          "Reader02_POM": np.clip(0.2 * label + rng.normal(0, 0.2, n), 0, 1).round(2),
                          "AI_model_POM": np.clip(0.4 * label + rng.normal(0.2, 0.2, n), 0, 1)})
    table.to_csv(tmp_path / "study.csv", index=False)
    assert main(["reader-study", str(tmp_path / "study.csv"), "--output-dir", str(tmp_path / "rs"), "--bootstrap",
                 "50", "--by", "density", "--reader-threshold", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "readers' mean specificity" in out and "density A" in out
    data = json.loads((tmp_path / "rs" / "subgroups.json").read_text())
    versus = data["levels"]["breast"]["models_versus_readers"]
    assert {(v["key"], v["group"]) for v in versus} == {("", "all")} | {("density", g) for g in "ABCD"}
    assert main(["reader-study", str(tmp_path / "study.csv"), "--output-dir", str(tmp_path / "rs2"), "--by",
                 "site"]) == 2
    assert "no column 'site'" in capsys.readouterr().err
