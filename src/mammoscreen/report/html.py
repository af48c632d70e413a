"""The self-contained HTML report of a ``mammoscreen run`` output directory.

One file, ``report.html``: provenance, metric table with CIs, ROC/PR curves, calibration, localisation
and a gallery of the explanation figures sorted by malignant score. Every image is embedded as a
``data:`` URI and the style sheet is inline, so the page opens offline and fetches nothing; it has no
script. Missing inputs (no labels, no figures, no localisation) become a short note in their section.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..core.files import write_text_atomic
from ..core.paths import name_path, name_problem
from .blocks import (Block, Code, Gallery, GalleryItem, Hash, Heading, Image, KeyValues, Note, OutlineLegend, Plots,
                     Section, Table, TruthMissing)
from .collect import ModelRun, ReportInputError, RunContents, collect_run
from .images import data_uri, figure_thumbnail, outlined_mammogram

__all__ = ["build_report", "render_report", "DEFAULT_MAX_GALLERY", "REPORT_FILE"]

REPORT_FILE = "report.html"
DEFAULT_MAX_GALLERY = 24  # figures per model: keeps the file to a few MB
# The GMIC figure has 4 + K panels side by side: ~1400 px keeps each panel legible when enlarged.
DEFAULT_FIGURE_WIDTH = 1400
TRUTH_HEIGHT = 400  # rows of the outlined mammogram (shown at 200 CSS px: sharp on high-DPI screens)
CALIBRATION_BINS = 10
SECTIONS = (("provenance", "Provenance"), ("warnings", "Warnings"), ("metrics", "Metrics"),
            ("curves", "ROC and PR curves"), ("calibration", "Calibration"), ("subgroups", "Subgroups"),
            ("localization", "Localisation"), ("gallery", "Gallery"))
MAX_SUBGROUP_WARNINGS = 12
METRIC_COLUMNS = (("auroc", "AUROC"), ("auprc_trapezoid", "AUPRC (trapezoidal)"),
                  ("average_precision", "Average precision"), ("benign_auroc", "Benign AUROC"))
DEFAULT_INTENDED_USE = "Research only. Not a medical device; not for clinical use."


def _text(value: Any) -> str:
    return "-" if value is None else str(value)


def _number(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def _estimate(estimate: dict[str, Any] | None, digits: int = 3) -> str:
    """'0.812 (0.700-0.901)' from a metrics.json estimate; '-' when absent."""
    if not isinstance(estimate, dict) or estimate.get("value") is None:
        return "-"
    text = _number(estimate["value"], digits)
    if estimate.get("ci_low") is not None and estimate.get("ci_high") is not None:
        text += f" ({_number(estimate['ci_low'], digits)}\u2013{_number(estimate['ci_high'], digits)})"
    return text


def _file_image(path: Path, alt: str) -> Image | None:
    """An evaluation figure embedded: the SVG next to the PNG when there is one (sharp when zoomed)."""
    svg = path.with_suffix(".svg")
    if svg.is_file():
        return Image(data_uri(svg.read_bytes(), "image/svg+xml"), alt)
    if path.is_file():
        return Image(data_uri(path.read_bytes(), "image/png"), alt)
    return None


def _section(section_id: str, parts: Sequence[Block]) -> Section:
    return Section(section_id, dict(SECTIONS)[section_id], list(parts))


# ----------------------------------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------------------------------

def _model_field(model: ModelRun, key: str) -> Any:
    """A registry field as the run recorded it, else as the registry has it now, else None."""
    return model.entry.get(key) or getattr(model.spec, key, None)


def _intended_uses(contents: RunContents) -> list[str]:
    uses = [_model_field(m, "intended_use") or DEFAULT_INTENDED_USE for m in contents.models]
    return list(dict.fromkeys(uses))


def _has_subgroups(contents: RunContents) -> bool:
    """The Subgroups section appears when the exam list has metadata or a subgroup analysis exists."""
    return bool(contents.metadata_keys or contents.comparison_subgroups or any(m.subgroups for m in contents.models)
                or any("subgroups" in m.notes for m in contents.models) or "comparison subgroups" in contents.notes)


def _provenance(contents: RunContents, report_environment: dict[str, Any]) -> Section:
    run = contents.run
    parts: list[Block] = [Heading("Models")]
    rows = []
    for m in contents.models:
        status = "ran" if m.done else f"skipped: {m.entry.get('reason') or 'no reason recorded'}"
        rows.append([Code(m.name), _model_field(m, "title"), m.entry.get("variant"), status,
                     m.entry.get("output_level"), _model_field(m, "paper"), _model_field(m, "license"),
                     _model_field(m, "intended_use")])
    parts.append(Table(["model", "title", "variant", "status", "output", "paper", "licence", "intended use"], rows))
    approximate = [f"{m.name}: heatmaps in {precision}" for m in contents.models
                   if (precision := (m.entry.get("provenance") or {}).get("heatmap_precision", "float32")) != "float32"]
    if approximate:
        parts.append(Note(f"Approximate arithmetic, not the official numbers: {'; '.join(approximate)} "
                          "(see docs/models/nyu_model.md#speed)."))

    parts.append(Heading("Weights"))
    rows = [[Code(m.name), Code(w.path), Hash(w.sha256), w.source] for m in contents.models for w in m.weights]
    missing = [m.name for m in contents.models if m.done and not m.weights]
    if rows:
        parts.append(Table(["model", "file", "sha256", "source"], rows, css="weights"))
    if missing:
        parts.append(Note(f"weight files not recorded for: {', '.join(missing)}"))

    parts.append(Heading("Data"))
    failures = run.get("failures") or {}
    per_model = ", ".join(f"{m.name}: {m.entry.get('n_predictions', 0)} predictions, "
                          f"{m.entry.get('n_failed', 0)} failed" for m in contents.models if m.done)
    parts.append(KeyValues([
        ("images", Code(run.get("images", "not recorded"))),
        ("exam list", Code(run.get("exam_list", "not recorded"))),
        ("exam list sha256", Hash(run.get("exam_list_sha256", "not recorded"))),
        ("exams / images", f"{run.get('n_exams', '-')} / {run.get('n_images', '-')}"),
        ("labels used", Code(contents.exam_list) if contents.exam_list else "none found"),
        ("segmentations", Code(run["segmentations"]) if run.get("segmentations") else "none given to the run"),
        ("failures by stage", ", ".join(f"{k}: {v}" for k, v in failures.items() if v) or "none"),
        ("predictions", per_model or "none"),
    ]))

    parts.append(Heading("Software and run"))
    env = run.get("environment") or {}
    keys = ("mammoscreen", "python", "torch", "numpy", "platform")
    rows = [[k, env.get(k, "not recorded"), report_environment.get(k)] for k in keys]
    parts.append(Table(["", "when the run was made", "when this report was built"], rows))
    command = run.get("command")
    parts.append(KeyValues([
        ("run finished", run.get("finished", "not recorded")),
        ("command", Code(" ".join(command)) if command else "not recorded (run from Python)"),
    ]))
    return _section("provenance", parts)


def _warnings(contents: RunContents) -> Section:
    """Implausible inputs (warnings.csv) and everything that failed (failures.csv), image by image."""
    parts: list[Block] = []
    if contents.warnings:
        parts.append(Note(f"{len(contents.warnings)} input(s) do not look like the mammograms the models expect; "
                          "they were predicted, but check them before trusting their scores."))
        parts.append(Table(["stage", "image", "warning"],
                           [[w.stage, Code(w.name), w.message] for w in contents.warnings]))
    else:
        parts.append(Note("No input warnings: every image passed the plausibility checks."))
    if contents.failures:
        io = sum(f.io_error for f in contents.failures)
        parts.append(Heading("Failures"))
        if io:
            parts.append(Note(f"{io} failure(s) were I/O errors (disk full, read-only): the run is incomplete; "
                              "re-run the same command after fixing the cause."))
        parts.append(Table(["stage", "item", "kind", "reason"],
                           [[f.stage, Code(f.name), f.kind, f.reason] for f in contents.failures]))
    return _section("warnings", parts)


def _ci_note(metrics: dict[str, Any]) -> str:
    boot = metrics.get("bootstrap") or {}
    if not boot.get("replicates"):
        return "no confidence intervals (no bootstrap replicates)"
    return (f"{float(boot.get('confidence', 0.95)):.0%} CIs: percentile bootstrap over cases, "
            f"{boot['replicates']} replicates, seed {boot.get('seed')}")


def _metrics(contents: RunContents) -> Section:
    parts: list[Block] = []
    rows, notes, ci_notes = [], [], []
    for m in contents.models:
        if m.metrics is None:
            if m.done:
                notes.append(f"{m.name}: {m.notes.get('metrics', 'not evaluated')}")
            continue
        ci_notes.append(f"{m.name}: {_ci_note(m.metrics)}")
        for level, values in (m.metrics.get("levels") or {}).items():
            metric_values = values.get("metrics") or {}
            rows.append([Code(m.name), level, values.get("n_cases"), values.get("n_positive")]
                        + [_estimate(metric_values.get(key)) for key, _ in METRIC_COLUMNS])
    if rows:
        parts.append(Table(["model", "level", "cases", "malignant"] + [f"{label} (95% CI)" for _, label in
                                                                       METRIC_COLUMNS], rows, numeric_from=2,
                           css="metrics"))
        parts += [Note(n) for n in ci_notes]
        parts.append(Note("AUPRC (trapezoidal) is the meta-repository's AUPRC; average precision is the step-wise "
                          "area. Breast level: image scores averaged per breast."))
    else:
        parts.append(Note("No evaluation results: the run was not evaluated (no labels in the exam list, or "
                          "--no-evaluate)."))
    parts += [Note(n) for n in notes]
    if contents.comparison:
        parts += _comparison(contents.comparison)
    return _section("metrics", parts)


def _comparison(comparison: dict[str, Any]) -> list[Block]:
    level = comparison.get("level", "breast")
    parts: list[Block] = [Heading(f"Model comparison ({level} level, {_text(comparison.get('n_cases'))} cases, "
                                  f"{_text(comparison.get('n_positive'))} malignant)", id="comparison")]
    rows = [[Code(name), _estimate((model.get("metrics") or {}).get("auroc")),
             _estimate((model.get("metrics") or {}).get("auprc_trapezoid")), _number(model.get("brier_score"), 4)]
            for name, model in (comparison.get("models") or {}).items()]
    parts.append(Table(["model", "AUROC (95% CI)", "AUPRC (95% CI)", "Brier score"], rows, numeric_from=1))
    pairs = comparison.get("pairs") or []
    if pairs:
        rows = []
        for pair in pairs:
            delong = pair.get("delong") or {}
            boot = pair.get("bootstrap_ci") or [None, None]
            p = delong.get("p_value")
            rows.append([f"{pair.get('model_a')} \u2212 {pair.get('model_b')}",
                         _number(pair.get("auroc_difference"), 4),
                         "-" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}"),
                         f"{_number(delong.get('ci_low'), 4)} to {_number(delong.get('ci_high'), 4)}",
                         "-" if boot[0] is None else f"{_number(boot[0], 4)} to {_number(boot[1], 4)}"])
        parts.append(Table(["pair", "AUROC difference", "DeLong p", "DeLong 95% CI", "paired bootstrap 95% CI"],
                           rows, numeric_from=1))
    return parts


def _curves(contents: RunContents) -> Section:
    parts: list[Block] = []
    for m in contents.models:
        if m.metrics is None or m.evaluation_dir is None:
            continue
        items = []
        for level, names in (m.metrics.get("figures") or {}).items():
            for kind in ("roc_curve", "pr_curve"):
                image = _file_image(m.evaluation_dir / str(names.get(kind, "")), f"{m.name} {level} {kind}")
                if image is not None:
                    items.append((image, f"{m.name}, {level} level, {'ROC' if kind == 'roc_curve' else 'PR'}"))
        if items:
            parts += [Heading(m.name), Plots(items)]
    if contents.comparison_dir is not None:
        items = [(image, caption) for stem, caption in (("roc_curves", "ROC curves of the models"),
                                                       ("pr_curves", "PR curves of the models"))
                 if (image := _file_image(contents.comparison_dir / f"{stem}.png", caption)) is not None]
        if items:
            parts += [Heading("All models"), Plots(items)]
    if not parts:
        parts.append(Note("No curves: the run was not evaluated (they need labels)."))
    return _section("curves", parts)


def _calibration(contents: RunContents) -> Section:
    from ..evaluate.metrics import brier_score, expected_calibration_error
    from ..evaluate.plots import calibration_figure, figure_bytes
    from ..evaluate.validation import EvaluationInputError

    parts: list[Block] = [Note(f"Malignancy probability against the observed malignant fraction in "
                             f"{CALIBRATION_BINS} equal-width bins. Brier score: mean squared error of the "
                             "probability (lower is better); ECE: expected calibration error, the bins' "
                             "count-weighted mean gap between observed fraction and mean probability.")]
    rows, items, notes = [], [], []
    for m in contents.models:
        if not m.done:
            continue
        if not m.scores_by_level:
            notes.append(f"{m.name}: {m.notes.get('calibration', 'no labels')}")
            continue
        curves = {}
        for level, scores in m.scores_by_level.items():
            try:
                brier = brier_score(scores.y_true, scores.y_score)
                ece = expected_calibration_error(scores.y_true, scores.y_score, n_bins=CALIBRATION_BINS)
            except EvaluationInputError as error:
                notes.append(f"{m.name}, {level} level: not probabilities ({error})")
                continue
            rows.append([Code(m.name), level, scores.y_true.size, int(np.sum(scores.y_true)),
                         _number(brier, 4), _number(ece, 4)])
            curves[f"{level} level"] = (scores.y_true, scores.y_score)
        if curves:
            svg = figure_bytes(calibration_figure(curves, n_bins=CALIBRATION_BINS,
                                                  title=f"Reliability diagram, {m.name}"), "svg")
            items.append((Image(data_uri(svg, "image/svg+xml"), f"reliability diagram of {m.name}"), m.name))
    if rows:
        parts.append(Table(["model", "level", "cases", "malignant", "Brier score", "ECE"], rows, numeric_from=2,
                           css="calibration"))
        parts.append(Plots(items))
    else:
        parts.append(Note("No calibration: it needs the labels of the exam list."))
    parts += [Note(n) for n in notes]
    return _section("calibration", parts)


def _p_value(value: Any) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _difference(row: dict[str, Any] | None) -> str:
    if not row or row.get("difference") is None:
        return "-"
    return (f"{row['difference']:+.3f} ({row['difference_ci_low']:+.3f} to {row['difference_ci_high']:+.3f})")


def _subgroup_level(analysis: dict[str, Any], directory: Path, figures: dict[str, Any], title: str) -> list[Block]:
    """Table, tests and figures of one level of a subgroups.json."""
    rows = [r for r in analysis.get("rows") or [] if isinstance(r, dict)]
    index = {(r.get("key"), r.get("group"), r.get("predictor"), r.get("metric"), r.get("operating_point")): r
             for r in rows}
    readers = set(analysis.get("readers") or [])
    predictors = [p for p in dict.fromkeys(r.get("predictor") for r in rows) if p not in readers]
    order = [("", "all")] + [(g.get("key"), label) for g in analysis.get("groupings") or []
                             for label in g.get("groups") or []]
    parts: list[Block] = [Heading(title, 4)]
    for predictor in predictors:
        rule = next((r.get("operating_point") for r in rows if r.get("predictor") == predictor
                     and r.get("operating_point")), None)
        table = []
        for key, group in order:
            auroc = index.get((key, group, predictor, "auroc", ""))
            if auroc is None:
                continue
            cells = [f"{key} {group}".strip(), auroc.get("n_cases"), auroc.get("n_exams"), auroc.get("n_positive"),
                     _estimate(auroc), _estimate(index.get((key, group, predictor, "auprc_trapezoid", "")))]
            if rule:
                cells += [_estimate(index.get((key, group, predictor, m, rule)))
                          for m in ("sensitivity", "specificity")]
            cells += [_difference(auroc), _p_value(auroc.get("p_value"))]
            table.append(cells)
        header = ["subgroup", "cases", "exams", "malignant", "AUROC (95% CI)", "AUPRC (95% CI)"]
        if rule:
            header += [f"sensitivity at {rule}", f"specificity at {rule}"]
        header += ["AUROC \u2212 all (95% CI)", "p"]
        if len(predictors) > 1:
            parts.append(Heading(predictor, 5))
        parts.append(Table(header, table, numeric_from=1, css="subgroups"))
        tests = [h for h in analysis.get("heterogeneity") or [] if h.get("predictor") == predictor
                 and h.get("metric") == "auroc"]
        if tests:
            parts.append(Note("Heterogeneity of AUROC across subgroups (bootstrap Wald test): " + "; ".join(
                f"{h.get('key')}: chi\u00b2 = {_number(h.get('statistic'), 2)}, df = {h.get('df')}, "
                f"p = {_p_value(h.get('p_value'))}" for h in tests)))
    paired = analysis.get("paired_delong") or []
    if paired:
        parts.append(Table(["subgroup", "pair", "AUROC difference", "DeLong 95% CI", "p"],
                            [[f"{d.get('key')} {d.get('group')}".strip(),
                              f"{d.get('model_a')} \u2212 {d.get('model_b')}",
                              _number(d.get("difference"), 4),
                              f"{_number(d.get('ci_low'), 4)} to {_number(d.get('ci_high'), 4)}",
                              _p_value(d.get("p_value"))] for d in paired], numeric_from=2))
    items = []
    forest = figures.get("forest")
    if forest and (image := _file_image(directory / str(forest), f"forest plot, {title}")) is not None:
        items.append((image, f"AUROC by subgroup, {title}"))
    for key, per_model in (figures.get("roc") or {}).items():
        for predictor, name in per_model.items():
            image = _file_image(directory / str(name), f"ROC by {key}, {predictor}")
            if image is not None:
                items.append((image, f"ROC by {key}, {predictor}, {title}"))
    if items:
        parts.append(Plots(items))
    return parts


def _subgroup_block(data: dict[str, Any], directory: Path) -> list[Block]:
    parts: list[Block] = []
    figures = data.get("figures") or {}
    for level, analysis in (data.get("levels") or {}).items():
        if isinstance(analysis, dict):
            parts += _subgroup_level(analysis, directory, figures.get(level) or {}, f"{level} level")
    warnings = list(dict.fromkeys(str(w) for w in data.get("warnings") or []))
    shown = warnings[:MAX_SUBGROUP_WARNINGS]
    parts += [Note(f"Warning: {w}") for w in shown]
    if len(warnings) > len(shown):
        parts.append(Note(f"... and {len(warnings) - len(shown)} more warnings in subgroups.json"))
    return parts


def _subgroups(contents: RunContents) -> Section:
    parts: list[Block] = [Note(
        "Each subgroup's metrics with percentile bootstrap CIs (replicates resample exams of the whole set; a "
        "subgroup is evaluated on its cases in each replicate). Sensitivity and specificity are at a threshold "
        "chosen on the whole set and applied to every subgroup, as a deployed model would be. 'AUROC \u2212 all': "
        "the subgroup minus the whole set on the same replicates, with a bootstrap p-value. These are descriptive "
        "comparisons: with many subgroups some p-values are small by chance, and a difference may come from the "
        "cases (e.g. harder cancers in dense breasts) rather than from the model.")]
    if contents.metadata_keys:
        parts.append(Note(f"Metadata in the exam list: {', '.join(contents.metadata_keys)}."))
    shown = False
    for m in contents.models:
        if m.subgroups:
            parts.append(Heading(m.name))
            parts += _subgroup_block(m.subgroups, m.evaluation_dir or m.directory)
            shown = True
        elif m.done and "subgroups" in m.notes:
            parts.append(Note(f"{m.name}: {m.notes['subgroups']}"))
    if contents.comparison_subgroups and contents.comparison_dir is not None:
        parts.append(Heading("All models"))
        parts += _subgroup_block(contents.comparison_subgroups, contents.comparison_dir)
        shown = True
    elif "comparison subgroups" in contents.notes:
        parts.append(Note(f"comparison: {contents.notes['comparison subgroups']}"))
    if not shown:
        parts.append(Note("No subgroup analysis in this run: run 'mammoscreen evaluate --by density,age --predictions "
                          "RUN/MODEL/predictions.csv --exam-list RUN/cropped_images/cropped_exam_list.pkl "
                          "--output-dir RUN/MODEL/evaluation' and build the report again."))
    return _section("subgroups", parts)


def _localization(contents: RunContents) -> Section:
    parts: list[Block] = []
    rows, notes = [], []
    for m in contents.models:
        if m.localization is None:
            if m.done and "localization" in m.notes:
                notes.append(f"{m.name}: {m.notes['localization']}")
            continue
        for name, values in (m.localization.get("classes") or {}).items():
            rows.append([Code(m.name), name, values.get("n_images"), _number(values.get("threshold"), 3),
                         _estimate(values.get("dice")), _estimate(values.get("pointing_game"))])
        notes.append(f"{m.name}: {m.localization.get('n_bootstrap', '-')} bootstrap replicates over images, "
                     f"seed {m.localization.get('seed', '-')}")
    if rows:
        parts.append(Note("Dice: overlap of the thresholded saliency map with the lesion masks; pointing game: "
                          "share of images whose saliency maximum lies inside a lesion."))
        parts.append(Table(["model", "class", "images", "threshold", "Dice (95% CI)", "pointing game (95% CI)"],
                           rows, numeric_from=2, css="localization"))
    else:
        parts.append(Note("No localisation results in this run."))
    parts += [Note(n) for n in notes]
    return _section("localization", parts)


# ----------------------------------------------------------------------------------------------
# gallery
# ----------------------------------------------------------------------------------------------

def _truth_label(row: dict[str, Any]) -> list[str] | None:
    """The lesion kinds of an image's labels: [] for no lesion, None when the labels are unknown."""
    def flag(column: str) -> bool | None:
        value = row.get(column)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else bool(value)

    malignant, benign = flag("malignant_label"), flag("benign_label")
    if malignant is None and benign is None:
        return None
    return [k for k, v in (("malignant", malignant), ("benign", benign)) if v]


