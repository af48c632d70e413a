"""Reader studies: the meta-repository's released results.pkl, and the bootstrap wiring on synthetic data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mammoscreen.cli import main
from mammoscreen.evaluate import evaluate_reader_study
from mammoscreen.evaluate.bootstrap import bootstrap_metrics, percentile_interval
from mammoscreen.evaluate.validation import EvaluationInputError

# ../shared/reader_study/README.md: breast-level AUROC (sklearn roc_auc_score), 3 decimals.
README_MODEL_AUROC = {"GMIC_top5": 0.881, "GMIC_top1": 0.857, "GLAM": 0.853, "DMVCNN": 0.779, "frcnn": 0.714,
                      "end2end_inbreast": 0.586, "end2end_ddsm": 0.454}
README_READER_AUROC = [0.726, 0.783, 0.809, 0.859, 0.705, 0.736, 0.772, 0.761, 0.792, 0.753, 0.788, 0.804, 0.860,
                       0.756]


@pytest.fixture(scope="module")
def study(reader_study_file):
    return evaluate_reader_study(reader_study_file, n_bootstrap=0)


def test_released_reader_study_aurocs(study, reader_study_file):
    frame = pd.read_pickle(reader_study_file)
    assert study.n_cases == 1440 and study.n_positive == 61
    for name, metrics in {**study.readers, **study.models}.items():
        column = f"AI_{name}_POM" if name in README_MODEL_AUROC else f"{name}_POM"
        assert abs(metrics["auroc"].value - skm.roc_auc_score(frame["label"], frame[column])) < 1e-12
    for name, expected in README_MODEL_AUROC.items():
        assert round(study.models[name]["auroc"].value, 3) == expected
    assert [round(study.readers[f"Reader{k:02d}"]["auroc"].value, 3) for k in range(1, 15)] == README_READER_AUROC
    assert round(study.readers_mean["auroc"].value, 3) == 0.779


def test_released_reader_study_auprc_and_hybrids(study, reader_study_file):
    frame = pd.read_pickle(reader_study_file)
    for name, expected in {"GMIC_top5": 0.401, "GLAM": 0.229, "DMVCNN": 0.158}.items():
        assert round(study.models[name]["auprc_trapezoid"].value, 3) == expected
        p, r, _ = skm.precision_recall_curve(frame["label"], frame[f"AI_{name}_POM"])
        assert abs(study.models[name]["auprc_trapezoid"].value - skm.auc(r, p)) < 1e-12
    assert round(study.models["GMIC_top5"]["average_precision"].value, 3) == 0.407
    hybrid = study.hybrids["GMIC_top5"]
    assert round(hybrid["mean_auroc"].value, 3) == 0.887
    reader = frame["Reader03_POM"]
    expected = skm.roc_auc_score(frame["label"], (reader + frame["AI_GMIC_top5_POM"]) / 2)
    assert abs(hybrid["per_reader_auroc"]["Reader03"].value - expected) < 1e-12


def _synthetic(n_exams=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for case in range(n_exams):
        for side in "LR":
            label = int(rng.random() < 0.2)
            row = {"case_ID": str(1000 + case), "side": side, "label": float(label)}
            for r in range(1, 4):
                row[f"Reader{r:02d}_POM"] = round(float(np.clip(rng.normal(0.3 * label, 0.2), 0, 1)), 2)
            row["AI_Net_POM"] = float(rng.random() * 0.5 + 0.4 * label)
            rows.append(row)
    return pd.DataFrame(rows)


def test_bootstrap_wiring_matches_the_array_api():
    frame = _synthetic()
    y = frame["label"].to_numpy()
    readers = np.vstack([frame[f"Reader{r:02d}_POM"] for r in range(1, 4)])
    for resample, groups in (("row", None), ("case", frame["case_ID"].to_numpy())):
        result = evaluate_reader_study(frame, n_bootstrap=40, seed=2, resample=resample)
        boot = bootstrap_metrics(y, np.vstack([readers, frame["AI_Net_POM"]]), 40, 2, groups=groups)
        assert result.models["Net"]["auroc"].ci_low == percentile_interval(boot.replicates["auroc"][:, 3])[0]
        mean = boot.replicates["auroc"][:, :3].mean(axis=1)
        assert (result.readers_mean["auroc"].ci_low, result.readers_mean["auroc"].ci_high) == percentile_interval(mean)
        hybrid = bootstrap_metrics(y, (readers + frame["AI_Net_POM"].to_numpy()) / 2, 40, 2, groups=groups)
        expected = percentile_interval(hybrid.replicates["auroc"].mean(axis=1))
        got = result.hybrids["Net"]["mean_auroc"]
        assert (got.ci_low, got.ci_high) == expected


def test_csv_and_pickle_give_the_same_result(tmp_path):
    frame = _synthetic(seed=1)
    frame.to_csv(tmp_path / "study.csv", index=False)
    frame.to_pickle(tmp_path / "study.pkl")
    a = evaluate_reader_study(tmp_path / "study.csv", n_bootstrap=0).to_dict()
    b = evaluate_reader_study(tmp_path / "study.pkl", n_bootstrap=0).to_dict()
    assert a["readers"] == b["readers"] and a["models"] == b["models"] and a["hybrids"] == b["hybrids"]


def test_bad_reader_study_tables(tmp_path):
    frame = _synthetic()
    with pytest.raises(EvaluationInputError, match="no 'label' column"):
        evaluate_reader_study(frame.drop(columns="label"), n_bootstrap=0)
    bad = frame.copy()
    bad.loc[5, "Reader02_POM"] = np.nan
    with pytest.raises(EvaluationInputError, match="column 'Reader02_POM' contains NaN at positions 5"):
        evaluate_reader_study(bad, n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match="same label"):
        evaluate_reader_study(frame.assign(label=0.0), n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match="no model 'Other' for hybrids"):
        evaluate_reader_study(frame, hybrid_models=["Other"], n_bootstrap=0)
    with pytest.raises(EvaluationInputError, match="no reader or model columns"):
        evaluate_reader_study(frame[["case_ID", "label"]], n_bootstrap=0)
    (tmp_path / "study.xlsx").write_text("x")
    with pytest.raises(EvaluationInputError, match="unknown reader-study format"):
        evaluate_reader_study(tmp_path / "study.xlsx")


def test_reader_study_command(tmp_path, capsys):
    _synthetic().to_csv(tmp_path / "study.csv", index=False)
    out = tmp_path / "rs"
    assert main(["reader-study", str(tmp_path / "study.csv"), "--output-dir", str(out), "--bootstrap", "30"]) == 0
    printed = capsys.readouterr().out
    assert "readers' mean (3)" in printed and "readers + Net" in printed
    summary = json.loads((out / "reader_study.json").read_text())
    assert summary["bootstrap"]["resampling_unit"] == "case"
    assert set(summary["readers"]) == {"Reader01", "Reader02", "Reader03"} and set(summary["models"]) == {"Net"}
    assert (out / "reader_study_roc.png").is_file() and (out / "reader_study_roc.svg").is_file()
