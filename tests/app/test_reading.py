"""Reading through the API: designs, case order, navigation, answers, the AI arm, pixels."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from mammoscreen.app import design
from mammoscreen.app.db import Answer, Case, Image, ReadingSession
from mammoscreen.app.study import add_reader
from mammoscreen.data.exams import load_exam_list

from conftest import NEW_PASSWORD, ReaderClient


def session_cases(handle, name):
    with handle.db.read() as s:
        from mammoscreen.app.db import Reader
        reader = s.scalar(select(Reader).where(Reader.name == name))
        return list(s.scalars(select(ReadingSession).where(ReadingSession.reader_id == reader.id)
                              .order_by(ReadingSession.number)))


def test_independent_design_counterbalanced_and_order_from_recorded_seed(make_study):
    handle = make_study(training=1, seed=5)
    for name in ("a", "b", "c"):
        add_reader(handle, name)
    with handle.db.read() as s:
        cases = list(s.scalars(select(Case).order_by(Case.exam_index)))
    training = [c.id for c in cases if c.training]
    study_cases = [c.id for c in cases if not c.training]
    assert len(training) == 1
    firsts = []
    for number, name in enumerate(("a", "b", "c")):
        sessions = session_cases(handle, name)
        assert [rs.number for rs in sessions] == [1, 2]
        assert sorted(rs.modality for rs in sessions) == ["aided", "unaided"]
        firsts.append(sessions[0].modality)
        for rs in sessions:
            # the recorded seed reproduces the recorded order; training cases come first
            assert rs.seed == design.session_seed(5, number, rs.number)
            assert rs.case_order == design.case_order(rs.seed, training, study_cases)
            assert rs.case_order[:1] == training and sorted(rs.case_order[1:]) == sorted(study_cases)
    assert firsts == ["unaided", "aided", "unaided"]
    orders = [tuple(rs.case_order) for name in ("a", "b", "c") for rs in session_cases(handle, name)]
    assert len(set(orders)) > 1  # randomised per reader and session


@pytest.mark.slow
def test_reading_in_order_revising_and_completing(readers):
    handle, server, clients = readers(training=1)
    r1 = clients["r1"]
    first, second = r1.sessions()[0], None
    n = len(session_cases(handle, "r1")[0].case_order)
    assert r1.case(first, 2).status_code == 409  # not reached yet: no skipping ahead
    case = r1.case(first, 1).json()
    assert case["position"] == 1 and case["n_cases"] == n and case["answer"] is None and case["training"]
    assert r1.complete(first).status_code == 409
    for position in range(1, n + 1):
        response = r1.answer(first, position, case["phase"], 10 * position, 5, elapsed_ms=1500)
        assert response.status_code == 200, response.text
    # going back and revising keeps one answer, with its revision and the added time
    response = r1.answer(first, 2, case["phase"], 77, 3, birads=("4", "2"), elapsed_ms=500)
    assert response.json()["answer"]["revision"] == 2
    with handle.db.read() as s:
        answers = list(s.scalars(select(Answer).where(Answer.reading_session_id == first)))
    assert len(answers) == n
    revised = [a for a in answers if a.revision == 2]
    assert len(revised) == 1 and revised[0].score_left == 77 and revised[0].birads_left == "4"
    assert revised[0].time_ms == 2000
    # the second session is locked until the first is completed (wash-out 0 here)
    second = session_cases(handle, "r1")[1].id
    assert r1.case(second, 1).status_code == 409
    assert r1.complete(first).status_code == 200
    assert r1.case(first, 1).status_code == 409  # completed: closed
    assert r1.case(second, 1).status_code == 200


@pytest.mark.slow
def test_washout_is_enforced_by_the_server(make_study, serve_study):
    now = [datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)]
    handle = make_study(washout_days=14)
    password = add_reader(handle, "r1")
    server = serve_study(handle, clock=lambda: now[0])
    r1 = ReaderClient(server.url)
    r1.first_login("r1", password)
    first, second = [rs.id for rs in session_cases(handle, "r1")]
    phase = r1.case(first, 1).json()["phase"]
    n = len(session_cases(handle, "r1")[0].case_order)
    for position in range(1, n + 1):
        assert r1.answer(first, position, phase, 50, 50).status_code == 200
    assert r1.complete(first).status_code == 200
    now[0] += timedelta(days=13, hours=23)
    r1.login("r1", NEW_PASSWORD)  # the login itself has expired meanwhile
    r1.page_csrf("/")
    response = r1.case(second, 1)
    assert response.status_code == 409 and "2026-01-19 09:00" in response.json()["error"]
    assert "opens 2026-01-19 09:00 UTC" in r1.http.get("/").text
    now[0] += timedelta(hours=1)
    assert r1.case(second, 1).status_code == 200
    r1.close()


def test_sequential_design_locks_the_unaided_answer_and_keeps_both(readers):
    handle, server, clients = readers(design="sequential", names=("r1",))
    r1 = clients["r1"]
    (session,) = r1.sessions()
    case = r1.case(session, 1).json()
    assert case["phase"] == "unaided" and case["ai"] is None
    assert not any(im["overlay"] for im in case["images"])
    image = case["images"][0]["id"]
    assert r1.api("GET", f"/api/sessions/{session}/images/{image}/overlay").status_code == 404
    assert r1.answer(session, 1, "aided", 10, 20).status_code == 409  # the AI comes after the first read
    after = r1.answer(session, 1, "unaided", 10, 20).json()
    assert after["phase"] == "aided" and after["ai"] is not None
    assert after["unaided_answer"]["left"]["score"] == 10 and after["unaided_answer"]["locked"]
    assert after["answer"] is None
    assert r1.answer(session, 1, "unaided", 90, 90).status_code == 409  # locked once the AI was shown
    assert r1.case(session, 2).status_code == 409  # case 1 is not finished until the aided answer
    assert r1.answer(session, 1, "aided", 60, 20).status_code == 200
    assert r1.case(session, 2).status_code == 200
    with handle.db.read() as s:
        rows = {a.modality: (a.score_left, a.locked) for a in s.scalars(select(Answer))}
    assert rows == {"unaided": (10, True), "aided": (60, False)}


def test_ai_scores_are_the_runs_breast_level_means(readers, study_inputs):
    handle, server, clients = readers(names=("r1", "r2"))
    r2 = clients["r2"]  # the second reader starts aided
    session = r2.sessions()[0]
    predictions = pd.read_csv(study_inputs["run"] / "gmic_demo" / "predictions.csv").set_index("image_index")
    exams = load_exam_list(study_inputs["exam_list"])
    case = r2.case(session, 1).json()
    assert case["phase"] == "aided"
    with handle.db.read() as s:
        exam_index = s.get(Case, session_cases(handle, "r2")[0].case_order[0]).exam_index
    exam = exams[exam_index]
    for side, views in (("left", ("L-CC", "L-MLO")), ("right", ("R-CC", "R-MLO"))):
        expected = np.mean([predictions.loc[exam.images[v][0], "malignant_pred"] for v in views])
        assert case["ai"][side] == round(100 * expected, 1)
    assert all(im["overlay"] for im in case["images"])
    png = r2.api("GET", f"/api/sessions/{session}/images/{case['images'][0]['id']}/overlay")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    overlay = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
    image = case["images"][0]
    # the overlay covers the image in its original frame (same aspect ratio), on the map's absolute scale
    assert overlay.dtype == np.uint8
    assert abs(overlay.shape[0] / overlay.shape[1] - image["height"] / image["width"]) < 0.01
    with handle.db.read() as s:
        name = s.scalar(select(Image).where(Image.public_id == image["id"])).name
    with np.load(study_inputs["run"] / "gmic_demo" / "maps" / f"{name}.npz") as maps:
        peak = float(maps["saliency_map"][1].max())  # malignant channel
    assert 0.7 * 255 * peak - 1 <= overlay.max() <= 255 * peak + 1


def test_pixels_are_the_16_bit_values_at_every_level(readers, study_inputs):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    case = r1.case(session, 1).json()
    with handle.db.read() as s:
        names = {im.public_id: im.name for im in s.scalars(select(Image))}
    for image in case["images"]:
        original = cv2.imread(str(study_inputs["images"] / f"{names[image['id']]}.png"), cv2.IMREAD_UNCHANGED)
        for level, (width, height) in enumerate(image["levels"]):
            response = r1.api("GET", f"/api/sessions/{session}/images/{image['id']}/pixels/{level}")
            assert response.status_code == 200
            assert response.headers["content-encoding"] == "gzip"  # httpx undoes it, as a browser does
            values = np.frombuffer(response.content, "<u2").reshape(height, width)
            if level == 0:
                assert np.array_equal(values, original)  # full resolution, every 16-bit value
            else:
                expected = cv2.resize(original, (width, height), interpolation=cv2.INTER_AREA)
                assert np.abs(values.astype(int) - cv2.resize(expected, (width, height)).astype(int)).max() <= \
                    (0 if level == 1 else 2 ** level)
        assert r1.api("GET", f"/api/sessions/{session}/images/{image['id']}/pixels/{len(image['levels'])}"
                      ).status_code == 404


def test_answers_are_validated(readers):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    case = r1.case(session, 1).json()
    phase, image = case["phase"], case["images"][0]
    bad = [
        {"left": {"score": 101, "birads": "1"}},
        {"left": {"score": 50.5, "birads": "1"}},
        {"left": {"score": True, "birads": "1"}},
        {"left": {"score": 5, "birads": "6"}},
        {"marks": [{"image": image["id"], "x": image["width"] + 1, "y": 1, "rating": 50}]},
        {"marks": [{"image": "0" * 24, "x": 1, "y": 1, "rating": 50}]},
        {"marks": [{"image": image["id"], "x": 1, "y": 1, "rating": 500}]},
        {"elapsed_ms": -5},
    ]
    for change in bad:
        body = {"phase": phase, "left": {"score": 5, "birads": "1"}, "right": {"score": 5, "birads": "1"},
                "marks": [], **change}
        response = r1.api("POST", f"/api/sessions/{session}/cases/1/answer", json=body)
        assert response.status_code == 400, (change, response.text)
    assert r1.api("POST", f"/api/sessions/{session}/cases/1/answer", content=b"{not json",
                  headers={"content-type": "application/json"}).status_code == 400
    assert r1.api("POST", f"/api/sessions/{session}/cases/1/answer", content=b"x" * 300_000).status_code == 413
    mark = {"image": image["id"], "x": 10.25, "y": 20, "rating": 80}
    ok = r1.answer(session, 1, phase, 5, 5, marks=[mark])
    assert ok.status_code == 200
    side = "left" if image["view"][0] == "L" else "right"
    assert ok.json()["answer"]["marks"] == [{"image": image["id"], "view": image["view"], "side": side,
                                             "x": 10.2, "y": 20.0, "rating": 80}]
    with handle.db.read() as s:
        assert s.scalar(select(Answer)).marks[0]["x"] == 10.2
    assert json.dumps(case).count("label") == 0
