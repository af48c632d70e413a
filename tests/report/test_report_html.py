"""The HTML report of a small real run: self-contained, provenance, metrics, calibration, gallery, notes, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from html.parser import HTMLParser

import cv2
import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve as sk_calibration_curve
from sklearn.metrics import brier_score_loss

from mammoscreen.cli import main
from mammoscreen.report import ReportInputError, build_report
from mammoscreen.report.images import outlined_mammogram

MODELS = ("standin_alpha", "standin_beta")  # registered by conftest.report_run
SECTION_IDS = ("provenance", "metrics", "curves", "calibration", "localization", "gallery")


class Page(HTMLParser):
    """Elements of a page as (tag, attributes); text of table cells row by row, per table class."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "table":
            self._table = attributes.get("class", "")
            self.tables.setdefault(self._table, [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag, **attrs):
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


@pytest.fixture(scope="module")
def report(report_run, tmp_path_factory):
    run_dir, dataset, _ = report_run
    path = build_report(run_dir, tmp_path_factory.mktemp("report") / "report.html",
                        segmentation_dir=dataset / "segmentation")
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def test_page_is_self_contained(report):
    text, page = report
    sources = [a["src"] for t, a in page.elements if "src" in a]
    assert sources and all(s.startswith(("data:image/jpeg;base64,", "data:image/png;base64,",
                                         "data:image/svg+xml;base64,")) for s in sources)
    links = [a["href"] for t, a in page.elements if "href" in a]
    assert all(h.startswith("#") for h in links)  # only the table of contents
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    assert "@import" not in text and "url(" not in text  # no fetched style sheets, fonts or backgrounds
    for section in SECTION_IDS:
        assert len(page.all("section", id=section)) == 1
    for uri in sources:  # every embedded image decodes
        data = base64.b64decode(uri.split(",", 1)[1])
        if uri.startswith("data:image/svg+xml"):
            assert data.lstrip().startswith(b"<?xml") and b"<svg" in data
        else:
            assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None


def test_provenance_records_weights_data_and_versions(report, report_run):
    text, page = report
    run_dir, dataset, weights = report_run
    rows = {r[0]: r for r in page.tables["weights"][1:]}
    for name in MODELS:
        weight_file = weights / f"{name}.bin"
        assert rows[name][1] == str(weight_file)
        assert rows[name][2] == hashlib.sha256(weight_file.read_bytes()).hexdigest()
    data = {r[0]: r[1] for r in page.tables["kv"] if len(r) == 2}
    assert data["exam list sha256"] == hashlib.sha256((dataset / "exam_list.pkl").read_bytes()).hexdigest()
    assert data["exams / images"] == "4 / 16"
    assert data["images"] == str((dataset / "images").resolve())
    assert data["command"] == f"mammoscreen run --models {','.join(MODELS)}"
    assert np.__version__ in text and "Stand-in standin_alpha" in text
    assert "Tests only: synthetic data, not for clinical use." in text  # the models' intended use, in the header


def _estimate(value: dict) -> str:
    return f"{value['value']:.3f} ({value['ci_low']:.3f}\u2013{value['ci_high']:.3f})"


def test_metric_table_equals_metrics_json(report, report_run):
    _, page = report
    run_dir = report_run[0]
    header, *rows = page.tables["metrics"]
    assert header[:5] == ["model", "level", "cases", "malignant", "AUROC (95% CI)"]
    shown = {(r[0], r[1]): r for r in rows}
    for name in MODELS:
        metrics = json.loads((run_dir / name / "evaluation" / "metrics.json").read_text())
        for level in ("image", "breast"):
            values = metrics["levels"][level]
            row = shown[(name, level)]
            assert row[2:4] == [str(values["n_cases"]), str(values["n_positive"])]
            assert row[4] == _estimate(values["metrics"]["auroc"])
            assert row[5] == _estimate(values["metrics"]["auprc_trapezoid"])
            assert row[6] == _estimate(values["metrics"]["average_precision"])
    # The stand-ins are imperfect at image level: the table is not a column of 1.000s.
    assert shown[(MODELS[1], "image")][4] != shown[(MODELS[0], "image")][4]
    assert "Model comparison (breast level" in report[0]
    comparison = json.loads((run_dir / "comparison" / "comparison.json").read_text())
    pair = comparison["pairs"][0]
    assert f"{pair['model_a']} \u2212 {pair['model_b']}" in report[0]


def test_calibration_agrees_with_sklearn(report, report_run):
    _, page = report
    run_dir = report_run[0]
    rows = {(r[0], r[1]): r for r in page.tables["calibration"][1:]}
    for name in MODELS:
        frame = pd.read_csv(run_dir / name / "predictions.csv")
        y, p = frame["malignant_label"].to_numpy(), frame["malignant_pred"].to_numpy()
        row = rows[(name, "image")]
        assert row[2:4] == [str(len(y)), str(int(y.sum()))]
        assert row[4] == f"{brier_score_loss(y, p):.4f}"
        observed, predicted = sk_calibration_curve(y, p, n_bins=10)
        edges = np.linspace(0, 1, 11)  # sklearn's bins: (lo, hi], the first one closed
        counts = np.array([np.sum(((p > lo) | (k == 0)) & (p >= lo) & (p <= hi))
                           for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
        counts = counts[counts > 0]
        assert row[5] == f"{np.sum(counts * np.abs(observed - predicted)) / len(y):.4f}"
    assert len([a for a in page.all("img") if "reliability diagram" in a.get("alt", "")]) == len(MODELS)


def test_localization_table(report):
    _, page = report
    rows = {(r[0], r[1]): r for r in page.tables["localization"][1:]}
    assert rows[(MODELS[0], "malignant")][2:] == ["5", "0.400", "0.432 (0.301\u20130.563)", "0.800 (0.600\u20131.000)"]
    assert rows[(MODELS[0], "benign")][4:] == ["0.211", "0.667"]  # no CI recorded: value only
    assert (MODELS[1], "malignant") not in rows
    assert "Dice 0.50, hit" in report[0]  # per-image result in the gallery caption


def test_gallery_sorted_by_malignant_score_with_outlines(report, report_run):
    _, page = report
    run_dir, dataset, _ = report_run
    items = page.all("figure", **{"class": "gallery-item"})
    for name in MODELS:
        frame = pd.read_csv(run_dir / name / "predictions.csv")
        expected = frame.sort_values(["malignant_pred", "image_index"], ascending=[False, True])["image_index"]
        start = [k for k, t in enumerate(page.elements) if t[0] == "h3" and t[1].get("id") == f"gallery-{name}"][0]
        shown = [a["data-image"] for t, a in page.elements[start:] if t == "figure"][:len(frame)]
        assert shown == list(expected)
    assert len(items) == 2 * 16
    # Every synthetic image has mask files: each item gets the outlined mammogram beside the figure.
    assert len(page.all("img", **{"class": "truth-img"})) == 2 * 16


def test_gallery_cap_and_missing_outline_note(report_run, tmp_path):
    run_dir = report_run[0]
    path = build_report(run_dir, tmp_path / "r.html", max_gallery=3, figure_width=300)
    page = Page(path.read_text())
    items = page.all("figure", **{"class": "gallery-item"})
    assert len(items) == 2 * 3 and not page.all("img", **{"class": "truth-img"})
    scores = [float(a["data-malignant"]) for a in items[:3]]
    assert scores == sorted(scores, reverse=True)
    assert "3 of 16 figures" in path.read_text()
    assert "No ground-truth outlines" in path.read_text()
    thumb = next(a["src"] for a in page.all("img", **{"class": "figure-img"}))
    image = cv2.imdecode(np.frombuffer(base64.b64decode(thumb.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] <= 300


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_an_unusable_mask_costs_its_outline_not_the_report(report_run, tmp_path):
    from mammoscreen.data.images import write_png

    run_dir, dataset, _ = report_run
    masks = tmp_path / "segmentation"
    shutil.copytree(dataset / "segmentation", masks)
    victim = sorted(masks.glob("*_malignant.png"))[0]
    write_png(victim, np.zeros((17, 9), np.uint8))  # not the image's size (e.g. a mask in another frame)
    text = build_report(run_dir, tmp_path / "r.html", segmentation_dir=masks).read_text()
    page = Page(text)
    assert len(page.all("img", **{"class": "truth-img"})) == 2 * 15
    assert len(page.all("p", **{"class": "note truth-missing"})) == 2
    assert f"ground-truth outline not drawn: {victim}" in text


def test_outline_is_drawn_on_the_lesion_border(tmp_path):
    from mammoscreen.data.images import write_png

    image = np.full((400, 300), 1000, np.uint16)
    mask = np.zeros((400, 300), np.uint8)
    mask[100:200, 100:200] = 255
    write_png(tmp_path / "im.png", image)
    write_png(tmp_path / "m.png", mask)
    jpeg = outlined_mammogram(tmp_path / "im.png", {"malignant": tmp_path / "m.png"}, height=200)
    drawn = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert drawn.shape[:2] == (200, 150)
    red = (drawn[..., 2] > 150) & (drawn[..., 1] < 100) & (drawn[..., 0] < 100)
    assert red[50, 50:100].all() or red[49:52, 60].any()  # top edge of the square, at half scale
    assert not red[75, 75] and not red[10, 10]  # neither inside the lesion nor far from it
    wrong = np.zeros((10, 10), np.uint8)
    write_png(tmp_path / "small.png", wrong)
    with pytest.raises(ValueError, match="small.png.*size and orientation"):
        outlined_mammogram(tmp_path / "im.png", {"benign": tmp_path / "small.png"}, height=200)


def test_missing_pieces_give_notes(report_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report_run[0], run_dir)
    shutil.rmtree(run_dir / "comparison")
    for name in MODELS:
        shutil.rmtree(run_dir / name / "evaluation")
    shutil.rmtree(run_dir / MODELS[1] / "visualization")
    shutil.rmtree(run_dir / MODELS[0] / "localization")
    summary = json.loads((run_dir / "run_summary.json").read_text())
    summary["run"]["exam_list"] = str(tmp_path / "gone.pkl")  # labels not found any more
    # As an older run: no predictor record, only the requested weights (here a file) -> hashed now.
    weight_file = report_run[2] / f"{MODELS[0]}.bin"
    summary["models"][0].update(provenance=None, weights=str(weight_file))
    summary["models"][1].update(provenance=None)  # a directory: nothing to hash
    (run_dir / "run_summary.json").write_text(json.dumps(summary))
    text = build_report(run_dir).read_text()
    weights = Page(text).tables["weights"]
    assert weights[1:] == [[MODELS[0], str(weight_file), hashlib.sha256(weight_file.read_bytes()).hexdigest(),
                            "computed when the report was built"]]
    assert f"weight files not recorded for: {MODELS[1]}" in text
    assert (run_dir / "report.html").is_file()
    assert "No evaluation results" in text and "No curves" in text
    assert "No calibration" in text and "the exam list with the labels was not found" in text
    assert "No localisation results in this run." in text
    assert f"{MODELS[1]}: no figures (run with --visualize" in text
    assert len(Page(text).all("figure", **{"class": "gallery-item"})) == 16

    # A run where the only model was skipped: every section still renders, with its note.
    skipped = tmp_path / "skipped"
    skipped.mkdir()
    (skipped / "run_summary.json").write_text(json.dumps({"models": [
        {"model": "gmic", "variant": "1", "status": "skipped", "reason": "weights file not found: /w/x.p"}]}))
    text = build_report(skipped).read_text()
    page = Page(text)
    assert all(len(page.all("section", id=s)) == 1 for s in SECTION_IDS)
    assert "skipped: weights file not found: /w/x.p" in text and "No figures in this run." in text


def test_approximate_heatmaps_are_flagged(report_run, tmp_path, report):
    assert "Approximate arithmetic" not in report[0]
    run_dir = tmp_path / "run"
    shutil.copytree(report_run[0], run_dir)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    summary["models"][1]["provenance"] = {**(summary["models"][1].get("provenance") or {}),
                                          "heatmap_precision": "bfloat16"}
    (run_dir / "run_summary.json").write_text(json.dumps(summary))
    text = build_report(run_dir).read_text()
    assert f"Approximate arithmetic, not the official numbers: {MODELS[1]}: heatmaps in bfloat16" in text


HOSTILE = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>&amp;'"


def test_every_value_from_the_run_is_escaped(report_run, tmp_path):
    """Text from run_summary.json, the title and the localisation file reaches the page as text: the templates
    autoescape it, so no element or attribute of the page comes from the run's files."""
    run_dir = tmp_path / "run"
    shutil.copytree(report_run[0], run_dir)
    summary = json.loads((run_dir / "run_summary.json").read_text())
    summary["run"]["command"] = ["mammoscreen", "run", HOSTILE]
    summary["run"]["finished"] = HOSTILE
    summary["models"][0]["variant"] = HOSTILE
    summary["models"].append({"model": "skipped_model", "status": "skipped", "reason": HOSTILE})
    (run_dir / "run_summary.json").write_text(json.dumps(summary))
    localization = json.loads((run_dir / MODELS[0] / "localization" / "localization.json").read_text())
    localization["seed"] = HOSTILE
    (run_dir / MODELS[0] / "localization" / "localization.json").write_text(json.dumps(localization))
    text = build_report(run_dir, title=HOSTILE).read_text()
    page = Page(text)
    assert "<script" not in text and "onerror=alert(2)>" not in text and not page.all("img", src="x")
    assert [a for _, a in page.elements if "onerror" in a] == []
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;img src=x onerror=alert(2)&gt;&amp;amp;&#39;"
    assert text.count(escaped) >= 6  # title, heading, variant, reason, command, finished, seed
    assert page.tables[""][1][2] == HOSTILE  # the variant cell reads back as the original text


def test_bad_input_errors_name_the_file(tmp_path):
    with pytest.raises(ReportInputError, match=f"{tmp_path / 'nope'} does not exist"):
        build_report(tmp_path / "nope")
    with pytest.raises(ReportInputError, match="run_summary.json not found.*mammoscreen run"):
        build_report(tmp_path)
    (tmp_path / "run_summary.json").write_text("{not json")
    with pytest.raises(ReportInputError, match="run_summary.json is not valid JSON"):
        build_report(tmp_path)
    (tmp_path / "run_summary.json").write_text(json.dumps({"models": []}))
    with pytest.raises(ReportInputError, match="segmentation directory .*masks"):
        build_report(tmp_path, segmentation_dir=tmp_path / "no_masks")
    (tmp_path / "run_summary.json").write_text(json.dumps({"models": [{"model": "gmic", "status": "done"}]}))
    localization = tmp_path / "gmic" / "localization"
    localization.mkdir(parents=True)
    (localization / "localization.json").write_text(json.dumps({"classes": {"malignant": 0.5}}))
    with pytest.raises(ReportInputError, match="localization.json has no 'classes' object.*mammoscreen localize"):
        build_report(tmp_path)
    (localization / "localization.json").write_text(json.dumps({"classes": {}}))
    (tmp_path / "gmic" / "predictions.csv").write_bytes(b"\xff\xfe\x00broken")
    with pytest.raises(ReportInputError, match="predictions.csv cannot be read as CSV"):
        build_report(tmp_path)


def test_write_is_atomic(report_run, tmp_path, monkeypatch):
    output = tmp_path / "report.html"
    output.write_text("previous report")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        build_report(report_run[0], output, max_gallery=1)
    assert output.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left


def test_cli(report_run, tmp_path, capsys):
    run_dir, dataset, _ = report_run
    output = tmp_path / "out" / "page.html"
    assert main(["report", str(run_dir), "--output", str(output), "--segmentations", str(dataset / "segmentation"),
                 "--max-gallery", "2", "--title", "Synthetic check"]) == 0
    assert "report written" in capsys.readouterr().out
    text = output.read_text()
    assert "<title>Synthetic check</title>" in text
    assert len(Page(text).all("img", **{"class": "truth-img"})) == 2 * 2
    with pytest.raises(SystemExit) as exited:  # refused while parsing (issue 16.2)
        main(["report", str(tmp_path / "missing")])
    assert exited.value.code == 2
    assert f"argument RUN_DIR: directory not found: {tmp_path / 'missing'}" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Subgroups (issue 15): the run's exam list has metadata (the synthetic density and age)
# ----------------------------------------------------------------------------------------------

def test_subgroup_tables_equal_subgroups_json(report, report_run):
    text, page = report
    run_dir = report_run[0]
    assert len(page.all("section", id="subgroups")) == 1 and 'href="#subgroups"' in text
    tables = page.tables["subgroups"]
    assert tables[0][:5] == ["subgroup", "cases", "exams", "malignant", "AUROC (95% CI)"]
    shown = [row for row in tables if row[0] != "subgroup"]
    for name in MODELS:
        data = json.loads((run_dir / name / "evaluation" / "subgroups.json").read_text())
        for level in ("image", "breast"):
            rows = [r for r in data["levels"][level]["rows"] if r["metric"] == "auroc"]
            for r in rows:
                label = f"{r['key']} {r['group']}".strip()
                value = ("-" if r["value"] is None
                         else _estimate(r) if r["ci_low"] is not None else f"{r['value']:.3f}")
                expected = [label, str(r["n_cases"]), str(r["n_exams"]), str(r["n_positive"]), value]
                assert expected in [row[:5] for row in shown], (name, level, label)
    # the forest plots are embedded and the comparison's paired DeLong tests shown
    assert text.count('alt="forest plot, image level"') == 2 and text.count('alt="forest plot, breast level"') == 3
    assert "<h3>All models</h3>" in text
    assert f"{MODELS[0]} \u2212 {MODELS[1]}" in text.split('id="subgroups"')[1]
    assert "Metadata in the exam list: age, density." in text


def test_stale_subgroups_and_runs_without_metadata(report_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(report_run[0], run_dir)
    predictions = run_dir / MODELS[0] / "predictions.csv"
    predictions.write_text(predictions.read_text().replace("\n", "\n", 1) + "\n")  # the file changed since
    text = build_report(run_dir).read_text()
    assert text.count("was made from other predictions") == 2  # alpha's and the comparison's
    assert text.split('id="subgroups"')[1].count("<h3>") == 1  # beta only

    # An older run: no metadata in the exam list and no subgroup files -> no section at all.
    from mammoscreen.data.exams import load_exam_list, save_exam_list

    for path in run_dir.rglob("subgroups.json"):
        path.unlink()
    exams = load_exam_list(report_run[1] / "exam_list.pkl")
    for exam in exams:
        exam.metadata = {}
    plain = save_exam_list(exams, tmp_path / "exam_list_without_metadata.pkl")
    for path in [run_dir / name / "evaluation" / "metrics.json" for name in MODELS]:
        metrics = json.loads(path.read_text())
        metrics["exam_list"]["path"] = str(plain)
        path.write_text(json.dumps(metrics))
    text = build_report(run_dir).read_text()
    assert 'id="subgroups"' not in text and 'href="#subgroups"' not in text
