"""The offline demo end to end on a few freshly generated exams."""

from __future__ import annotations

import csv
import json

import pytest
from sklearn.metrics import roc_auc_score

from mammoscreen.cli import main
from mammoscreen.workflows.demo import demo_model_card, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    messages: list[str] = []
    result = run_demo(output, n_exams=6, seed=31, n_bootstrap=200, progress=False, log=messages.append)
    return output, result, messages


@pytest.mark.slow  # the whole demo (synthesis to report)
def test_demo_writes_every_stage(demo_run):
    output, result, _ = demo_run
    for path in ("synthetic/exam_list.pkl", "cropped_images/cropped_exam_list.pkl", "gmic_demo/predictions.csv",
                 "gmic_demo/evaluation/metrics.json", "gmic_demo/localization/localization.json",
                 "gmic_demo/localization/localization_per_image.csv", "report.html", "demo_summary.json"):
        assert (output / path).is_file(), path
    assert len(list((output / "gmic_demo" / "maps").glob("*.npz"))) == 24
    assert len(list((output / "gmic_demo" / "visualization").glob("*.png"))) == 24
    html = result.report.read_text()
    for section in ("provenance", "metrics", "curves", "calibration", "subgroups", "localization", "gallery"):
        assert f'id="{section}"' in html
    assert "synthetic data only" in html.lower()


@pytest.mark.slow  # the whole demo (synthesis to report)
def test_demo_shows_subgroup_results_by_density_and_age(demo_run):
    output, result, messages = demo_run
    from mammoscreen.data.exams import load_exam_list

    exams = load_exam_list(output / "cropped_images" / "cropped_exam_list.pkl")
    densities = {image["density"] for exam in exams for image in exam.metadata["images"].values()}
    assert set(result.subgroups) == {"density", "age"}
    assert set(result.subgroups["density"]) == densities
    assert sum(g["n"] for g in result.subgroups["density"].values()) == 4 * len(exams)
    assert (output / "gmic_demo" / "evaluation" / "subgroups_forest_image.svg").is_file()
    assert json.loads((output / "demo_summary.json").read_text())["subgroups"] == result.subgroups
    assert any(m.startswith("gmic_demo, image level: AUROC by density") for m in messages)


@pytest.mark.slow  # the whole demo (synthesis to report)
def test_demo_headline_agrees_with_the_predictions_and_the_localisation_files(demo_run):
    output, result, _ = demo_run
    with open(output / "gmic_demo" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = [int(r["malignant_label"]) for r in rows]
    scores = [float(r["malignant_pred"]) for r in rows]
    if len(set(labels)) == 2:
        assert result.metrics["image_malignant_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    with open(output / "gmic_demo" / "localization" / "localization_per_image.csv", newline="") as f:
        hits = [int(r["hit"]) for r in csv.DictReader(f) if r["class"] == "malignant"]
    assert result.metrics["n_malignant_lesion_images"] == len(hits) > 0
    assert result.metrics["malignant_pointing_game"] == pytest.approx(sum(hits) / len(hits))
    summary = json.loads((output / "demo_summary.json").read_text())
    assert summary["metrics"] == pytest.approx(result.metrics)


@pytest.mark.slow  # the whole demo (synthesis to report)
def test_demo_resumes_without_redoing_finished_stages(demo_run):
    output, _, _ = demo_run
    messages: list[str] = []
    run_demo(output, n_exams=6, seed=31, n_bootstrap=200, progress=False, log=messages.append)
    assert any("crop: up to date" in m for m in messages)


def test_demo_refuses_a_training_seed(tmp_path, capsys):
    train_seed = demo_model_card()["data"]["train"]["seed"]
    assert main(["demo", "--output-dir", str(tmp_path), "--seed", str(train_seed), "--quiet"]) == 2
    assert "was used to train" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
