"""Security as a hospital's reviewer would check it: login everywhere, own data only, CSRF, traversal, rate limit,
cookies, password storage, the append-only audit trail."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from mammoscreen.app.db import Answer, Audit, Image, Reader, WebSession
from mammoscreen.app.errors import StudyError
from mammoscreen.app.study import add_reader, create_study
from mammoscreen.app.web import ReaderApp
from mammoscreen.data.exams import load_exam_list, save_exam_list

from conftest import NEW_PASSWORD, ReaderClient


def route_examples(handle, session_id: int, image_id: str):
    """(method, path) of every route of the app, with real identifiers filled in."""
    app = ReaderApp(handle).asgi().app
    values = {"session_id": str(session_id), "position": "1", "image_id": image_id, "level": "0", "fmt": "csv",
              "name": "r1"}
    out = []
    for route in app.routes:
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], route.path)
        for method in route.methods - {"HEAD"}:
            out.append((method, path))
    return out


def test_every_route_needs_a_login(readers):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    case = r1.case(session, 1).json()
    routes = route_examples(handle, session, case["images"][0]["id"])
    assert len(routes) >= 16
    anonymous = ReaderClient(server.url)
    public = {("GET", "/login"), ("POST", "/login"), ("GET", "/static/{name}".format(name="r1"))}
    checked = 0
    for method, path in routes:
        if path == "/login":
            continue
        response = anonymous.http.request(method, path)
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json() == {"error": "log in first"}
        elif path.startswith("/static/"):
            assert response.status_code == 404  # no such file; see below for real files
        else:
            assert response.status_code in (303, 403), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"] == "/login", (method, path)
        checked += 1
    assert checked == len(routes) - 2 and public
    # the stylesheet of the login page is the only file served without a login
    assert anonymous.http.get("/static/app.css").status_code == 200
    assert anonymous.http.get("/static/viewer.js").status_code == 401
    assert r1.http.get("/static/viewer.js").status_code == 200
    # a forged or stale cookie is no login
    anonymous.http.cookies.set("ms_session", "forged-token")
    assert anonymous.http.get(f"/api/sessions/{session}/cases/1").status_code == 401
    anonymous.close()


def test_readers_reach_only_their_own_sessions_and_no_truth(readers):
    handle, server, clients = readers()
    r1, r2, coord = clients["r1"], clients["r2"], clients["coord"]
    s1, s2 = r1.sessions()[0], r2.sessions()[0]
    case = r1.case(s1, 1).json()
    image = case["images"][0]["id"]
    phase = case["phase"]
    for response in (r2.case(s1, 1), r2.answer(s1, 1, phase, 1, 1), r2.complete(s1),
                     r2.api("GET", f"/api/sessions/{s1}/images/{image}/pixels/0"),
                     r2.api("GET", f"/api/sessions/{s1}/images/{image}/overlay")):
        assert response.status_code == 404
    # an image of a case r2 has not reached yet, asked for under r2's own session
    with handle.db.read() as s:
        from mammoscreen.app.db import ReadingSession
        order = s.get(ReadingSession, s2).case_order
        later = s.scalar(select(Image).where(Image.case_id == order[-1])).public_id
    assert r2.api("GET", f"/api/sessions/{s2}/images/{later}/pixels/0").status_code == 404
    # administrators do not read; readers do not administer
    assert coord.case(s1, 1).status_code == 404
    assert r1.http.get("/admin").status_code == 404
    assert r1.http.get("/admin/export/csv").status_code == 404
    # nothing a reader receives carries the truth
    with handle.db.read() as s:
        assert s.scalar(select(Answer)) is None
    payload = r1.case(s1, 1).text
    for word in ("label", "truth", "malignant", "cancer", "exam_index", "name"):
        assert word not in payload
    body = payload + r1.http.get("/").text + r1.http.get(f"/read/{s1}").text
    for word in ("truth", "cancer", "exam_index"):
        assert word not in body
    # the image names of the exam list never reach the browser
    with handle.db.read() as s:
        names = [im.name for im in s.scalars(select(Image))]
    assert not any(name in body for name in names)


@pytest.mark.slow
def test_forged_or_missing_csrf_tokens_are_refused(readers):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    phase = r1.case(session, 1).json()["phase"]
    good = r1.csrf
    body = {"phase": phase, "left": {"score": 1, "birads": "1"}, "right": {"score": 1, "birads": "1"}, "marks": []}
    for headers in ({"x-csrf-token": "forged"}, {"x-csrf-token": ""}, {"x-csrf-token": good[:-1] + "x"},
                    {"x-csrf-token": good, "origin": "http://evil.example"}):
        response = r1.http.post(f"/api/sessions/{session}/cases/1/answer", json=body, headers=headers)
        assert response.status_code == 403, headers
        assert r1.http.post(f"/api/sessions/{session}/complete", headers=headers).status_code == 403
    for path, form in (("/logout", {}), ("/password", {"current": NEW_PASSWORD, "new": "x" * 20, "again": "x" * 20}),
                       ("/admin/readers/r1/reset-password", {})):
        assert r1.http.post(path, data={"csrf_token": "forged", **form}).status_code in (403, 404)
    # another login's token does not work either
    other = ReaderClient(server.url)
    other.login("r1", NEW_PASSWORD)
    other.page_csrf("/")
    assert other.csrf != good
    assert r1.http.post(f"/api/sessions/{session}/cases/1/answer", json=body,
                        headers={"x-csrf-token": other.csrf}).status_code == 403
    with handle.db.read() as s:
        assert s.scalar(select(Answer)) is None
    # the login form has its own token
    response = r1.http.post("/login", data={"name": "r1", "password": NEW_PASSWORD, "login_token": "forged"})
    assert response.status_code == 403
    assert r1.api("POST", f"/api/sessions/{session}/cases/1/answer", json=body).status_code == 200  # the real token
    other.close()


TRAVERSALS = [
    "/static/../study.json", "/static/%2e%2e/study.json", "/static/..%2fstudy.sqlite", "/static/%2fetc%2fpasswd",
    "/api/sessions/{s}/images/..%2F..%2Fetc%2Fpasswd/pixels/0", "/api/sessions/{s}/images/{name}/pixels/0",
    "/api/sessions/{s}/images/%2e%2e%2f{name}/pixels/0", "/api/sessions/{s}/images/{image}/overlay/../../study.json",
    "/api/sessions/{s}/images/{image}%00/pixels/0", "/read/../admin", "/overlays/{image}.png", "/study.sqlite",
]


def test_traversal_attempts_find_nothing(readers):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    image = r1.case(session, 1).json()["images"][0]["id"]
    with handle.db.read() as s:
        name = s.scalar(select(Image).where(Image.public_id == image)).name
    for path in TRAVERSALS:
        url = path.format(s=session, name=name, image=image)
        response = r1.http.get(url)
        assert response.status_code in (303, 404), (url, response.status_code)
        assert b"SQLite" not in response.content and b"root:" not in response.content
        assert b'"database"' not in response.content


def test_exam_list_image_names_cannot_leave_the_image_directory(tmp_path, study_inputs):
    exams = load_exam_list(study_inputs["exam_list"])
    exams[0].images["L-CC"] = ["../../etc/passwd"]
    exams[0].metadata = {}  # its per-image entries name the image replaced above
    bad = tmp_path / "bad.pkl"
    save_exam_list(exams, bad)
    with pytest.raises(StudyError, match="not a plain file name"):
        create_study(tmp_path / "study", study_inputs["images"], bad, log=lambda m: None)
    assert not (tmp_path / "study").exists()


def test_login_is_rate_limited_and_audited(readers):
    handle, server, clients = readers(names=("r1",))
    attacker = ReaderClient(server.url)
    for _ in range(5):
        assert attacker.login("r1", "wrong password!").status_code == 401
    # the sixth attempt is refused even with the right password
    assert attacker.login("r1", NEW_PASSWORD).status_code == 429
    assert attacker.login("R1", NEW_PASSWORD).status_code == 429  # names are case-insensitive
    with handle.db.read() as s:
        actions = [a.action for a in s.scalars(select(Audit).where(Audit.actor.in_(["r1", "R1"])))]
    assert actions.count("login-failed") == 5 and actions.count("login-blocked") == 2
    attacker.close()


def test_cookies_and_headers(readers, make_study, serve_study):
    handle, server, clients = readers(names=("r1",))
    fresh = ReaderClient(server.url)
    response = fresh.login("r1", NEW_PASSWORD)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on 127.0.0.1
    page = fresh.http.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline scripts anywhere (CSP forbids them)
    fresh.close()
    secure = serve_study(handle, secure_cookies=True)
    client = ReaderClient(secure.url)
    assert "Secure" in client.login("r1", NEW_PASSWORD).headers["set-cookie"]
    client.close()


def test_passwords_and_sessions_are_stored_hashed(readers):
    handle, server, clients = readers(names=("r1",))
    token = clients["r1"].http.cookies["ms_session"]
    password = add_reader(handle, "r3")
    with handle.db.read() as s:
        reader = s.scalar(select(Reader).where(Reader.name == "r3"))
        stored = [w.token_hash for w in s.scalars(select(WebSession))]
    assert reader.password_hash.startswith("$argon2id$") and "m=65536" in reader.password_hash
    assert password not in reader.password_hash
    assert len(stored) == 2 and token not in stored and all(len(h) == 64 for h in stored)  # r1 and coord


@pytest.mark.slow
def test_one_time_password_must_be_replaced_and_logout_ends_the_session(readers):
    handle, server, clients = readers(names=("r1",))
    password = add_reader(handle, "newbie")
    client = ReaderClient(server.url)
    assert client.login("newbie", password).headers["location"] == "/password"
    assert client.http.get("/").headers["location"] == "/password"
    assert client.http.get("/api/sessions/1/cases/1").status_code == 403
    csrf = client.page_csrf("/password")
    weak = client.http.post("/password", data={"csrf_token": csrf, "current": password, "new": "short",
                                               "again": "short"})
    assert weak.status_code == 400
    ok = client.http.post("/password", data={"csrf_token": csrf, "current": password, "new": NEW_PASSWORD,
                                             "again": NEW_PASSWORD})
    assert ok.status_code == 303
    assert client.login("newbie", password).status_code == 401  # the one-time password is spent
    r1 = clients["r1"]
    session = r1.sessions()[0]
    assert r1.http.post("/logout", data={"csrf_token": r1.csrf}).status_code == 303
    assert r1.case(session, 1).status_code == 401
    client.close()


def test_audit_trail_is_append_only_and_records_answers(readers):
    handle, server, clients = readers(names=("r1",))
    r1 = clients["r1"]
    session = r1.sessions()[0]
    phase = r1.case(session, 1).json()["phase"]
    r1.answer(session, 1, phase, 30, 40)
    r1.answer(session, 1, phase, 35, 40)
    with handle.db.read() as s:
        rows = list(s.scalars(select(Audit).where(Audit.action.in_(["answer", "revise-answer"]))))
    assert [r.action for r in rows] == ["answer", "revise-answer"]
    assert rows[1].detail["old"]["left"]["score"] == 30 and rows[1].detail["new"]["left"]["score"] == 35
    assert rows[0].actor == "r1" and rows[0].ip == "127.0.0.1"
    for statement in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"):
        with pytest.raises(DatabaseError, match="append-only"):
            with handle.db.write() as s:
                s.execute(text(statement))
    with handle.db.read() as s:
        assert s.scalar(select(Audit).where(Audit.actor == "someone else")) is None
        assert len(list(s.scalars(select(Audit)))) > 2
