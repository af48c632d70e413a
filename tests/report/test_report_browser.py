"""The report rendered in headless Chromium: it loads without errors or requests and shows its sections.

The report has no script of its own; the test renders a copy with a small probe script appended, which
records after the page's load event how many images there are, which failed to decode, and every
resource the browser fetched (name resolution is disabled, so a network fetch could not succeed
anyway). A deliberately broken page checks that the probe does notice failures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mammoscreen.report import build_report
from testutils import chromium_decision, require_chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(autouse=True)
def chromium(request):
    if request.node.name.startswith("test_chromium_decision"):
        return None
    return require_chromium()


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


@pytest.mark.slow  # a real browser on the two-model run
def test_report_renders_in_chromium(report_run, tmp_path):
    run_dir, dataset, _ = report_run
    page = build_report(run_dir, tmp_path / "report.html", segmentation_dir=dataset / "segmentation",
                        max_gallery=6)
    dom, probe, console = render(page, tmp_path)
    assert console == []
    assert probe["resources"] == []
    assert probe["broken"] == []
    # 2 models x 6 gallery figures (+ outlined mammograms), 2 x 4 ROC/PR curves, 2 overlaid curves,
    # 2 reliability diagrams, and the subgroup figures (forest plots, ROC per subgroup) the run wrote.
    subgroup_figures = 0
    for path in [run_dir / m / "evaluation" / "subgroups.json" for m in ("standin_alpha", "standin_beta")] + [
            run_dir / "comparison" / "subgroups.json"]:
        for level in json.loads(path.read_text())["figures"].values():
            subgroup_figures += bool(level["forest"]) + sum(len(v) for v in level["roc"].values())
    assert subgroup_figures >= 5
    assert probe["images"] == 2 * 6 * 2 + 2 * 4 + 2 + 2 + subgroup_figures
    assert probe["images"] == dom.count("<img ")
    for section in ("provenance", "metrics", "curves", "calibration", "subgroups", "localization", "gallery"):
        assert f'<section id="{section}">' in dom
    for model in ("standin_alpha", "standin_beta"):
        part = re.split(r"<h3|</section>", dom.split(f'id="gallery-{model}"', 1)[1], maxsplit=1)[0]
        scores = [float(s) for s in re.findall(r'data-malignant="([0-9.]+)"', part)]
        assert len(scores) == 6 and scores == sorted(scores, reverse=True)