def _gallery_rows(model: ModelRun) -> list[tuple[str, dict[str, Any]]]:
    """(image, prediction row) of every figure, highest malignant score first (unscored figures last)."""
    by_image: dict[str, dict[str, Any]] = {}
    frame = model.predictions
    if frame is not None and "image_index" in frame.columns:
        by_image = {str(r["image_index"]): r for r in frame.to_dict("records")}

    def key(name: str) -> tuple[int, float, str]:
        score = by_image.get(name, {}).get("malignant_pred")
        if score is None or (isinstance(score, float) and math.isnan(score)):
            return (1, 0.0, name)
        return (0, -float(score), name)

    return [(name, by_image.get(name, {})) for name in sorted(model.figures, key=key)]


def _localization_by_image(model: ModelRun) -> dict[str, str]:
    frame = model.localization_per_image
    if frame is None or not {"image", "class", "dice", "hit"} <= set(frame.columns):
        return {}
    out: dict[str, list[str]] = {}
    for r in frame.to_dict("records"):
        hit = r["hit"]
        hit_text = "-" if hit is None or (isinstance(hit, float) and math.isnan(hit)) else ("hit" if hit else "miss")
        out.setdefault(str(r["image"]), []).append(f"{r['class']}: Dice {_number(r['dice'], 2)}, {hit_text}")
    return {k: "; ".join(v) for k, v in out.items()}


