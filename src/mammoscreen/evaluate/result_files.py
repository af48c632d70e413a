"""Writing results: JSON for machines, aligned text tables for people, PNG/SVG figures.

``format_*`` functions return text; ``write_*`` functions write a command's whole output directory
atomically (each file appears complete or not at all) and return the paths written.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..core.files import write_json_atomic, write_text_atomic
from .predictions import METRIC_LABELS, EvaluationResult, MetricEstimate

if TYPE_CHECKING:  # imported for annotations only: writing one kind of result needs no other module
    from .compare import ComparisonResult
    from .mrmc.results import AIVersusReadersResult, ModalityDifference, MRMCResult, SingleModality
    from .readers import ReaderStudyResult

__all__ = ["json_safe", "format_table", "format_evaluation", "write_evaluation", "format_comparison",
           "write_comparison", "format_reader_study", "write_reader_study", "format_mrmc", "write_mrmc"]


def json_safe(value: Any) -> Any:
    """A copy with NaN as null and infinities as the strings 'inf'/'-inf' (strict JSON has neither)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not hasattr(value, "__len__"):
        value = value.item()  # numpy scalar
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table with columns padded to equal width (first column left-aligned)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        parts = [row[0].ljust(widths[0])] + [cell.rjust(widths[k]) for k, cell in enumerate(row[1:], 1)]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(estimate: MetricEstimate | None, digits: int = 3) -> str:
    return "-" if estimate is None else estimate.format(digits)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _ci_note(n_bootstrap: int, seed: Any, confidence: float, used: Any = None) -> str:
    if not n_bootstrap:
        return "No bootstrap CIs (--bootstrap 0)."
    text = (f"{confidence:.0%} CIs: percentile bootstrap over cases, {n_bootstrap} replicates, seed {seed}")
    if used:
        text += f"; replicates used: {used}"
    return text + "."


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------

