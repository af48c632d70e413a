"""A synthetic study read in headless Chromium as readers would, from create-study to the MRMC result.

Two readers read every case without and with the AI (independent design, wash-out 0 for the test): they log in
with their one-time passwords and choose their own, zoom to full resolution, change window/level, use the
magnifier and a single view, mark a lesion, toggle the AI's saliency overlay, close the page mid-session and resume
where they stopped. The coordinator downloads the .imrmc from the administration page; ``mammoscreen mrmc`` on it
gives the figures computed by hand from the answers the test typed in.

Screenshots go to the test's temporary directory; with ``READER_APP_SCREENSHOTS=DIR`` small copies are written to
DIR as well (that is how docs/images/reader_app/ was made: ``READER_APP_SCREENSHOTS=docs/images/reader_app
python -m pytest tests/app/test_browser.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from mammoscreen.app.db import Answer, Case, Reader, ReadingSession
from mammoscreen.app.study import add_reader
from mammoscreen.cli import main

import handcalc
from conftest import NEW_PASSWORD
from testutils import require_chromium

pytestmark = pytest.mark.slow  # seconds to minutes: a whole run, training steps, a browser or fault injection

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture
def browser():
    chromium = require_chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Screenshots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.docs = Path(os.environ["READER_APP_SCREENSHOTS"]) if os.environ.get("READER_APP_SCREENSHOTS") else None
        self.taken: list[Path] = []

    def take(self, page, name: str) -> None:
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path))
        self.taken.append(path)
        if self.docs is not None:  # a small palette PNG for the documentation
            from PIL import Image

            self.docs.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as image:
                image = image.convert("RGB")
                image = image.resize((960, round(image.height * 960 / image.width)), Image.LANCZOS)
                image.quantize(colors=128).save(self.docs / f"{name}.png", optimize=True)


# Waits use selectors, not wait_for_function: the app's Content-Security-Policy forbids the eval() that needs.
def wait_ready(page, position: int, phase: str) -> None:
    page.wait_for_selector(f'body[data-ready="{position}:{phase}"]', state="attached", timeout=30_000)


def score_for(reader: str, modality: str, case: Case, side: str) -> int:
    """The score the test types: related to the truth, better aided, coarse so that ties occur."""
    rng = np.random.default_rng([hash(reader) % 1000, modality == "aided", case.exam_index, side == "left"])
    truth = getattr(case, f"label_{side}")
    signal = (3.0 if modality == "aided" else 1.5) * truth
    return int(np.clip(10 * round(2 + signal + rng.normal(0, 1.5)), 0, 100))


def first_login(page, url: str, name: str, one_time: str, lands_on: str = "/") -> None:
    page.goto(url + "/")
    assert page.url.endswith("/login")
    page.fill("#name", name)
    page.fill("#password", one_time)
    page.click("#login")
    page.wait_for_url("**/password")
    page.fill("#current", one_time)
    page.fill("#new", NEW_PASSWORD)
    page.fill("#again", NEW_PASSWORD)
    page.click("#save-password")
    page.wait_for_url(url + lands_on)


def answer_case(page, reader: str, rs: ReadingSession, position: int, cases: dict[int, Case], given: dict) -> None:
    case = cases[rs.case_order[position - 1]]
    scores = {side: score_for(reader, rs.modality, case, side) for side in ("left", "right")}
    for side in ("right", "left"):
        page.fill(f"#{side}-score", str(scores[side]))
        page.select_option(f"#{side}-birads", "4" if scores[side] >= 50 else "1")
    given[(reader, rs.modality, case.exam_index)] = (scores["left"], scores["right"])
    page.click("#save")
    if position < len(rs.case_order):
        wait_ready(page, position + 1, rs.modality)
    else:
        page.wait_for_selector("#finish-box:not([hidden])", timeout=30_000)


def explore_the_viewer(page, shots: Screenshots) -> None:
    """Zoom to full resolution, window/level, magnifier, one view, a lesion mark."""
    panel = page.locator('.panel[data-view="L-CC"] canvas')
    box = panel.bounding_box()
    x, y = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    for _ in range(4):
        page.mouse.wheel(0, -400)
    page.wait_for_selector('.panel[data-view="L-CC"][data-level="0"]', timeout=30_000)  # full resolution reached
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x + 60, y - 40, steps=5)
    page.mouse.up(button="right")
    wl = page.evaluate("window.readerApp.wl")
    assert wl["factor"] > 1 and wl["shift"] < 0
    page.keyboard.press("r")  # reset zoom and window
    page.click('button[data-tool="magnify"]')
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 5, y + 5, steps=2)
    shots.take(page, "magnifier")
    page.mouse.up()
    page.keyboard.press("2")  # L CC alone
    assert page.locator(".panel:not(.hidden)").count() == 1
    page.keyboard.press("0")
    assert page.locator(".panel:not(.hidden)").count() == 4
    page.click("#tool-mark")
    box = panel.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
    page.fill(".mark-rating", "70")
    page.click('button[data-tool="pan"]')


def test_two_readers_two_modalities_in_chromium_to_the_mrmc_result(browser, make_study, serve_study, tmp_path):
    handle = make_study(training=1, washout_days=0)
    passwords = {name: add_reader(handle, name) for name in ("reader_a", "reader_b")}
    passwords["coordinator"] = add_reader(handle, "coordinator", "admin")
    server = serve_study(handle)
    url = server.url
    with handle.db.read() as s:
        cases = {c.id: c for c in s.scalars(select(Case))}
        sessions = {r.name: list(s.scalars(select(ReadingSession).where(ReadingSession.reader_id == r.id)
                                           .order_by(ReadingSession.number)))
                    for r in s.scalars(select(Reader).where(Reader.role == "reader"))}
    shots = Screenshots(tmp_path / "screenshots")
    given: dict = {}
    errors: list[str] = []

    for reader in ("reader_a", "reader_b"):
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        if reader == "reader_a":
            page.goto(url + "/")
            shots.take(page, "login")
        first_login(page, url, reader, passwords[reader])
        for rs in sessions[reader]:
            if reader == "reader_a" and rs.number == 1:
                shots.take(page, "home")
            page.click(f"#session-{rs.number} a")
            wait_ready(page, 1, rs.modality)
            for position in range(1, len(rs.case_order) + 1):
                if position > 1:
                    wait_ready(page, position, rs.modality)
                if rs.modality == "aided" and position == 2:
                    page.check("#overlay-toggle")
                    for view in ("R-CC", "L-CC", "R-MLO", "L-MLO"):
                        page.wait_for_selector(f'.panel[data-view="{view}"][data-overlay="loaded"]', timeout=30_000)
                    assert page.locator("#ai-box").is_visible()
                    if reader == "reader_a":
                        shots.take(page, "reading_aided_overlay")
                    page.keyboard.press("o")  # and off again
                    assert not page.is_checked("#overlay-toggle")
                if rs.modality == "unaided" and position == 1:
                    assert not page.locator("#ai-box").is_visible() and not page.locator("#overlay-label").is_visible()
                    if reader == "reader_a":
                        shots.take(page, "reading_unaided")
                        explore_the_viewer(page, shots)
                answer_case(page, reader, rs, position, cases, given)
                if position == 2 and rs.number == 1:
                    # close the page mid-session; a new browser (new login) resumes at case 3
                    context.close()
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    page = context.new_page()
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    page.goto(url + "/login")
                    page.fill("#name", reader)
                    page.fill("#password", NEW_PASSWORD)
                    page.click("#login")
                    page.wait_for_url(url + "/")
                    assert "2 / " in page.inner_text(f"#session-{rs.number}")
                    page.click(f"#session-{rs.number} a")
                    wait_ready(page, 3, rs.modality)
                    assert page.inner_text("#case-title") == f"Case 3 of {len(rs.case_order)}"
            page.click("#finish")
            page.wait_for_url(url + "/")
            assert "completed" in page.inner_text(f"#session-{rs.number}")
        context.close()

    # the coordinator's page and the .imrmc download
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    first_login(page, url, "coordinator", passwords["coordinator"], "/admin")
    assert page.locator("#progress").inner_text().count("completed") == 4
    shots.take(page, "admin")
    with page.expect_download() as download:
        page.click("#export-imrmc")
    imrmc = tmp_path / "study.imrmc"
    download.value.save_as(imrmc)
    context.close()
    assert errors == []

    # what was stored is what was typed, with the marks, times and overlay use
    with handle.db.read() as s:
        answers = list(s.scalars(select(Answer)))
        names = {r.id: r.name for r in s.scalars(select(Reader))}
    assert len(answers) == 2 * 2 * len(cases)
    for a in answers:
        assert (a.score_left, a.score_right) == given[(names[a.reader_id], a.modality, cases[a.case_id].exam_index)]
        assert a.time_ms > 0
    assert sum(len(a.marks) for a in answers) == 1
    assert sum(a.overlay_shown for a in answers) == 2  # each reader toggled it on one aided case

    # `mammoscreen mrmc` on the download = the hand computation from the typed answers (training case excluded)
    assert main(["mrmc", str(imrmc), "--output-dir", str(tmp_path / "mrmc")]) == 0
    figures = json.loads((tmp_path / "mrmc" / "mrmc.json").read_text())
    study_cases = sorted((c for c in cases.values() if not c.training), key=lambda c: c.exam_index)
    truth = [getattr(c, f"label_{side}") for c in study_cases for side in ("left", "right")]
    scores = [[[given[(r, m, c.exam_index)][k] for c in study_cases for k in (0, 1)] for r in ("reader_a", "reader_b")]
              for m in ("unaided", "aided")]
    expected = handcalc.or_analysis(scores, truth)
    assert figures["data"]["n_cases"] == len(truth) and figures["data"]["readers"] == ["reader_a", "reader_b"]
    for i, m in enumerate(("unaided", "aided")):
        assert figures["modality_means"][m] == pytest.approx(expected["means"][i], abs=1e-12)
        for j, r in enumerate(("reader_a", "reader_b")):
            assert figures["auc"][m][r] == pytest.approx(expected["auc"][i][j], abs=1e-12)
    assert figures["anova"]["MS(T)"] == pytest.approx(expected["MS(T)"], rel=1e-9, abs=1e-15)
    assert figures["or_variance_components"]["Cov2"] == pytest.approx(expected["components"]["cov2"], rel=1e-9,
                                                                      abs=1e-15)
    assert figures["rrrc"]["F"] == pytest.approx(expected["F_rrrc"], rel=1e-9)
    assert len(shots.taken) == 6
