"""Writing subgroup analyses: ``subgroups.json`` / ``.csv`` / ``.txt``, the forest plot, ROC per subgroup.

Files (in the command's ``--output-dir``)::

    subgroups.json                      every row, test and setting (what the report reads)
    subgroups.csv                       the tidy table: one row per (level, key, subgroup, predictor, metric,
                                        operating point)
    subgroups.txt                       what the command prints
    subgroups_forest_<level>.png/.svg   AUROC per subgroup with CIs, one marker per model
    subgroups_roc_<level>_<key>[_<model>].png/.svg   ROC curve of each subgroup
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

from ..core.files import write_json_atomic, write_text_atomic
from .result_files import format_table, json_safe
from .subgroup_evaluation import SubgroupEvaluation
from .subgroups import MISSING, OVERALL, SubgroupAnalysis, SubgroupRow

__all__ = ["format_subgroups", "write_subgroups", "SUBGROUPS_JSON", "forest_plot_name"]

SUBGROUPS_JSON = "subgroups.json"


def forest_plot_name(level: str) -> str:
    """File stem of a level's forest plot."""
    return f"subgroups_forest_{level}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _estimate(row: SubgroupRow | None, digits: int = 3) -> str:
    if row is None or row.value is None:
        return "-"
    text = f"{row.value:.{digits}f}"
    if row.ci_low is not None:
        text += f" ({row.ci_low:.{digits}f}-{row.ci_high:.{digits}f})"
    return text


def _difference(row: SubgroupRow | None) -> str:
    if row is None or row.difference is None:
        return "-"
    return f"{row.difference:+.3f} ({row.difference_ci_low:+.3f} to {row.difference_ci_high:+.3f})"


def _p(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.4f}" if value >= 1e-4 else "<0.0001"


def short_rule(name: str) -> str:
    """'specificity=0.9' -> 'spec 0.9' (column headers)."""
    for long, short in (("specificity=", "spec "), ("sensitivity=", "sens "), ("recall_rate=", "recall "),
                        ("threshold=", "score >= ")):
        if name.startswith(long):
            return short + name[len(long):]
    if name.startswith("reader decision"):
        return "own decision"
    return "readers' spec" if name == "readers' mean specificity" else name


def _shown(analysis: SubgroupAnalysis) -> list[str]:
    """Predictors printed: the models and the readers' mean (single readers are in the CSV)."""
    names = list(dict.fromkeys(r.predictor for r in analysis.rows))
    return [n for n in names if n not in analysis.readers]


def _rules_of(analysis: SubgroupAnalysis, predictor: str) -> list[str]:
    return list(dict.fromkeys(r.operating_point for r in analysis.rows
                              if r.predictor == predictor and r.operating_point))


def _cell(index: dict, key: str, group: str, predictor: str, metric: str, op: str = "") -> SubgroupRow | None:
    return index.get((key, group, predictor, metric, op))


def _group_order(analysis: SubgroupAnalysis) -> list[tuple[str, str]]:
    order = [("", OVERALL)]
    for grouping in analysis.groupings:
        order += [(grouping.key, label) for label in grouping.labels]
    return order


