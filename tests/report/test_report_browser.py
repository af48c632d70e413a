"""The report rendered in headless Chromium: it loads without errors or requests and shows its sections.

The report has no script of its own; the test renders a copy with a small probe script appended, which
records after the page's load event how many images there are, which failed to decode, and every
resource the browser fetched (name resolution is disabled, so a network fetch could not succeed
anyway). A deliberately broken page checks that the probe does notice failures.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mammoscreen.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
UNAVAILABLE = Path(__file__).resolve().parents[2] / ".ci" / "chromium-unavailable"
"""Written by .ci/run with the reason when it cannot install Chromium."""


def chromium_decision(chromium: str | None, ci: bool, recorded_reason: str | None) -> tuple[str, str]:
    """('run' | 'skip' | 'fail', why): in CI a missing Chromium is a failure unless .ci/run said why."""
    if chromium is not None:
        return "run", chromium
    if not ci:
        return "skip", ("Chromium is not installed (Debian package 'chromium', which .ci/run installs): the browser "
                        "rendering test is skipped")
    if recorded_reason:
        return "skip", f"Chromium could not be installed in CI: {recorded_reason}"
    return "fail", (f"Chromium is missing in CI and .ci/run recorded no reason in {UNAVAILABLE}: the browser "
                    "test must not disappear silently")


@pytest.fixture(autouse=True)
def chromium(request):
    if request.node.name.startswith("test_chromium_decision"):
        return None
    recorded = UNAVAILABLE.read_text(encoding="utf-8").strip() if UNAVAILABLE.is_file() else None
    decision, why = chromium_decision(CHROMIUM, os.environ.get("CI", "").lower() == "true", recorded)
    if decision == "skip":
        pytest.skip(why)
    if decision == "fail":
        pytest.fail(why)
    return CHROMIUM


@pytest.mark.parametrize("chromium_path, ci, reason, expected", [
    ("/usr/bin/chromium", True, None, "run"),
    (None, False, None, "skip"),
    (None, True, "apt-get install chromium failed: E: Unable to locate package chromium", "skip"),
    (None, True, None, "fail"),
    (None, True, "", "fail"),
])
def test_chromium_decision(chromium_path, ci, reason, expected):
    decision, why = chromium_decision(chromium_path, ci, reason)
    assert decision == expected
    if reason:
        assert reason in why

PROBE = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                     .map(function (i) { return i.alt; });
  var out = document.createElement('pre');
  out.id = 'browser-probe';
  out.textContent = JSON.stringify({images: images.length, broken: broken,
    resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })});
  document.body.appendChild(out);
  if (broken.length) console.error('broken images: ' + broken.join(', '));
});
</script>"""


def render(page: Path, tmp_path: Path) -> tuple[str, dict, list[str]]:
    """(dumped DOM, probe record, console lines) of ``page`` with the probe appended, in headless Chromium."""
    probed = tmp_path / f"probed_{page.name}"
    text = page.read_text(encoding="utf-8")
    assert text.count("</body>") == 1
    probed.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--host-resolver-rules=MAP * ~NOTFOUND",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=1280,2000",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'<pre id="browser-probe">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not run (page not loaded?); stderr: {result.stderr[-2000:]}"
    probe = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, probe, console


def test_probe_notices_failed_loads(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="remote" src="http://example.invalid/x.png">'
                    '<img alt="junk" src="data:image/png;base64,AAAA"></body></html>')
    _, probe, console = render(page, tmp_path)
    assert probe["broken"] == ["remote", "junk"]
    assert probe["resources"] == ["http://example.invalid/x.png"]
    assert any("broken images" in line for line in console)


def test_report_renders_in_chromium(report_run, tmp_path):
    run_dir, dataset, _ = report_run
    page = build_report(run_dir, tmp_path / "report.html", segmentation_dir=dataset / "segmentation",
                        max_gallery=6)
    dom, probe, console = render(page, tmp_path)
    assert console == []
    assert probe["resources"] == []
    assert probe["broken"] == []
    # 2 models x 6 gallery figures (+ outlined mammograms), 2 x 4 ROC/PR curves, 2 overlaid curves,
    # 2 reliability diagrams.
    assert probe["images"] == 2 * 6 * 2 + 2 * 4 + 2 + 2
    assert probe["images"] == dom.count("<img ")
    for section in ("provenance", "metrics", "curves", "calibration", "localization", "gallery"):
        assert f'<section id="{section}">' in dom
    for model in ("standin_alpha", "standin_beta"):
        part = re.split(r"<h3|</section>", dom.split(f'id="gallery-{model}"', 1)[1], maxsplit=1)[0]
        scores = [float(s) for s in re.findall(r'data-malignant="([0-9.]+)"', part)]
        assert len(scores) == 6 and scores == sorted(scores, reverse=True)
