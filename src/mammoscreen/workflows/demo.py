"""The offline demo: the whole system on freshly generated synthetic exams, in a few minutes on a CPU.

synthesise -> crop -> centres -> predict (maps, figures) -> evaluate (bootstrap CIs) -> localise -> report

The model is ``gmic_demo``, a small GMIC trained by the project on its own synthetic mammograms and
shipped inside the package (see its model card, ``models/pretrained/gmic_demo_synthetic.json``). The
demo exams come from a generator seed the model never saw in training. Synthetic data only - the demo
shows how the system works, not how well any model reads real mammograms.

Output layout (``OUTPUT`` defaults to ``mammoscreen-demo``)::

    OUTPUT/synthetic/               generated images, lesion masks, exam_list.pkl
    OUTPUT/cropped_images/, data_*.pkl   crop and centres (as ``mammoscreen run``)
    OUTPUT/gmic_demo/               predictions.csv, maps/, visualization/
    OUTPUT/gmic_demo/evaluation/    metrics.json, ROC/PR curves; subgroups by density and age (subgroups.*,
                                    forest plots, ROC per subgroup)
    OUTPUT/gmic_demo/localization/  localization.json, localization_per_image.csv
    OUTPUT/report.html              everything above in one self-contained page
    OUTPUT/demo_summary.json        the headline numbers
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core.safejson import load_json

DEMO_MODEL = "gmic_demo"
DEFAULT_OUTPUT_DIR = "mammoscreen-demo"
DEFAULT_N_EXAMS = 40
# Held-out generator seed; the model card lists the seeds used in training, and run_demo refuses those.
DEFAULT_SEED = 20261204
SYNTHETIC_DIR = "synthetic"
EVALUATION_DIR = "evaluation"
LOCALIZATION_DIR = "localization"
REPORT_FILE = "report.html"
SUMMARY_FILE = "demo_summary.json"


@dataclass
class DemoResult:
    """Where the demo wrote its outputs and its headline numbers."""

    output_dir: Path
    report: Path | None
    metrics: dict[str, float | None] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    subgroups: dict[str, dict] = field(default_factory=dict)  # image-level AUROC by density (and age)


def demo_model_card() -> dict:
    """The bundled demo model's card (training command, seeds, synthetic-data options, metrics)."""
    from ..models.registry import get_model_spec
    from ..models.weights import PRETRAINED_DIR

    spec = get_model_spec(DEMO_MODEL)
    card = PRETRAINED_DIR / spec.extra["model_card"]
    return load_json(card)


def _stage(name: str, seconds: dict[str, float], log: Callable[[str], None]):
    class _Timer:
        def __enter__(self):
            log(f"== {name}")
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            seconds[name] = round(time.perf_counter() - self.start, 2)
            return False

    return _Timer()