def _truth_image(name: str, contents: RunContents, segmentation_dir: Path | None) -> Image | TruthMissing | None:
    if segmentation_dir is None:
        return None
    if name_problem(name) is not None:  # names come from prediction files: never a path
        return None
    masks = {kind: name_path(segmentation_dir, name, f"_{kind}.png") for kind in ("malignant", "benign")}
    masks = {kind: path for kind, path in masks.items() if path.is_file()}
    images_dir = contents.run.get("images")
    if not masks or not images_dir:
        return None
    image_file = name_path(images_dir, name, ".png")
    if not image_file.is_file():
        return None
    try:
        jpeg = outlined_mammogram(image_file, masks, TRUTH_HEIGHT)
    except (ValueError, OSError) as e:  # one unusable mask costs its outline, not the report
        return TruthMissing(str(e))
    return Image(data_uri(jpeg, "image/jpeg"), f"{name} with the ground-truth outline", "truth-img")


def _gallery(contents: RunContents, segmentation_dir: Path | None, max_gallery: int, figure_width: int) -> Section:
    parts: list[Block] = []
    figure_has_outline = bool(contents.run.get("segmentations"))
    if figure_has_outline:
        parts.append(Note("Ground truth: drawn in each figure's first panel (the run had the lesion masks)."))
    elif segmentation_dir is not None:
        parts.append(OutlineLegend())
    else:
        parts.append(Note("No ground-truth outlines: the run had no lesion masks; pass the masks directory "
                          "(--segmentations) to the report to draw them."))
    shown_any = False
    for m in contents.models:
        if not m.done:
            continue
        if not m.figures:
            parts.append(Note(f"{m.name}: {m.notes.get('gallery', 'no figures')}"))
            continue
        rows = _gallery_rows(m)
        localisation = _localization_by_image(m)
        parts.append(Heading(f"{m.name}: {min(len(rows), max_gallery)} of {len(rows)} figures, highest malignant "
                             "score first", id=f"gallery-{m.name}"))
        items = []
        for rank, (name, row) in enumerate(rows[:max_gallery], start=1):
            thumbnail = Image(data_uri(figure_thumbnail(m.figures[name], figure_width), "image/jpeg"),
                              f"explanation figure of {name}", "figure-img")
            truth = None if figure_has_outline else _truth_image(name, contents, segmentation_dir)
            scores = [(label, _number(row.get(column), 3)) for column, label in
                      (("malignant_pred", "malignant"), ("benign_pred", "benign")) if column in row]
            items.append(GalleryItem(rank, name, row.get("malignant_pred"), thumbnail, truth, scores,
                                     _truth_label(row), localisation.get(name)))
        parts.append(Gallery(items))
        shown_any = True
    if not shown_any and not any(m.done and not m.figures for m in contents.models):
        parts.append(Note("No figures in this run."))
    return _section("gallery", parts)


