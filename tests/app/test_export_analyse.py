"""Exports and the analysis: the .imrmc that `mammoscreen mrmc` reads gives the figures computed by hand from
the same answers; the results.pkl table, the CSV of every answer; training cases left out of the analysis."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from mammoscreen.app.analyse import analyse_study
from mammoscreen.app.db import Case, ReadingSession
from mammoscreen.app.export import export_bytes
from mammoscreen.cli import main
from mammoscreen.evaluate.mrmc import read_imrmc
from mammoscreen.evaluate.readers import evaluate_reader_study

import handcalc


def read_everything(handle, clients, rng, training_exams):
    """Every reader answers every case of every session; returns {(reader, modality, case id): (left, right)}."""
    given = {}
    for name, client in clients.items():
        with handle.db.read() as s:
            from mammoscreen.app.db import Reader
            reader = s.scalar(select(Reader).where(Reader.name == name))
            sessions = list(s.scalars(select(ReadingSession).where(ReadingSession.reader_id == reader.id)
                                      .order_by(ReadingSession.number)))
            cases = {c.id: c for c in s.scalars(select(Case))}
        for rs in sessions:
            for position, case_id in enumerate(rs.case_order, 1):
                case = cases[case_id]
                # scores related to the truth, on a coarse scale so that ties occur
                left = int(min(100, max(0, 10 * round(rng.normal(3 + 4 * case.label_left, 2)))))
                right = int(min(100, max(0, 10 * round(rng.normal(3 + 4 * case.label_right, 2)))))
                response = client.answer(rs.id, position, rs.modality, left, right)
                assert response.status_code == 200, response.text
                given[(name, rs.modality, case.exam_index)] = (left, right)
            assert client.complete(rs.id).status_code == 200
    return given


@pytest.mark.slow
def test_imrmc_export_analysed_by_mrmc_equals_the_hand_computation(readers, tmp_path):
    handle, server, clients = readers(names=("r1", "r2", "r3"), admin=None, training=1)
    with handle.db.read() as s:
        cases = sorted(s.scalars(select(Case)), key=lambda c: c.exam_index)
    training = [c.exam_index for c in cases if c.training]
    given = read_everything(handle, clients, np.random.default_rng(3), training)
    study_exams = [c.exam_index for c in cases if not c.training]
    truth = [getattr(c, f"label_{side}") for c in cases if not c.training for side in ("left", "right")]
    scores = [[[given[(r, m, e)][k] for e in study_exams for k in (0, 1)] for r in ("r1", "r2", "r3")]
              for m in ("unaided", "aided")]
    expected = handcalc.or_analysis(scores, truth)

    output = tmp_path / "study.imrmc"
    assert main(["reader-app", "export", str(handle.directory), "--format", "imrmc", "--output", str(output)]) == 0
    data = read_imrmc(output)
    assert data.cases == [f"{e}{s}" for e in study_exams for s in "LR"]  # training exam left out
    assert data.modalities == ["unaided", "aided"] and data.readers == ["r1", "r2", "r3"]
    assert main(["mrmc", str(output), "--output-dir", str(tmp_path / "mrmc")]) == 0
    figures = json.loads((tmp_path / "mrmc" / "mrmc.json").read_text())
    for i, m in enumerate(("unaided", "aided")):
        for j, r in enumerate(("r1", "r2", "r3")):
            assert figures["auc"][m][r] == pytest.approx(expected["auc"][i][j], abs=1e-12)
    components = figures["or_variance_components"]
    for key, name in (("var", "Var(Error)"), ("cov1", "Cov1"), ("cov2", "Cov2"), ("cov3", "Cov3")):
        assert components[name] == pytest.approx(expected["components"][key], rel=1e-9, abs=1e-15)
    assert figures["anova"]["MS(T)"] == pytest.approx(expected["MS(T)"], rel=1e-9, abs=1e-15)
    assert figures["anova"]["MS(T*R)"] == pytest.approx(expected["MS(T*R)"], rel=1e-9, abs=1e-15)
    (difference,) = figures["rrrc"]["differences"]
    assert difference["difference"] == pytest.approx(expected["difference"], abs=1e-12)
    assert difference["standard_error"] == pytest.approx(expected["se_rrrc"], rel=1e-9)
    assert figures["rrrc"]["F"] == pytest.approx(expected["F_rrrc"], rel=1e-9)
    if math.isfinite(expected["ddf_rrrc"]):
        assert figures["rrrc"]["df_denominator"] == pytest.approx(expected["ddf_rrrc"], rel=1e-9)

    # the analyse command gives the same figures and writes the report section
    result = analyse_study(handle, tmp_path / "analysis", n_bootstrap=200)
    assert result.figures["rrrc"]["F"] == pytest.approx(figures["rrrc"]["F"], rel=1e-12)
    section = (tmp_path / "analysis" / "reader_study_section.html").read_text()
    assert f"{expected['means'][0]:.4f}" in section and f"{expected['means'][1]:.4f}" in section
    assert "against the AI alone (gmic_demo)" in section
    ai = json.loads((tmp_path / "analysis" / "mrmc.json").read_text())["ai_versus_readers"]
    ai_scores = [getattr(c, f"ai_{side}") for c in cases if not c.training for side in ("left", "right")]
    assert ai["aided"]["ai_auc"] == pytest.approx(handcalc.auc(truth, ai_scores), abs=1e-12)
    assert ai["unaided"]["mean_reader_auc"] == pytest.approx(expected["means"][0], abs=1e-12)

    # the results.pkl-style table, read as the meta-repository's file is
    data, name, notes = export_bytes(handle.db, "pkl", modality="aided")
    table = pd.read_pickle(io.BytesIO(data))
    assert name == "results_aided.pkl" and notes == []
    assert list(table.columns[:3]) == ["case_ID", "side", "label"]
    assert list(table["label"]) == truth
    evaluation = evaluate_reader_study(table, n_bootstrap=0)
    assert evaluation.readers["r2"]["auroc"].value == pytest.approx(expected["auc"][1][1], abs=1e-12)
    assert evaluation.models["gmic_demo"]["auroc"].value == pytest.approx(handcalc.auc(truth, ai_scores), abs=1e-12)

    # the CSV holds every answer, training cases included, with timestamps
    csv = pd.read_csv(io.BytesIO(export_bytes(handle.db, "csv")[0]))
    assert len(csv) == 3 * 2 * len(cases) * 2
    assert set(csv.loc[csv["training"] == 1, "exam_index"]) == set(training)
    row = csv[(csv["reader"] == "r3") & (csv["modality"] == "aided") & (csv["exam_index"] == study_exams[0])
              & (csv["side"] == "R")].iloc[0]
    assert row["score"] == given[("r3", "aided", study_exams[0])][1]
    assert pd.Timestamp(row["created_at"]) <= pd.Timestamp(row["updated_at"])


def test_incomplete_readers_are_left_out_with_a_note(readers, tmp_path):
    handle, server, clients = readers(names=("r1", "r2"), admin=None)
    r1 = clients["r1"]
    session = r1.sessions()[0]
    phase = r1.case(session, 1).json()["phase"]
    r1.answer(session, 1, phase, 10, 10)
    with pytest.raises(ValueError, match="no reader has read every study case"):
        export_bytes(handle.db, "imrmc")
    assert main(["reader-app", "analyse", str(handle.directory)]) == 2