def run_demo(output_dir: str | Path = DEFAULT_OUTPUT_DIR, *, n_exams: int = DEFAULT_N_EXAMS,
             seed: int = DEFAULT_SEED, device: str = "cpu", workers: int = 1, n_bootstrap: int = 2000,
             visualize: bool = True, progress: bool = True, command: str | None = None,
             log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> DemoResult:
    """Run the whole system offline on ``n_exams`` freshly generated synthetic exams.

    Parameters
    ----------
    output_dir : where everything goes (a re-run continues: finished stages are skipped).
    n_exams : number of four-view synthetic exams to generate.
    seed : generator seed for the held-out exams (must not be one the demo model was trained on).
    device : 'cpu', 'cuda', 'cuda:N' or 'auto'.
    workers : processes for synthesis and cropping.
    n_bootstrap : bootstrap replicates for the 95% CIs of the evaluation and the localisation.
    visualize : draw one figure per image (the report's gallery).
    """
    from ..core.files import write_json_atomic
    from ..data.synth import SynthOptions, generate_exams
    from ..engine import PredictOptions
    from ..explain.localize import localize_maps
    from ..models.factory import PredictorRequest
    from .pipeline import run_pipeline
    from ..report import build_report
    from .run_evaluation import evaluate_run

    if n_exams < 2:
        raise ValueError(f"the demo needs at least 2 exams, got {n_exams}")
    card = demo_model_card()
    data = card["data"]
    training_seeds = {int(data[split]["seed"]) for split in ("train", "validation")}
    if seed in training_seeds:
        raise ValueError(f"seed {seed} was used to train the demo model (training seeds: "
                         f"{sorted(training_seeds)}); choose another seed so that the exams are held out")
    output_dir = Path(output_dir)
    synthetic = output_dir / SYNTHETIC_DIR
    model_dir = output_dir / DEMO_MODEL
    seconds: dict[str, float] = {}

    with _stage(f"synthesise {n_exams} held-out exams (seed {seed})", seconds, log):
        options = SynthOptions(scale=data["scale"], p_benign=data["p_benign"], p_malignant=data["p_malignant"])
        generate_exams(n_exams, synthetic, seed, options=options, workers=workers, progress=progress)

    with _stage("crop -> centres -> predict", seconds, log):
        options = PredictOptions(device=device, save_maps=True, visualize=visualize,
                                 segmentations=synthetic / "segmentation", progress=progress)
        result = run_pipeline(synthetic / "images", synthetic / "exam_list.pkl", output_dir,
                              [PredictorRequest(DEMO_MODEL, "official")], workers=workers,
                              options=options, log=log, command=command)

    with _stage("evaluate", seconds, log):
        evaluation = evaluate_run(result, output_dir, n_bootstrap=n_bootstrap, seed=0, log=log)

    with _stage("localise", seconds, log):
        localization = localize_maps(model_dir / "maps", synthetic / "segmentation", model_dir / LOCALIZATION_DIR,
                                     n_bootstrap=n_bootstrap, seed=0, log=log)

    with _stage("report", seconds, log):
        report = build_report(output_dir, output_dir / REPORT_FILE, segmentation_dir=synthetic / "segmentation",
                              title="mammoscreen demo - synthetic data only")

    metrics = _headline(evaluation.evaluations.get(DEMO_MODEL), localization)
    subgroups = _subgroup_headline(evaluation.subgroups.get(DEMO_MODEL))
    summary = {"model": DEMO_MODEL, "n_exams": n_exams, "seed": seed, "metrics": metrics, "subgroups": subgroups,
               "seconds": seconds, "report": str(report)}
    write_json_atomic(output_dir / SUMMARY_FILE, summary)
    return DemoResult(output_dir, report, metrics, seconds, subgroups)


def _subgroup_headline(subgroups) -> dict[str, dict]:
    """Image-level malignant AUROC per subgroup of each key: {key: {group: {auroc, ci_low, ci_high, n, positives}}}."""
    out: dict[str, dict] = {}
    analysis = subgroups.levels.get("image") if subgroups is not None else None
    if analysis is None:
        return out
    for row in analysis.rows:
        if row.metric == "auroc" and row.key:
            out.setdefault(row.key, {})[row.group] = {"auroc": row.value, "ci_low": row.ci_low,
                                                      "ci_high": row.ci_high, "n": row.n_cases,
                                                      "positives": row.n_positive}
    return out


def _headline(evaluation, localization) -> dict[str, float | None]:
    """Image- and breast-level malignant AUROC (with CIs) and the malignant pointing game."""
    out: dict[str, float | None] = {}
    if evaluation is not None:
        for level in ("image", "breast"):
            found = evaluation.levels.get(level)
            if found is None:
                continue
            auc = found.metrics["auroc"]
            out[f"{level}_malignant_auroc"] = auc.value
            out[f"{level}_malignant_auroc_ci_low"] = auc.ci_low
            out[f"{level}_malignant_auroc_ci_high"] = auc.ci_high
    malignant = localization.classes.get("malignant") if localization is not None else None
    if malignant is not None:
        out["malignant_pointing_game"] = malignant["pointing_game"]["value"]
        out["malignant_pointing_game_ci_low"] = malignant["pointing_game"]["ci_low"]
        out["malignant_pointing_game_ci_high"] = malignant["pointing_game"]["ci_high"]
        out["malignant_dice"] = malignant["dice"]["value"]
        out["malignant_dice_threshold"] = malignant["threshold"]
        out["n_malignant_lesion_images"] = malignant["n_images"]
    return out


def format_headline(result: DemoResult) -> str:
    """The demo's numbers as a few printed lines."""
    m = result.metrics

    def ci(key: str) -> str:
        low, high = m.get(f"{key}_ci_low"), m.get(f"{key}_ci_high")
        return f" (95% CI {low:.3f}-{high:.3f})" if low is not None and high is not None else ""

    lines = []
    for level in ("image", "breast"):
        key = f"{level}_malignant_auroc"
        if m.get(key) is not None:
            lines.append(f"malignant AUROC, {level} level: {m[key]:.3f}{ci(key)}")
    if m.get("malignant_pointing_game") is not None:
        lines.append(f"pointing game, malignant lesions: {m['malignant_pointing_game']:.3f}"
                     f"{ci('malignant_pointing_game')} over {m.get('n_malignant_lesion_images')} images")
    if m.get("malignant_dice") is not None:
        lines.append(f"Dice, malignant lesions: {m['malignant_dice']:.3f}")
    for key, groups in result.subgroups.items():
        cells = []
        for group, g in groups.items():
            value = "-" if g["auroc"] is None else f"{g['auroc']:.3f}"
            interval = f" ({g['ci_low']:.3f}-{g['ci_high']:.3f})" if g["ci_low"] is not None else ""
            cells.append(f"{group} {value}{interval} [{g['n']} images, {g['positives']} malignant]")
        lines.append(f"malignant AUROC by {key}, image level: " + "; ".join(cells))
    if result.report is not None:
        lines.append(f"report: {result.report}")
    return "\n".join(lines)
