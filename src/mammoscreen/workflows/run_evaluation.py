"""After ``mammoscreen run``: evaluate each model's predictions, then compare the models.

This is the meta-repository's core use case - several published models on the same data, each scored
with AUROC/AUPRC and bootstrap CIs, then compared pairwise (DeLong, paired bootstrap) - as one call on
the :class:`~mammoscreen.workflows.pipeline.RunResult`. Every model is compared at breast level (image-level
predictions become breast scores as the meta-repository's ``score.py`` computes them), the one level
all six models share.

Outputs: ``OUTPUT/<model>/evaluation/`` (``metrics.json``, ``metrics.txt``, ROC/PR curves) and
``OUTPUT/comparison/`` (``comparison.json``, ``comparison.txt``, overlaid curves, calibration). When the
exam list has metadata, each model is also analysed by subgroup (``subgroups.json``, ``.csv``, ``.txt``, a
forest plot and ROC curves per subgroup, beside its metrics; the comparison likewise): by the keys asked
for, or by default by those of density, age, manufacturer, site, machine, implant and dataset that take
at least two values.

With lesion masks, :func:`localize_run` scores the saved saliency maps of every model that has them (the
registry's ``saliency_maps``: GMIC, ``gmic_demo``, GLAM) against the masks: ``OUTPUT/<model>/localization/``
(``localization.json``, ``localization_per_image.csv``, as ``mammoscreen localize`` writes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.paths import output_path
from ..core.stages import Failure, describe_error, is_io_error
from ..data.exams import load_exam_list
from .pipeline import RunResult

EVALUATION_DIR = "evaluation"
COMPARISON_DIR = "comparison"
LOCALIZATION_DIR = "localization"


@dataclass
class RunEvaluation:
    """Evaluations of the models of one run and their comparison (None where it could not be made)."""

    evaluations: dict = field(default_factory=dict)  # model -> EvaluationResult
    comparison: object | None = None  # ComparisonResult
    problems: dict[str, str] = field(default_factory=dict)  # model or 'comparison' -> why it was not evaluated
    subgroups: dict = field(default_factory=dict)  # model or 'comparison' -> SubgroupEvaluation
    # Problems caused by the machine (disk full, read-only): the run failed, unlike data problems such as
    # a single class of labels, and a re-run after fixing the cause evaluates.
    failures: list[Failure] = field(default_factory=list)


def _label_problem(exams) -> str | None:
    """Why the exams' breast-level malignancy labels cannot be evaluated against, or None."""
    labels = {e.cancer_label.get(k) for e in exams if e.cancer_label
              for k in ("left_malignant", "right_malignant")} - {None}
    if not labels:
        return "the exam list has no cancer labels (cancer_label)"
    if len(labels) == 1:
        return (f"every breast in the exam list is labelled {'malignant' if labels == {1} else 'not malignant'}; "
                "AUROC and AUPRC need both classes")
    return None


def evaluate_run(result: RunResult, output_dir: str | Path, *, n_bootstrap: int = 2000, seed: int = 0,
                 by: str | Sequence[str] | None = None, bins: Any = None,
                 log: Callable[[str], None] = print) -> RunEvaluation:
    """Evaluate every model that ran, write the reports, and compare the models if there are several.

    The exam list used is the cropped one (images that could not be cropped are left out of it, as they
    are left out of the predictions). ``by``: metadata keys of the subgroup analysis (None: the default
    keys the exam list has; empty: none); ``bins``: their bins (see ``evaluate --bins``).
    """
    from ..evaluate import compare_models, evaluate_predictions
    from ..evaluate.result_files import format_comparison, write_comparison, write_evaluation

    output_dir = Path(output_dir)
    outcome = RunEvaluation()
    exam_list = result.cropped_exam_list
    exams = load_exam_list(exam_list)
    files = result.prediction_files
    if not files:
        return outcome
    reason = _label_problem(exams)
    if reason:
        outcome.problems = {name: reason for name in files}
        log(f"evaluation skipped: {reason}")
        return outcome

    for name, csv_path in files.items():
        try:
            evaluation = evaluate_predictions(csv_path, exam_list, n_bootstrap=n_bootstrap, seed=seed)
            write_evaluation(evaluation, output_path(output_dir, name, EVALUATION_DIR))
        except Exception as error:  # one model's file must not stop the others' evaluation
            _model_step_failed(outcome, name, error, "evaluate", "evaluated", log)
            continue
        outcome.evaluations[name] = evaluation
        breast = evaluation.levels.get("breast")
        if breast is not None:
            auc = breast.metrics["auroc"]
            ci = f" (95% CI {auc.ci_low:.3f}-{auc.ci_high:.3f})" if auc.ci_low is not None else ""
            log(f"{name}: breast-level AUROC {auc.value:.3f}{ci}")

    keys = _subgroup_keys(exams, by)
    if keys:
        log(f"subgroups by {', '.join(keys)}")
        for name in list(outcome.evaluations):
            analyse = partial(_evaluate_subgroups, files[name], exam_list, keys, bins, n_bootstrap, seed, name)
            _subgroups(outcome, name, analyse, output_dir / name / EVALUATION_DIR, log)

    names = list(outcome.evaluations)
    if len(names) >= 2:
        try:
            comparison = compare_models([files[n] for n in names], names, exam_list, level="breast",
                                        n_bootstrap=n_bootstrap, seed=seed)
            write_comparison(comparison, output_dir / COMPARISON_DIR)
        except Exception as error:
            outcome.problems["comparison"] = describe_error(error)
            if is_io_error(error):
                outcome.failures.append(Failure.of("comparison", error, "evaluate"))
            log(f"comparison not made - {describe_error(error)}")
        else:
            outcome.comparison = comparison
            log(format_comparison(comparison))
            if keys:
                from ..evaluate.subgroup_evaluation import compare_subgroups

                _subgroups(outcome, COMPARISON_DIR,
                           lambda: compare_subgroups([files[n] for n in names], names, exam_list, keys, bins=bins,
                                                     level="breast", n_bootstrap=n_bootstrap, seed=seed),
                           output_dir / COMPARISON_DIR, log)
    return outcome