def format_analysis(analysis: SubgroupAnalysis) -> list[str]:
    """The lines of one level."""
    index = {(r.key, r.group, r.predictor, r.metric, r.operating_point): r for r in analysis.rows}
    whole = next(r for r in analysis.rows if r.key == "")
    unit = "exams" if analysis.resample.startswith("exam") else "cases"
    ci = f" ({analysis.confidence:.0%} CI)" if analysis.n_bootstrap else ""
    lines = [f"SUBGROUPS, {analysis.level} level: {whole.n_cases} cases ({whole.n_positive} malignant), "
             f"{whole.n_exams} {'exams' if unit == 'exams' else 'resampling units'}"]
    if analysis.n_bootstrap:
        lines.append(f"{analysis.confidence:.0%} CIs: percentile bootstrap, {analysis.n_bootstrap} replicates "
                     f"resampling {analysis.resample}s of the whole set, seed {analysis.seed}")
    else:
        lines.append("No bootstrap CIs (--bootstrap 0).")
    rows = []
    for predictor in _shown(analysis):
        for rule in _rules_of(analysis, predictor):
            rows.append([predictor, rule, _num(_threshold(analysis, predictor, rule), 6)]
                        + [_estimate(_cell(index, "", OVERALL, predictor, m, rule))
                           for m in ("sensitivity", "specificity", "recall_rate")])
    if rows:
        lines += ["", "Operating points on the whole set (threshold chosen there):",
                  format_table(["predictor", "operating point", "threshold", f"sensitivity{ci}", f"specificity{ci}",
                                f"recall rate{ci}"], rows)]
    if analysis.versus_readers:
        rows = [[f"{d['key']} {d['group']}".strip(), d["model"], d["metric"], _num(d["model_value"]),
                 _num(d["readers_mean"]), _signed(d["difference"]),
                 "-" if d["ci_low"] is None else f"{d['ci_low']:+.3f} to {d['ci_high']:+.3f}", _p(d["p_value"])]
                for d in analysis.versus_readers]
        lines += ["", "Sensitivity of each model at the readers' mean specificity against the readers' mean "
                      "sensitivity (bootstrap CI of the difference):",
                  format_table(["subgroup", "model", "metric", "model", "readers' mean", "difference",
                                f"{analysis.confidence:.0%} CI", "p"], rows)]
    if not analysis.groupings:
        return lines
    for predictor in _shown(analysis):
        rules = _rules_of(analysis, predictor)
        first = rules[0] if rules else None
        header = ["subgroup", "cases", "exams", "malignant", f"AUROC{ci}", f"AUPRC{ci}"]
        if first:
            header += [f"sens @ {short_rule(first)}", f"spec @ {short_rule(first)}"]
        header += ["AUROC - all", "p"]
        rows = []
        for key, group in _group_order(analysis):
            auroc = _cell(index, key, group, predictor, "auroc")
            if auroc is None:
                continue
            cells = [f"{key} {group}".strip(), auroc.n_cases, auroc.n_exams, auroc.n_positive, _estimate(auroc),
                     _estimate(_cell(index, key, group, predictor, "auprc_trapezoid"))]
            if first:
                cells += [_estimate(_cell(index, key, group, predictor, "sensitivity", first)),
                          _estimate(_cell(index, key, group, predictor, "specificity", first))]
            cells += [_difference(auroc), _p(auroc.p_value)]
            rows.append(cells)
        lines += ["", f"{predictor}:", format_table(header, rows)]
        for rule in rules[1:]:
            rows = [[f"{key} {group}".strip()] + [_estimate(_cell(index, key, group, predictor, m, rule))
                                                   for m in ("sensitivity", "specificity", "recall_rate")]
                    for key, group in _group_order(analysis)
                    if _cell(index, key, group, predictor, "sensitivity", rule) is not None]
            lines += [f"At {rule} (threshold {_num(_threshold(analysis, predictor, rule), 6)}):",
                      format_table(["subgroup", f"sensitivity{ci}", f"specificity{ci}", f"recall rate{ci}"], rows)]
        tests = [h for h in analysis.heterogeneity if h["predictor"] == predictor and h["metric"] == "auroc"]
        if tests:
            lines.append("Heterogeneity of AUROC across subgroups (bootstrap Wald test, 'missing' left out): "
                         + "; ".join(f"{h['key']} chi2 = {h['statistic']:.2f}, df = {h['df']}, p = {_p(h['p_value'])}"
                                     for h in tests))
    if analysis.paired:
        rows = [[f"{d['key']} {d['group']}".strip(), f"{d['model_a']} - {d['model_b']}", f"{d['difference']:+.4f}",
                 f"{d['ci_low']:+.4f} to {d['ci_high']:+.4f}", _p(d["p_value"])] for d in analysis.paired]
        lines += ["", "Paired DeLong tests between models within each subgroup (AUROC):",
                  format_table(["subgroup", "pair", "difference", f"{analysis.confidence:.0%} CI", "p"], rows)]
    return lines


def _threshold(analysis: SubgroupAnalysis, predictor: str, rule: str) -> float | None:
    for point in analysis.operating_points:
        if point["predictor"] == predictor and point["rule"] == rule:
            return point["threshold"]
    return None


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}" if digits <= 3 else f"{value:.{digits}g}"


def format_subgroups(evaluation: SubgroupEvaluation) -> str:
    """The printed subgroup tables of every level, the tests and the warnings."""
    lines: list[str] = []
    for analysis in evaluation.levels.values():
        if lines:
            lines.append("")
        lines += format_analysis(analysis)
    lines += ["", "Operating points: thresholds chosen on the whole set (again in every replicate) and applied to each "
                  "subgroup. 'AUROC - all': the subgroup minus the whole set on the same replicates, with a two-sided "
                  "bootstrap p-value. Subgroup results are descriptive: many subgroups give some small p-values by "
                  "chance, and differences can come from the cases (e.g. harder cancers in dense breasts), not the "
                  "model."]
    lines += [f"Warning: {w}" for w in dict.fromkeys(evaluation.warnings)]
    return "\n".join(lines) + "\n"


def write_subgroups(evaluation: SubgroupEvaluation, output_dir: str | os.PathLike) -> list[Path]:
    """Write subgroups.json, .csv, .txt, each level's forest plot and ROC curves per subgroup."""
    from .plots import forest_figure, save_figure, subgroup_roc_figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    figures: dict[str, dict[str, Any]] = {}
    for level, analysis in evaluation.levels.items():
        entry: dict[str, Any] = {"forest": None, "roc": {}}
        if analysis.groupings:
            stem = forest_plot_name(level)
            paths += save_figure(forest_figure(analysis), output_dir / stem)
            entry["forest"] = f"{stem}.png"
            for grouping in analysis.groupings:
                if len([g for g in grouping.labels if g != MISSING]) < 1:
                    continue
                for predictor in analysis.models:
                    suffix = "" if len(analysis.models) == 1 else f"_{_safe(predictor)}"
                    stem = f"subgroups_roc_{level}_{_safe(grouping.key)}{suffix}"
                    paths += save_figure(subgroup_roc_figure(analysis, grouping.key, predictor), output_dir / stem)
                    entry["roc"].setdefault(grouping.key, {})[predictor] = f"{stem}.png"
        figures[level] = entry
    summary = evaluation.to_dict()
    summary["figures"] = figures
    write_json_atomic(output_dir / SUBGROUPS_JSON, json_safe(summary))
    write_text_atomic(output_dir / "subgroups.csv", evaluation.to_frame().to_csv(index=False))
    write_text_atomic(output_dir / "subgroups.txt", format_subgroups(evaluation))
    return [output_dir / SUBGROUPS_JSON, output_dir / "subgroups.csv", output_dir / "subgroups.txt"] + paths
