"""end2end and frcnn_cad beside an NYU model in one pipeline run: each gets the input it needs.

GMIC needs the official crop and optimal centres; end2end and frcnn_cad take the original images. Their
scores in a mixed run must equal the official scores for the original images (reference data).
"""

from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest
from zoo2_reference import end2end_weights, frcnn_weights, model_reference_dir

from mammoscreen.engine import PredictOptions
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline

pytestmark = [pytest.mark.reference, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::mammoscreen.models.weights.UnexpectedKeysWarning")]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_gmic_end2end_and_frcnn_cad_in_one_run(reference_dir, tmp_path, tmp_path_factory):
    e2e_ref = model_reference_dir(reference_dir, "end2end")
    frcnn_ref = model_reference_dir(reference_dir, "frcnn_cad")
    gmic_checkpoint = reference_dir / "gmic" / "gmic_reference.p"
    if not gmic_checkpoint.is_file():
        pytest.skip("GMIC reference checkpoint not found")
    root = tmp_path_factory.getbasetemp()
    with open(reference_dir / "exam_list_before_cropping.pkl", "rb") as f:
        exams = pickle.load(f)
    exam = dict(exams[0])
    exam.update({"L-MLO": [], "R-MLO": []})  # two images keep it short
    exam_list = tmp_path / "exam.pkl"
    exam_list.write_bytes(pickle.dumps([exam], protocol=4))
    out = tmp_path / "run"
    requests = [PredictorRequest("gmic", gmic_checkpoint, "1"),
                PredictorRequest("end2end", end2end_weights(reference_dir, root)),
                PredictorRequest("frcnn_cad", frcnn_weights(reference_dir, root))]
    result = run_pipeline(reference_dir / "images", exam_list, out, requests,
                          options=PredictOptions(device="cpu", progress=False), log=lambda m: None)
    assert (out / "cropped_images" / "0_L-CC.png").is_file()  # the crop ran, for GMIC
    assert set(result.predictions) == {"gmic", "end2end", "frcnn_cad"}
    gmic = _rows(out / "gmic" / "predictions.csv")
    assert [r["image_index"] for r in gmic] == ["0_L-CC", "0_R-CC"] and "benign_pred" in gmic[0]

    e2e_summary = {row[0]: row[2] for row in json.loads((e2e_ref / "summary.json").read_text())["rows"]}
    for name, official in (("end2end", e2e_summary),
                           ("frcnn_cad", {n: float(np.load(frcnn_ref / f"{n}.npz")["score"])
                                          for n in ("0_L-CC", "0_R-CC")})):
        rows = _rows(out / name / "predictions.csv")
        assert [r["image_index"] for r in rows] == ["0_L-CC", "0_R-CC"]
        for row in rows:  # the official scores of the original (uncropped) images
            assert abs(float(row["malignant_pred"]) - official[row["image_index"]]) <= 1e-4, (name, row)
