"""Issue 15's 'done when': an imported dataset -> ``mammoscreen run`` -> ``mammoscreen evaluate --by density,age
--bins 50,60,70`` gives the subgroup table, the forest plot and the report's Subgroups section.

The dataset is a small fake VinDr-Mammo download (its CSV column names and value spellings) whose images are
synthetic mammograms written as DICOM; the importer fills the metadata (density per image from
``breast_density``, age per exam from the DICOM headers' Patient's Age).
"""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from mammoscreen.cli import main
from mammoscreen.data.synth import SynthOptions, generate_exams

pytestmark = pytest.mark.slow  # a whole run (crop, centres, predict, evaluate, report) on synthetic exams

N_EXAMS = 6


def fake_vindr(root, tmp_path):
    """images/<study>/<image>.dicom and breast-level_annotations.csv / metadata.csv as VinDr-Mammo publishes them."""
    synthetic = tmp_path / "synthetic"
    exams = generate_exams(N_EXAMS, synthetic, seed=31, fmt="dicom", options=SynthOptions(scale=0.25),
                           progress=False)
    annotations, metadata = [], []
    for index, exam in enumerate(exams):
        study = f"study{index:03d}"
        labels = exam.cancer_label
        for view, names in exam.images.items():
            side, angle = view.split("-")
            name = names[0]
            image_id = f"img{index:03d}{view.replace('-', '')}"
            target = root / "images" / study / f"{image_id}.dicom"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(synthetic / "dicom" / f"{name}.dcm", target)
            breast = "left" if side == "L" else "right"
            birads = 5 if labels[f"{breast}_malignant"] else (3 if labels[f"{breast}_benign"] else 1)
            density = exam.metadata["images"][name]["density"]
            annotations.append([study, f"series{index}", image_id, side, angle, 832, 640, f"BI-RADS {birads}",
                                f"DENSITY {density}", "test"])
            metadata.append([image_id, f"series{index}", f"{exam.metadata['age']:03d}Y", angle, side, "SIEMENS"])
    with open(root / "breast-level_annotations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["study_id", "series_id", "image_id", "laterality", "view_position", "height", "width",
                         "breast_birads", "breast_density", "split"])
        writer.writerows(annotations)
    with open(root / "metadata.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["SOP Instance UID", "Series Instance UID", "Patient's Age", "View Position", "Laterality",
                         "Manufacturer"])
        writer.writerows(metadata)
    return [exam.metadata["age"] for exam in exams]


@pytest.fixture(scope="module")
def run_and_evaluate(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("subgroups_e2e")
    root = tmp_path / "vindr-mammo" / "1.0.0"
    root.mkdir(parents=True)
    ages = fake_vindr(root, tmp_path)
    imported = tmp_path / "imported"
    assert main(["import-dataset", "vindr-mammo", "--root", str(root), "--output-dir", str(imported), "--convert",
                 "--quiet", "--workers", "1"]) == 0
    run = tmp_path / "run"
    assert main(["run", "--model", "gmic_demo", "--images", str(imported / "images"), "--exam-list",
                 str(imported / "exam_list.pkl"), "--output-dir", str(run), "--bootstrap", "200", "--quiet",
                 "--workers", "1", "--device", "cpu"]) == 0
    evaluation = run / "gmic_demo" / "evaluation"
    assert main(["evaluate", "--predictions", str(run / "gmic_demo" / "predictions.csv"), "--exam-list",
                 str(run / "cropped_images" / "cropped_exam_list.pkl"), "--output-dir", str(evaluation),
                 "--by", "density,age", "--bins", "50,60,70", "--bootstrap", "200"]) == 0
    assert main(["report", str(run)]) == 0
    return run, imported, ages


def test_evaluate_by_density_and_age_gives_the_table_and_the_forest_plot(run_and_evaluate):
    run, imported, ages = run_and_evaluate
    evaluation = run / "gmic_demo" / "evaluation"
    data = json.loads((evaluation / "subgroups.json").read_text())
    assert data["keys"] == ["density", "age"]
    image = data["levels"]["image"]
    groupings = {g["key"]: g for g in image["groupings"]}
    assert set(groupings["density"]["groups"]) <= {"A", "B", "C", "D"}
    assert groupings["age"]["bins"] == [50, 60, 70]
    bins = {"<50": (0, 50), "[50, 60)": (50, 60), "[60, 70)": (60, 70), ">=70": (70, 200)}
    present = {name for name, (lo, hi) in bins.items() if any(lo <= a < hi for a in ages)}
    assert set(groupings["age"]["groups"]) == present and len(present) >= 2
    rows = {(r["key"], r["group"]): r for r in image["rows"] if r["metric"] == "auroc"}
    for name in present:
        lo, hi = bins[name]
        assert rows["age", name]["n_exams"] == sum(lo <= a < hi for a in ages)
    assert rows["", "all"]["n_cases"] == 4 * N_EXAMS
    for name in ("subgroups_forest_image.png", "subgroups_forest_breast.svg", "subgroups.csv", "subgroups.txt"):
        assert (evaluation / name).is_file()
    text = (evaluation / "subgroups.txt").read_text()
    assert "density" in text and f"age {sorted(present)[0]}" in text


def test_the_run_itself_analysed_the_default_keys_and_the_report_shows_the_section(run_and_evaluate):
    run = run_and_evaluate[0]
    html = (run / "report.html").read_text()
    section = html.split('<section id="subgroups">', 1)[1].split("</section>", 1)[0]
    assert "<h3>gmic_demo</h3>" in section and ("density B" in section or "density C" in section)
    assert 'alt="forest plot, image level"' in section and "age " in section
    listed = section.split("Metadata in the exam list: ", 1)[1].split(".", 1)[0].split(", ")
    assert {"age", "dataset", "density", "birads", "split"} <= set(listed)  # what the importer filled
