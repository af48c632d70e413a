"""Figures: ROC and precision-recall curves, reliability diagrams, reader-study ROC plots.

Each ``*_figure`` function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state, safe in threads and notebooks); :func:`save_figure` writes it as PNG and SVG atomically. The
HTML report can embed the same figures.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..core.files import write_bytes_atomic
from .metrics import calibration_curve, precision_recall_curve, ranking_metrics, roc_curve

__all__ = ["roc_figure", "pr_figure", "calibration_figure", "reader_study_roc_figure", "forest_figure",
           "subgroup_roc_figure", "save_figure", "figure_bytes"]

FIGURE_SIZE = (5.0, 5.0)
_DPI = 150


def _new_figure(title: str, xlabel: str, ylabel: str, size=FIGURE_SIZE):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    # Fixed margins rather than tight_layout: same look for square axes, a fraction of the cost.
    figure.subplots_adjust(left=0.15, right=0.96, bottom=0.11, top=0.93)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xlim(-0.01, 1.01)
    axes.set_ylim(-0.01, 1.01)
    axes.set_aspect("equal")
    axes.grid(True, alpha=0.3)
    return figure, axes


def _curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Iterable[tuple[str, np.ndarray, np.ndarray]]:
    for name, (y_true, y_score) in curves.items():
        yield name, np.asarray(y_true), np.asarray(y_score)


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC curve"):
    """ROC curves, one per entry ``name -> (y_true, y_score)``, with the AUROC in the legend."""
    figure, axes = _new_figure(title, "False positive rate (1 - specificity)", "True positive rate (sensitivity)")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    for name, y, s in _curves(curves):
        fpr, tpr, _ = roc_curve(y, s)
        auc = ranking_metrics(y, s)["auroc"]
        axes.plot(fpr, tpr, linewidth=1.6, label=f"{name} (AUROC {auc:.3f})" if name else f"AUROC {auc:.3f}")
    axes.legend(loc="lower right", fontsize="small")
    return figure


def pr_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "Precision-recall curve"):
    """Precision-recall curves with the trapezoidal AUPRC and the prevalence (chance) line."""
    figure, axes = _new_figure(title, "Recall (sensitivity)", "Precision (positive predictive value)")
    prevalence = None
    for name, y, s in _curves(curves):
        precision, recall, _ = precision_recall_curve(y, s)
        area = ranking_metrics(y, s)["auprc_trapezoid"]
        axes.plot(recall, precision, linewidth=1.6,
                  label=f"{name} (AUPRC {area:.3f})" if name else f"AUPRC {area:.3f}")
        prevalence = float(np.mean(y))
    if prevalence is not None:
        axes.axhline(prevalence, color="0.6", linestyle=":", linewidth=1, label=f"prevalence {prevalence:.3f}")
    axes.legend(loc="upper right", fontsize="small")
    return figure


def calibration_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], n_bins: int = 10,
                       strategy: str = "uniform", title: str = "Calibration (reliability diagram)"):
    """Observed fraction positive against mean predicted probability per bin, one line per model."""
    figure, axes = _new_figure(title, "Mean predicted probability", "Observed fraction positive")
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="perfect calibration")
    for name, y, p in _curves(curves):
        observed, predicted, _ = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        axes.plot(predicted, observed, marker="o", markersize=3, linewidth=1.4, label=name)
    axes.legend(loc="upper left", fontsize="small")
    return figure


def reader_study_roc_figure(y_true: np.ndarray, readers: Mapping[str, np.ndarray], models: Mapping[str, np.ndarray],
                            title: str = "Readers and models"):
    """Each reader's empirical ROC (thin grey, its operating points marked) and each model's ROC curve."""
    figure, axes = _new_figure(title, "False positive rate (1 - specificity)", "True positive rate (sensitivity)",
                               size=(6.0, 6.0))
    axes.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
    mean_auc = (float(np.mean([ranking_metrics(y_true, score)["auroc"] for score in readers.values()])) if readers
                else 0.0)
    for k, score in enumerate(readers.values()):
        fpr, tpr, _ = roc_curve(y_true, score)
        label = f"readers ({len(readers)}; mean AUROC {mean_auc:.3f})" if k == 0 else None
        axes.plot(fpr, tpr, color="0.55", linewidth=0.7, marker="o", markersize=2.2, label=label)
    for name, score in models.items():
        fpr, tpr, _ = roc_curve(y_true, score)
        axes.plot(fpr, tpr, linewidth=1.8, label=f"{name} (AUROC {ranking_metrics(y_true, score)['auroc']:.3f})")
    axes.legend(loc="lower right", fontsize="x-small")
    return figure


def forest_figure(analysis, metric: str = "auroc", predictors: Sequence[str] | None = None,
                  title: str | None = None):
    """Forest plot of one metric per subgroup with its CI, one marker per predictor, the whole set on top.

    ``analysis`` is a :class:`~mammoscreen.evaluate.subgroups.SubgroupAnalysis`; ``predictors`` default to
    its models and the readers' mean (single readers would crowd the plot). A dashed line per predictor
    marks its whole-set value; subgroups without a value (one class only) are listed without a marker.
    """
    from matplotlib.figure import Figure

    from .subgroups import METRIC_LABELS, OVERALL

    rows = [r for r in analysis.rows if r.metric == metric and r.operating_point == ""]
    if predictors is None:
        predictors = [p for p in dict.fromkeys(r.predictor for r in rows) if p not in analysis.readers]
    layout: list[tuple[str, str, str | None]] = [("", OVERALL, "all cases")]  # (key, group, label) top to bottom
    for grouping in analysis.groupings:
        layout.append((grouping.key, "", None))  # a heading row
        layout += [(grouping.key, label, None) for label in grouping.labels]
    by_cell = {(r.key, r.group, r.predictor): r for r in rows}
    height = 1.3 + 0.28 * len(layout)
    figure = Figure(figsize=(7.5, height))
    figure.subplots_adjust(left=0.36, right=0.97, top=1 - 0.55 / height, bottom=0.6 / height)
    axes = figure.add_subplot(1, 1, 1)
    label = METRIC_LABELS.get(metric, metric)
    axes.set_title(title or f"{label} by subgroup, {analysis.level} level")
    axes.set_xlabel(f"{label} ({analysis.confidence:.0%} CI)" if analysis.n_bootstrap else label)
    colours = [f"C{k}" for k in range(10)]
    offsets = np.linspace(-0.22, 0.22, len(predictors)) if len(predictors) > 1 else np.zeros(1)
    lows = []
    for k, predictor in enumerate(predictors):
        whole = by_cell.get(("", OVERALL, predictor))
        if whole is not None and whole.value is not None:
            axes.axvline(whole.value, color=colours[k % 10], linestyle="--", linewidth=0.8, alpha=0.6)
        for position, (key, group, _) in enumerate(layout):
            row = by_cell.get((key, group, predictor)) if group else None
            if row is None or row.value is None:
                continue
            y = position + offsets[k]
            if row.ci_low is not None:
                axes.plot([row.ci_low, row.ci_high], [y, y], color=colours[k % 10], linewidth=1.4)
                lows.append(row.ci_low)
            axes.plot([row.value], [y], marker="s" if key == "" else "o", color=colours[k % 10], markersize=5,
                      label=predictor if position == 0 else None)
            lows.append(row.value)
    tests = {h["key"]: h["p_value"] for h in analysis.heterogeneity
             if h["metric"] == metric and h["operating_point"] == "" and len(predictors) == 1
             and h["predictor"] == predictors[0]}
    tick_labels = []
    for key, group, text in layout:
        if not group:
            tick_labels.append(key + (f" (heterogeneity p = {tests[key]:.2g})" if key in tests else ""))
            continue
        first = by_cell.get((key, group, predictors[0])) if predictors else None
        size = f" (n={first.n_cases}, {first.n_positive} pos)" if first is not None else ""
        tick_labels.append(f"{text or group}{size}" if key == "" else f"   {group}{size}")
    axes.set_yticks(range(len(layout)))
    axes.set_yticklabels(tick_labels, fontsize="small")
    for tick, (_, group, _) in zip(axes.get_yticklabels(), layout):
        if not group:
            tick.set_fontweight("bold")
    axes.set_ylim(len(layout) - 0.5, -0.6)
    low = min(lows) if lows else 0.5
    axes.set_xlim(max(0.0, min(low, 0.5) - 0.05), 1.01)
    axes.grid(True, axis="x", alpha=0.3)
    if len(predictors) > 1:
        handles, names = axes.get_legend_handles_labels()
        unique = dict(zip(names, handles))
        axes.legend(unique.values(), unique.keys(), loc="lower left", fontsize="x-small")
    return figure


def subgroup_roc_figure(analysis, key: str, predictor: str, title: str | None = None):
    """ROC curves of one predictor in each subgroup of ``key`` that has both classes (and the whole set)."""
    from .subgroups import OVERALL

    grouping = next(g for g in analysis.groupings if g.key == key)
    y, s = analysis.y_true, analysis.scores[predictor]
    curves = {f"{OVERALL} (n={y.size})": (y, s)}
    for label in grouping.labels:
        members = grouping.members(label)
        if 0 < y[members].sum() < members.size:
            curves[f"{label} (n={members.size})"] = (y[members], s[members])
    return roc_figure(curves, title or f"ROC by {key}, {analysis.level} level, {predictor}")


def figure_bytes(figure, fmt: str = "png") -> bytes:
    """The figure encoded as PNG or SVG bytes (for embedding in reports)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No creation date in the files, and SVG element ids from a fixed salt rather than a random one: the
    # same data gives the same bytes (a re-run after an interruption rewrites identical files).
    import matplotlib

    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.hashsalt": "mammoscreen"}):
        figure.savefig(buffer, format=fmt, dpi=_DPI, metadata=metadata)
    return buffer.getvalue()


def save_figure(figure, stem: str | os.PathLike, formats: Sequence[str] = ("png", "svg")) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (or the given formats) atomically; returns the paths."""
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        write_bytes_atomic(path, figure_bytes(figure, fmt))
        paths.append(path)
    return paths