def _subgroup_keys(exams, by: str | Sequence[str] | None) -> list[str]:
    from ..evaluate.subgroup_evaluation import default_subgroup_keys, split_keys

    return default_subgroup_keys(exams) if by is None else split_keys(by)


def _evaluate_subgroups(csv_path, exam_list, keys, bins, n_bootstrap, seed, name):
    from ..evaluate.subgroup_evaluation import evaluate_subgroups

    return evaluate_subgroups(csv_path, exam_list, keys, bins=bins, n_bootstrap=n_bootstrap, seed=seed, name=name)


def _subgroups(outcome: RunEvaluation, name: str, analyse: Callable[[], object], directory: Path,
               log: Callable[[str], None]) -> None:
    """Run one subgroup analysis and write it; a failure is reported and the run carries on."""
    from ..evaluate.subgroup_files import write_subgroups

    try:
        evaluation = analyse()
        write_subgroups(evaluation, directory)
    except Exception as error:  # subgroups are an addition: they must not cost the main results
        outcome.problems[f"{name} subgroups"] = describe_error(error)
        log(f"{name}: subgroups not analysed - {describe_error(error)}")
        return
    outcome.subgroups[name] = evaluation
    for level, analysis in evaluation.levels.items():
        if len(analysis.models) != 1:
            continue
        tests = {t["key"]: t["p_value"] for t in analysis.heterogeneity
                 if t["metric"] == "auroc" and t["operating_point"] == "" and t["predictor"] == analysis.models[0]}
        for grouping in analysis.groupings:
            log(f"{name}, {level} level: AUROC by {grouping.key}: "
                + ", ".join(f"{g} {_auroc(analysis, grouping.key, g)}" for g in grouping.labels)
                + (f" (heterogeneity p = {tests[grouping.key]:.2g})" if grouping.key in tests else ""))


def _auroc(analysis, key: str, group: str) -> str:
    row = analysis.row(key, group, "auroc")
    return "-" if row.value is None else f"{row.value:.3f}"


@dataclass
class RunLocalization:
    """Localisation of the saliency maps of the models of one run."""

    results: dict = field(default_factory=dict)  # model -> LocalizationResult
    problems: dict[str, str] = field(default_factory=dict)  # model -> why it was not localised
    failures: list[Failure] = field(default_factory=list)  # I/O errors (see RunEvaluation.failures)


def localize_run(result: RunResult, output_dir: str | Path, segmentation_dir: str | Path, *,
                 n_bootstrap: int = 2000, seed: int = 0, log: Callable[[str], None] = print) -> RunLocalization:
    """Dice and pointing game of the saved maps of every model that ran and writes saliency maps.

    A model writes saliency maps when its registry entry says so (``saliency_maps``: GMIC, ``gmic_demo``,
    GLAM); each one's ``OUTPUT/<model>/maps/`` is scored against ``segmentation_dir`` into
    ``OUTPUT/<model>/localization/``. A model without maps (the run had no ``--save-maps``, or every image
    failed) or whose localisation fails is reported in ``problems`` and ``log``, and the others carry on;
    single unusable maps files are skipped inside :func:`~mammoscreen.explain.localize.localize_maps`.
    """
    from ..engine.outputs import MAPS_DIR
    from ..explain.localize import localize_maps

    output_dir = Path(output_dir)
    outcome = RunLocalization()
    for name, model in result.outcomes.items():
        if model.run is None or not model.spec.saliency_maps:
            continue
        maps_dir = output_dir / name / MAPS_DIR
        if not maps_dir.is_dir() or not any(maps_dir.rglob("*.npz")):
            outcome.problems[name] = f"no saliency maps in {maps_dir} (run with --save-maps to localise them)"
            log(f"{name}: not localised - {outcome.problems[name]}")
            continue
        try:
            localization = localize_maps(maps_dir, segmentation_dir, output_path(output_dir, name, LOCALIZATION_DIR),
                                         exam_list=result.cropped_exam_list, n_bootstrap=n_bootstrap, seed=seed,
                                         log=None)
        except Exception as error:  # one model's maps must not stop the others' localisation
            _model_step_failed(outcome, name, error, "localize", "localised", log)
            continue
        outcome.results[name] = localization
        malignant = localization.classes["malignant"]
        dice = malignant["dice"]["value"]
        log(f"{name}: localisation of {localization.n_maps} maps ({len(localization.skipped)} skipped); malignant "
            f"Dice {'-' if dice is None else f'{dice:.3f}'} over {malignant['n_images']} images -> "
            f"{localization.json_path.parent}")
        for failure in localization.skipped:
            log(f"  skipped {failure}")
    return outcome


def _model_step_failed(outcome: Any, name: str, error: Exception, stage: str, done: str,
                       log: Callable[[str], None]) -> None:
    """One model's evaluation or localisation failed: its problem recorded (an I/O error also as a failure of the
    run, so that the run is incomplete) and logged; the other models go on."""
    outcome.problems[name] = describe_error(error)
    if is_io_error(error):
        outcome.failures.append(Failure.of(name, error, stage))
    log(f"{name}: not {done} - {describe_error(error)}")