def format_evaluation(result: EvaluationResult) -> str:
    """The printed summary of ``mammoscreen evaluate``."""
    names = ["auroc", "auprc_trapezoid", "average_precision"]
    if any("benign_auroc" in level.metrics for level in result.levels.values()):
        names.append("benign_auroc")
    header = ["level", "cases", "malignant"] + [f"{METRIC_LABELS[n]} (95% CI)" if result.n_bootstrap
                                               else METRIC_LABELS[n] for n in names]
    if result.confidence != 0.95 and result.n_bootstrap:
        header = [h.replace("95%", f"{result.confidence:.0%}") for h in header]
    rows = [[name, level.n_cases, level.n_positive] + [_fmt(level.metrics.get(n)) for n in names]
            for name, level in result.levels.items()]
    used = ", ".join(
        f"{name} {level.bootstrap['malignant']['used']}"
        + (f" ({level.bootstrap['malignant']['skipped_single_class']} with one class skipped)"
           if level.bootstrap['malignant']['skipped_single_class'] else "")
        for name, level in result.levels.items() if level.bootstrap)
    lines = [f"Predictions: {result.predictions} ({result.input_level}-level file)"]
    if result.exam_list:
        lines.append(f"Exam list:   {result.exam_list}")
    if result.labels:
        lines.append("Labels:      " + "; ".join(f"{level} level from {source}"
                                                   for level, source in result.labels["sources"].items()))
    lines += ["", format_table(header, rows), "", _ci_note(result.n_bootstrap, result.seed, result.confidence, used),
              "AUPRC (trapezoidal) is the meta-repository's AUPRC; average precision is the step-wise area."]
    for name, level in result.levels.items():
        lines += [f"Note ({name} level): {note}" for note in level.notes]
    lines += [f"Warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def write_evaluation(result: EvaluationResult, output_dir: str | os.PathLike) -> list[Path]:
    """Write metrics.json, metrics.txt and each level's ROC and PR curves (PNG and SVG)."""
    from .plots import pr_figure, roc_figure, save_figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    figures = {}
    for name, level in result.levels.items():
        curves = {"": (level.data.y_true, level.data.y_score)}
        stem = output_dir / f"{name}_level"
        paths += save_figure(roc_figure(curves, f"ROC curve, {name} level (malignant)"), f"{stem}_roc_curve")
        paths += save_figure(pr_figure(curves, f"Precision-recall curve, {name} level"), f"{stem}_pr_curve")
        figures[name] = {"roc_curve": f"{name}_level_roc_curve.png", "pr_curve": f"{name}_level_pr_curve.png"}
    summary = result.to_dict()
    summary["figures"] = figures
    write_json_atomic(output_dir / "metrics.json", json_safe(summary))
    write_text_atomic(output_dir / "metrics.txt", format_evaluation(result))
    return [output_dir / "metrics.json", output_dir / "metrics.txt"] + paths


# ----------------------------------------------------------------------------------------------
# compare
# ----------------------------------------------------------------------------------------------

def _operating_cell(estimate) -> str:
    text = f"{estimate.value:.3f}"
    if estimate.ci_low is not None:
        text += f" ({estimate.ci_low:.3f}-{estimate.ci_high:.3f})"
    return text


def format_comparison(result: ComparisonResult) -> str:
    """The printed summary of ``mammoscreen compare``."""
    level = result.level
    ci = f" ({result.confidence:.0%} CI)" if result.n_bootstrap else ""
    names = ["auroc", "auprc_trapezoid", "average_precision"]
    rows = [[name] + [_fmt(model.metrics[m]) for m in names] + [_number(model.brier_score, 4)]
            for name, model in result.models.items()]
    lines = [f"{len(result.models)} model(s), {level} level: {result.n_cases} cases, {result.n_positive} positive", "",
             format_table(["model"] + [METRIC_LABELS[m] + ci for m in names] + ["Brier score"], rows)]
    first = next(iter(result.models.values()))
    if first.sensitivity_at_specificity or first.specificity_at_sensitivity:
        header = (["model"] + [f"sens @ spec {t:g}{ci}" for t in first.sensitivity_at_specificity]
                  + [f"spec @ sens {t:g}{ci}" for t in first.specificity_at_sensitivity])
        rows = [[name] + [_operating_cell(e) for e in model.sensitivity_at_specificity.values()]
                + [_operating_cell(e) for e in model.specificity_at_sensitivity.values()]
                for name, model in result.models.items()]
        lines += ["", "Operating points (thresholds chosen on these cases, no interpolation):",
                  format_table(header, rows)]
    if result.pairs:
        rows = []
        for pair in result.pairs:
            d = pair.delong
            boot = pair.bootstrap_difference
            rows.append([f"{pair.model_a} - {pair.model_b}", f"{d.difference:+.4f}", f"{d.standard_error:.4f}",
                         f"{d.z:.2f}", _p(d.p_value), f"{d.ci_low:+.4f} to {d.ci_high:+.4f}",
                         "-" if boot.ci_low is None else f"{boot.ci_low:+.4f} to {boot.ci_high:+.4f}"])
        lines += ["", "Paired AUROC differences (DeLong test; paired bootstrap CI):",
                  format_table(["pair", "difference", "SE", "z", "p", f"DeLong {result.confidence:.0%} CI",
                                f"bootstrap {result.confidence:.0%} CI"], rows)]
    used = result.bootstrap["used"] if result.bootstrap else None
    lines += ["", _ci_note(result.n_bootstrap, result.seed, result.confidence, used)]
    lines += [f"Note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_comparison(result: ComparisonResult, output_dir: str | os.PathLike) -> list[Path]:
    """Write comparison.json, comparison.txt and overlaid ROC, PR and calibration plots."""
    from .plots import calibration_figure, pr_figure, roc_figure, save_figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    curves = {name: (result.y_true, score) for name, score in result.scores.items()}
    paths = save_figure(roc_figure(curves, f"ROC curves, {result.level} level"), output_dir / "roc_curves")
    paths += save_figure(pr_figure(curves, f"Precision-recall curves, {result.level} level"), output_dir / "pr_curves")
    calibrated = {name: c for name, c in curves.items() if result.models[name].calibration is not None}
    if calibrated:
        paths += save_figure(calibration_figure(calibrated), output_dir / "calibration")
    write_json_atomic(output_dir / "comparison.json", json_safe(result.to_dict()))
    write_text_atomic(output_dir / "comparison.txt", format_comparison(result))
    return [output_dir / "comparison.json", output_dir / "comparison.txt"] + paths


# ----------------------------------------------------------------------------------------------
# reader-study
# ----------------------------------------------------------------------------------------------

def format_reader_study(result: ReaderStudyResult) -> str:
    """The printed summary of ``mammoscreen reader-study``."""
    ci = f" ({result.confidence:.0%} CI)" if result.n_bootstrap else ""
    names = ["auroc", "auprc_trapezoid", "average_precision"]
    header = ["predictor"] + [METRIC_LABELS[m] + ci for m in names]
    rows = [[name] + [_fmt(metrics[m]) for m in names] for name, metrics in result.readers.items()]
    if result.readers_mean:
        rows.append([f"readers' mean ({len(result.readers)})"] + [_fmt(result.readers_mean[m]) for m in names])
    rows += [[name] + [_fmt(metrics[m]) for m in names] for name, metrics in result.models.items()]
    lines = [f"Reader study {result.source}: {result.n_cases} cases, {result.n_positive} positive", "",
             format_table(header, rows)]
    if result.hybrids:
        rows = [[f"readers + {model}", _fmt(h["mean_auroc"])] for model, h in result.hybrids.items()]
        lines += ["", "Hybrids, (reader + model) / 2, mean AUROC over readers:",
                  format_table(["hybrid", "mean AUROC" + ci], rows)]
    used = result.bootstrap["used"] if result.bootstrap else None
    lines += ["", _ci_note(result.n_bootstrap, result.seed, result.confidence, used)
              + (f" Resampling unit: {'exam (case_ID)' if result.resample == 'case' else 'row'}."
                 if result.n_bootstrap else "")]
    lines += [f"Note: {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


def write_reader_study(result: ReaderStudyResult, output_dir: str | os.PathLike) -> list[Path]:
    """Write reader_study.json, reader_study.txt and the readers-and-models ROC plot."""
    from .plots import reader_study_roc_figure, save_figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = save_figure(reader_study_roc_figure(result.y_true, result.reader_scores, result.model_scores),
                        output_dir / "reader_study_roc")
    write_json_atomic(output_dir / "reader_study.json", json_safe(result.to_dict()))
    write_text_atomic(output_dir / "reader_study.txt", format_reader_study(result))
    return [output_dir / "reader_study.json", output_dir / "reader_study.txt"] + paths


# ----------------------------------------------------------------------------------------------
# mrmc
# ----------------------------------------------------------------------------------------------

def _difference_rows(rows: Sequence[ModalityDifference], with_df: bool = True) -> list[list[str]]:
    out = []
    for row in rows:
        cells = [f"{row.modalities[0]} - {row.modalities[1]}", f"{row.difference:+.8f}", f"{row.standard_error:.8f}"]
        if with_df:
            cells.append(_number(row.df, 2))
        cells += [f"{row.statistic:.2f}", _p(row.p_value), f"({row.ci_low:.8f}, {row.ci_high:.8f})"]
        out.append(cells)
    return out


def _interval(s: SingleModality) -> str:
    return f"({s.ci_low:.8f}, {s.ci_high:.8f})"


def _format_or(result: MRMCResult) -> list[str]:
    from .mrmc.results import FIGURE_OF_MERIT

    data = result.data
    pct = f"{result.confidence:.0%}"
    auc, means = result.auc, result.modality_means
    lines = ["OBUCHOWSKI-ROCKETTE MRMC ANALYSIS (Hillis denominator degrees of freedom)",
             f"Data: {data.source}", f"Modalities: {len(data.modalities)}  Readers: {len(data.readers)}  "
             f"Cases: {len(data.cases)} ({data.n_normal} normal, {data.n_abnormal} abnormal)",
             f"Figure of merit: {FIGURE_OF_MERIT}; covariance: {result.covariance_method}", "",
             "AUC by reader and modality:"]
    header = ["reader", *data.modalities]
    rows = [[rd] + [f"{auc[m][rd]:.8f}" for m in data.modalities] for rd in data.readers]
    rows.append(["mean"] + [f"{means[m]:.8f}" for m in data.modalities])
    lines += [format_table(header, rows), ""]
    anova = result.anova
    lines.append("ANOVA of the AUCs:")
    squares = (("MS(T)", anova.ms_t, anova.df_t), ("MS(R)", anova.ms_r, anova.df_r),
               ("MS(T*R)", anova.ms_tr, anova.df_tr))
    rows = [[name, _number(value, 8), df] for name, value, df in squares if value is not None]
    lines += [format_table(["source", "mean square", "df"], rows)]
    lines.append("Reader mean square per modality: " + ", ".join(
        f"{m} {_number(v, 8)}" for m, v in anova.ms_r_per_modality.items()))
    lines += ["", "OR variance components:",
              format_table(["component", "estimate"],
                           [[k, _number(v, 8)] for k, v in result.or_variance_components.to_dict().items()])]
    if result.dbm_variance_components is not None:
        lines += ["", "DBM variance components (jackknife pseudovalues):",
                  format_table(["component", "estimate"],
                               [[k, _number(v, 8)] for k, v in result.dbm_variance_components.to_dict().items()])]
    if result.rrrc is not None:
        rrrc = result.rrrc
        lines += ["", "RANDOM READERS AND RANDOM CASES (RRRC)"]
        if rrrc.test is not None:
            test = rrrc.test
            lines += [f"F = {test.F:.4f}, df = ({test.df_numerator}, {_number(test.df_denominator, 2)}), "
                      f"p = {_p(test.p_value)}; error term MS(T*R) + r max(Cov2 - Cov3, 0) = {test.error_term:.8f}",
                      format_table(["difference", "estimate", "SE", "df", "t", "p", f"{pct} CI"],
                                   _difference_rows(test.differences))]
        lines += ["Single modality:", format_table(
            ["modality", "AUC", "SE", "df", f"{pct} CI", "MS(R)", "Cov2"],
            [[m, f"{s.auc:.8f}", f"{s.standard_error:.8f}", _number(s.df, 2), _interval(s), _number(s.ms_r, 8),
              _number(s.cov2, 8)] for m, s in rrrc.single_modality.items()])]
    frrc = result.frrc
    lines += ["", "FIXED READERS AND RANDOM CASES (FRRC)"]
    if frrc.test is not None:
        lines += [f"X2 = {frrc.test.chi2:.5f}, df = {frrc.test.df}, p = {_p(frrc.test.p_value)}",
                  format_table(["difference", "estimate", "SE", "z", "p", f"{pct} CI"],
                               _difference_rows(frrc.test.differences, with_df=False))]
    lines += ["Single modality:", format_table(
        ["modality", "AUC", "SE", f"{pct} CI", "Var(Error)", "Cov2"],
        [[m, f"{s.auc:.8f}", f"{s.standard_error:.8f}", _interval(s), _number(s.var_error, 8), _number(s.cov2, 8)]
         for m, s in frrc.single_modality.items()])]
    if frrc.per_reader:
        lines += ["Each reader's modality difference:", format_table(
            ["reader", "difference", "estimate", "SE", "z", "p", f"{pct} CI"],
            [[row.reader, f"{row.modalities[0]} - {row.modalities[1]}", f"{row.difference:+.8f}",
              f"{row.standard_error:.8f}", f"{row.z:.2f}", _p(row.p_value), f"({row.ci_low:.8f}, {row.ci_high:.8f})"]
             for row in frrc.per_reader])]
        lines += ["Reader components:", format_table(
            ["reader", "Var(Error)", "Cov1"],
            [[rd, _number(c.var_error, 8), _number(c.cov1, 8)] for rd, c in result.per_reader_components.items()])]
    if result.rrfc is not None:
        rrfc = result.rrfc
        lines += ["", "RANDOM READERS AND FIXED CASES (RRFC)"]
        if rrfc.test is not None:
            test = rrfc.test
            lines += [f"F = {test.F:.4f}, df = ({test.df_numerator}, {test.df_denominator}), p = {_p(test.p_value)}",
                      format_table(["difference", "estimate", "SE", "df", "t", "p", f"{pct} CI"],
                                   _difference_rows(test.differences))]
        lines += ["Single modality:", format_table(
            ["modality", "AUC", "SE", "df", f"{pct} CI"],
            [[m, f"{s.auc:.8f}", f"{s.standard_error:.8f}", s.df, _interval(s)]
             for m, s in rrfc.single_modality.items()])]
    lines += [f"Note: {n}" for n in result.notes or []]
    return lines


def _format_ai(modality: str, a: AIVersusReadersResult, several: bool) -> list[str]:
    pct = f"{a.confidence:.0%}"
    where = f", modality {modality}" if several else ""
    lines = ["", f"{a.ai} VERSUS READERS{where} (single modality; 1T-RRRC, model fixed)",
             f"AUC {a.ai}: {a.ai_auc:.8f}; mean reader AUC: {a.mean_reader_auc:.8f} "
             f"({len(a.reader_aucs)} readers); covariance: {a.covariance_method}",
             format_table(["analysis", f"AUC({a.ai}) - readers", "SE", "df", "t", "p", f"{pct} CI"],
                          [[name, f"{x.difference:+.8f}", f"{x.standard_error:.8f}", _number(x.df, 2), f"{x.t:.2f}",
                            _p(x.p_value), f"({x.ci_low:.8f}, {x.ci_high:.8f})"]
                           for name, x in (("RRRC", a.rrrc), ("RRFC", a.rrfc))]),
             "Components of the differences: " + ", ".join(f"{k} {_number(v, 8)}"
                                                           for k, v in a.variance_components.to_dict().items())]
    ni = a.non_inferiority
    if ni is not None:
        lines.append(f"Non-inferiority, margin {ni.margin:g}: {ni.hypothesis}; t = {ni.t:.3f}, "
                     f"df = {_number(ni.df, 2)}, one-sided p = {_p(ni.p_value)}, lower bound "
                     f"{ni.one_sided_lower_bound:+.4f} -> "
                     + ("non-inferior" if ni.non_inferior else "non-inferiority not shown")
                     + f" at alpha {ni.alpha:.3g}")
    return lines


def format_mrmc(result: MRMCResult | None, ai: dict[str, AIVersusReadersResult] | None = None) -> str:
    """A readable report of the OR analysis (and the AI-versus-readers comparison when given)."""
    lines: list[str] = _format_or(result) if result is not None else []
    for modality, one in (ai or {}).items():
        lines += _format_ai(modality, one, len(ai or {}) > 1)
    return "\n".join(lines).lstrip("\n") + "\n"


def write_mrmc(result: MRMCResult | None, output_dir: str | os.PathLike,
               ai: dict[str, AIVersusReadersResult] | None = None) -> list[Path]:
    """Write mrmc.json (every figure) and mrmc.txt (readable report)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    from .. import __version__

    summary: dict[str, Any] = result.to_dict() if result is not None else {"tool": "mammoscreen mrmc",
                                                                           "version": __version__}
    if ai:
        summary["ai_versus_readers"] = {modality: one.to_dict() for modality, one in ai.items()}
    write_json_atomic(output_dir / "mrmc.json", json_safe(summary))
    write_text_atomic(output_dir / "mrmc.txt", format_mrmc(result, ai))
    return [output_dir / "mrmc.json", output_dir / "mrmc.txt"]