# ----------------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------------

def _resource(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _templates() -> Environment:
    # Autoescaping everywhere (the reader application renders the same way); StrictUndefined so that a name
    # missing from a block fails the build instead of printing nothing.
    env = Environment(loader=PackageLoader("mammoscreen.report", "templates"),
                      autoescape=select_autoescape(default=True), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["dash"] = lambda value: "-" if value is None else value
    env.tests["code"] = lambda value: isinstance(value, Code)
    env.tests["hash"] = lambda value: isinstance(value, Hash)
    return env


def render_report(contents: RunContents, *, title: str | None = None, segmentation_dir: str | Path | None = None,
                  max_gallery: int = DEFAULT_MAX_GALLERY, figure_width: int = DEFAULT_FIGURE_WIDTH) -> str:
    """The report page of ``contents`` (see :func:`build_report`) as one HTML string."""
    from .. import __version__
    from ..core.environment import software_versions, utc_timestamp

    if int(max_gallery) < 0:
        raise ValueError(f"max_gallery must be 0 or more, got {max_gallery}")
    if segmentation_dir is not None and not Path(segmentation_dir).is_dir():
        raise ReportInputError(f"segmentation directory {segmentation_dir} does not exist; pass the directory "
                               "holding <image>_benign.png / <image>_malignant.png masks")
    generated = utc_timestamp()
    title = title or f"mammoscreen report: {contents.run_dir.resolve().name}"
    sections = [
        _provenance(contents, software_versions()),
        _warnings(contents),
        _metrics(contents),
        _curves(contents),
        _calibration(contents),
        *([_subgroups(contents)] if _has_subgroups(contents) else []),
        _localization(contents),
        _gallery(contents, None if segmentation_dir is None else Path(segmentation_dir), int(max_gallery),
                 figure_width),
    ]
    return _templates().get_template("report.html").render(
        title=title, version=__version__, generated=generated, style=_resource("report.css"), sections=sections,
        models=", ".join(m.name for m in contents.models if m.done) or "none", run_dir=contents.run_dir,
        intended_use=" ".join(_intended_uses(contents)))


def build_report(run_dir: str | Path, output_path: str | Path | None = None, *, title: str | None = None,
                 segmentation_dir: str | Path | None = None, max_gallery: int = DEFAULT_MAX_GALLERY,
                 figure_width: int = DEFAULT_FIGURE_WIDTH) -> Path:
    """Write the self-contained HTML report of a ``mammoscreen run`` output directory; returns its path.

    Parameters
    ----------
    run_dir : the run's output directory. Read: ``run_summary.json`` (required), per model
        ``<model>/predictions.csv``, ``<model>/evaluation/metrics.json`` and its ROC/PR figures,
        ``<model>/visualization/*.png``, ``<model>/localization/localization.json`` and
        ``localization_per_image.csv``; ``comparison/comparison.json`` and its curves; the exam list
        (labels) the evaluation used; ``warnings.csv`` and ``failures.csv``.
    output_path : where to write (default ``run_dir/report.html``); written atomically.
    title : page title (default from the run directory's name).
    segmentation_dir : lesion masks ``<image>_benign.png`` / ``<image>_malignant.png``, to outline the
        ground truth in the gallery when the run's figures do not show it.
    max_gallery : at most this many figures per model (the highest malignant scores).
    figure_width : width in pixels of the embedded gallery figures (JPEG).
    """
    contents = collect_run(run_dir)
    page = render_report(contents, title=title, segmentation_dir=segmentation_dir, max_gallery=max_gallery,
                         figure_width=figure_width)
    output = Path(output_path) if output_path is not None else Path(run_dir) / REPORT_FILE
    write_text_atomic(output, page)
    return output
