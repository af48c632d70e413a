"""``mammoscreen run``: every stage from original mammograms to predictions, resumable.

Stages: crop (once, shared by all models that need it) -> optimal centres (once per distinct input
window) -> each model's prediction. Every stage journals each finished image with its settings and the
content of its input and output files (:mod:`mammoscreen.core.journal`); a re-run goes through every
stage again but reuses what is still valid, so it resumes an interrupted run, recomputes exactly the
images whose input changed (or that failed), and says "up to date" when nothing did.

Failures (images that could not be processed, and files the disk refused) are listed with their stage
in ``OUTPUT/failures.csv``, implausible inputs in ``OUTPUT/warnings.csv``; an I/O error makes the run
*incomplete* (:attr:`RunResult.incomplete`), and the next run retries what it stopped. A stage whose own
output (its exam list) could not be written stops the stages that need it. The output directory is
locked for the duration of the run: a second run on it is refused with the first one's PID and command.

Several models run in one call, one after the other on the shared preprocessing: one typed
:class:`~mammoscreen.models.factory.PredictorRequest` per model (the command line's ``MODEL=VALUE`` syntax is
parsed in :mod:`mammoscreen.cli.model_args`). A model whose
weights are missing (checked before any stage starts) or cannot be loaded is reported and skipped;
the others still run. ``OUTPUT/run_summary.json`` lists every model with its status, output level,
prediction columns and predictions file - what an evaluation/comparison step needs; in Python the
returned :class:`RunResult` has the same (``outcomes``, ``prediction_files``), so "evaluate each model,
then compare" is one call on it after :func:`run_pipeline`.

Output layout::

    OUTPUT/cropped_images/            cropped PNGs + cropped_exam_list.pkl
    OUTPUT/data.pkl                   exam list with best_center for the 2944x1920 window (GMIC, GLAM)
    OUTPUT/data_<rows>x<cols>.pkl     ... for other windows
    OUTPUT/<model>/predictions.csv    + maps/, visualization/ when asked for
    OUTPUT/failures.csv               stage,item,kind,reason of everything that failed (absent if nothing did)
    OUTPUT/warnings.csv               stage,item,warning: implausible inputs (absent if none)
    OUTPUT/run_summary.json           what ran, what was skipped and why
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.files import sha256_file, write_json_atomic
from ..core.lock import OutputLockError, output_lock
from ..core.paths import ensure_output_dir, output_path
from ..core.stages import (
    FAILURES_CSV,
    WARNINGS_CSV,
    Failure,
    InputWarning,
    StageReport,
    describe_error,
    read_failures_csv,
    write_failures_csv,
    write_warnings_csv,
)
from ..data.exams import Exam, load_exam_list
from ..engine import PredictionRun, PredictOptions, run_prediction
from ..engine.choice import Engine
from ..models.factory import PredictorRequest, build_predictor
from ..models.registry import ModelSpec, get_model_spec
from ..models.weights import WeightsError, unverified_downloads, weights_problem

CROPPED_DIR = "cropped_images"
RUN_SUMMARY = "run_summary.json"


@dataclass
class ModelOutcome:
    """What happened to one requested model."""

    name: str
    variant: str | None
    spec: ModelSpec
    status: str  # "done", "skipped" (weights missing or unloadable), "not run" (a stage it needs failed) or
    # "failed" (its output folder or journal could not be written)
    reason: str = ""  # why it was skipped
    output_dir: Path | None = None
    run: PredictionRun | None = None
    weights: str | None = None  # as requested: a file, a directory or 'official'
    provenance: dict[str, Any] | None = None  # the predictor's own record (weight files with their sha256)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.name, "variant": self.variant, "status": self.status, "reason": self.reason,
                "weights": self.weights, "provenance": self.provenance,
                # What the registry said when the run was made (the report shows these).
                "title": self.spec.title, "paper": self.spec.paper, "license": self.spec.license,
                "intended_use": self.spec.intended_use,
                "output_level": self.spec.output_level, "prediction_columns": list(self.spec.prediction_columns),
                "predictions": str(self.run.csv_path) if self.run else None,
                "n_predictions": len(self.run.rows) if self.run else 0,
                "n_reused": self.run.reused if self.run else 0,
                "n_failed": len(self.run.failures) if self.run else 0,
                "incomplete": bool(self.run and self.run.incomplete)}


@dataclass
class RunResult:
    cropped_exam_list: Path  # the input exam list when no model needed cropping
    center_exam_lists: dict[tuple[tuple[str, tuple[int, int]], ...], Path]
    predictions: dict[str, PredictionRun]
    failures: dict[str, list[Failure]]  # stage (crop, centres-..., model name) -> its failures
    outcomes: dict[str, ModelOutcome] = field(default_factory=dict)  # every requested model, in request order
    stages: dict[str, StageReport] = field(default_factory=dict)  # preprocessing stages: counts, warnings

    @property
    def skipped(self) -> dict[str, str]:
        """Models that did not run: name -> reason."""
        return {n: o.reason for n, o in self.outcomes.items() if o.status != "done"}

    @property
    def prediction_files(self) -> dict[str, Path]:
        """predictions.csv of every model that ran: the input of an evaluation or comparison step."""
        return {n: o.run.csv_path for n, o in self.outcomes.items() if o.run is not None and o.run.csv_written}

    @property
    def warnings(self) -> list[InputWarning]:
        return [w for report in self.stages.values() for w in report.warnings]

    @property
    def incomplete(self) -> list[str]:
        """Stages an I/O error (disk full, read-only, failing disk) stopped part of: re-run to finish them."""
        return [stage for stage, found in self.failures.items() if any(f.io_error for f in found)]

    @property
    def all_failed(self) -> list[str]:
        """Stages that had items to process and produced nothing."""
        failed = [name for name, r in self.stages.items() if r.failures and r.reused + r.computed == 0]
        return failed + [n for n, o in self.outcomes.items() if o.run is not None and o.run.failures
                         and not o.run.rows]


def _window_key(windows: dict[str, tuple[int, int]]) -> tuple[tuple[str, tuple[int, int]], ...]:
    return tuple(sorted((angle, (int(size[0]), int(size[1]))) for angle, size in windows.items()))


NYU_CENTRES_MODEL = "gmic"
"""The model whose window's centres go to ``data.pkl``, the file name of the official NYU scripts."""


def centers_file_name(windows: dict[str, tuple[int, int]]) -> str:
    """data.pkl for the window of GMIC's preprocessing record (GLAM's too), data_<cc>_<mlo>.pkl for others."""
    sizes = {tuple(v) for v in windows.values()}
    nyu_windows = get_model_spec(NYU_CENTRES_MODEL).center_windows or {}
    if sizes == {tuple(v) for v in nyu_windows.values()}:
        return "data.pkl"
    return "data_" + "_".join(f"{a}{r}x{c}" for a, (r, c) in sorted(windows.items())) + ".pkl"


def _centres_stage(cropped_dir: Path, cropped_list: Path, path: Path, windows: dict, workers: int, progress: bool,
                   report: StageReport, pool: Any) -> Any:
    from ..preprocess.centers import centers_dataset

    return centers_dataset(cropped_dir, load_exam_list(cropped_list), path, windows=windows, workers=workers,
                           progress=progress, report=report, pool=pool)


def run_pipeline(images_dir: str | Path, exam_list: str | Path, output_dir: str | Path,
                 models: Sequence[PredictorRequest], *, workers: int = 1, options: PredictOptions | None = None,
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
                 command: Sequence[str] | None = None, ignore_unknown_views: bool = False,
                 engine: Engine | None = None) -> RunResult:
    """Run crop -> centres -> prediction for each model, reusing every image whose result is still valid.

    ``models``: one :class:`~mammoscreen.models.factory.PredictorRequest` per model (weights None: the model's
    bundled weights, or reported as missing); a request's ``device`` 'auto' takes the run's ``options.device``.
    ``command`` (the command line, when run from one) is recorded in ``run_summary.json`` with the
    inputs, their sha256 and the software versions, for the report's provenance.

    Models whose weights are missing are reported (``log``) and skipped before any work starts; a model
    whose predictor cannot be built (e.g. a corrupt checkpoint) is skipped when its turn comes. If no
    requested model can run, :class:`~mammoscreen.models.weights.WeightsError` is raised. The output
    directory is locked for the duration (:class:`~mammoscreen.core.lock.OutputBusyError` if another
    process holds it). ``ignore_unknown_views``: see :func:`~mammoscreen.data.exams.load_exam_list`.
    ``engine`` (from :func:`mammoscreen.engine.choice.open_engine`; default local) runs the stages' work;
    the files written are the same whichever engine ran it, and ``run_summary.json`` records where it ran.
    """
    engine = engine or Engine()
    options = options or PredictOptions()
    if engine.executor is not None:
        options = replace(options, executor=engine.executor)
    workers = engine.stage_workers(workers)
    images_dir, exam_list, output_dir = Path(images_dir), Path(exam_list), Path(output_dir)
    names = [m.model for m in models]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"model(s) requested more than once: {', '.join(repeated)} (each model writes to "
                         "OUTPUT/<model>/; run a second variant into another output directory)")
    exams = load_exam_list(exam_list, ignore_unknown_views=ignore_unknown_views)
    specs: list[tuple[PredictorRequest, ModelSpec]] = [(m, get_model_spec(m.model)) for m in models]
    for request, spec in specs:  # a typo should stop the run before any work, not skip a model
        if request.variant is not None and spec.variants and str(request.variant) not in spec.variants:
            raise ValueError(f"unknown variant {request.variant!r} of {spec.name}; choose one of "
                             f"{', '.join(spec.variants)}")
        spec.options.parse(request.options, spec.name)  # an option the model does not take, or a bad value

    # 0. Which models can run at all: check their weights before the long stages.
    outcomes: dict[str, ModelOutcome] = {}
    runnable: list[tuple[PredictorRequest, ModelSpec]] = []
    for request, spec in specs:
        problem = "no predictor implemented yet" if spec.build is None else \
            weights_problem(spec, request.weights, request.variant)
        if problem:
            outcomes[spec.name] = ModelOutcome(spec.name, request.variant or spec.default_variant, spec, "skipped",
                                               problem)
            log(f"{spec.name}: skipped - {problem}")
        else:
            runnable.append((request, spec))
    if not runnable:
        raise WeightsError("no model can run: " + "; ".join(f"{n}: {o.reason}" for n, o in outcomes.items()))
    ensure_output_dir(output_dir)
    with output_lock(output_dir, command):
        result = _run_stages(images_dir, exam_list, exams, output_dir, runnable, outcomes, workers, options, log,
                             engine)
        ordered = {name: result.outcomes[name] for name in names}
        result.outcomes = ordered
        _write_run_files(result, output_dir, images_dir, exam_list, exams, options, command, log, engine)
    return result


def _run_stages(images_dir: Path, exam_list: Path, exams: Sequence[Exam], output_dir: Path,
                runnable: list[tuple[PredictorRequest, ModelSpec]], outcomes: dict[str, ModelOutcome], workers: int,
                options: PredictOptions, log: Callable[[str], None], engine: Engine) -> RunResult:
    from ..preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    failures: dict[str, list[Failure]] = {}
    stages: dict[str, StageReport] = {}

    def guarded(report: StageReport, call: Callable[[], Any]) -> None:
        # A stage that cannot even start or finish writing (its folder or journal refused) fails as a whole.
        try:
            call()
        except (OSError, OutputLockError) as error:
            report.failures.append(Failure(report.stage, describe_error(error), report.stage, io_error=True))
            report.output_failed = True

    def not_run(spec: ModelSpec, request: PredictorRequest, stage: str) -> None:
        reason = f"not run: the {stage} stage could not write its exam list (see {FAILURES_CSV})"
        outcomes[spec.name] = ModelOutcome(spec.name, request.variant or spec.default_variant, spec, "not run",
                                           reason)
        log(f"{spec.name}: {reason}")

    # 1. Crop (shared by every model that uses the NYU preprocessing).
    cropped_dir = output_dir / CROPPED_DIR
    cropped_list = cropped_dir / CROPPED_EXAM_LIST
    crop_ok = True
    if any(spec.needs_crop for _, spec in runnable):
        report = stages["crop"] = StageReport("crop")
        guarded(report, lambda: crop_dataset(images_dir, exams, cropped_dir, workers=workers,
                                              progress=options.progress, report=report, pool=engine.pool))
        engine.note_stage("crop")
        failures["crop"] = report.failures
        crop_ok = not report.output_failed
        log(f"crop: {report.summary()}")

    # 2. Optimal centres, once per distinct input window.
    center_lists: dict[tuple, Path] = {}
    centre_ok: dict[tuple, bool] = {}
    for _, spec in runnable:
        if spec.center_windows is None or not crop_ok:
            continue
        key = _window_key(dict(spec.center_windows))
        if key in center_lists:
            continue
        path = output_dir / centers_file_name(dict(spec.center_windows))
        stage = f"centers-{path.stem}"
        report = stages[stage] = StageReport(stage)
        guarded(report, functools.partial(_centres_stage, cropped_dir, cropped_list, path, dict(spec.center_windows),
                                          workers, options.progress, report, engine.pool))
        engine.note_stage(stage)
        failures[stage] = report.failures
        centre_ok[key] = not report.output_failed
        log(f"centres ({path.name}): {report.summary()}")
        center_lists[key] = path

    # 3. Each model's predictions, one model at a time (only one set of weights in memory).
    predictions: dict[str, PredictionRun] = {}
    for position, (request, spec) in enumerate(runnable, start=1):
        if spec.needs_crop and not crop_ok:
            not_run(spec, request, "crop")
            continue
        if spec.center_windows is not None:
            key = _window_key(dict(spec.center_windows))
            if not centre_ok[key]:
                not_run(spec, request, "centres")
                continue
            model_exams: Sequence[Exam] = load_exam_list(center_lists[key])
            model_images = cropped_dir
        elif spec.needs_crop:
            model_exams, model_images = load_exam_list(cropped_list), cropped_dir
        else:
            model_exams, model_images = exams, images_dir
        log(f"[{position}/{len(runnable)}] {spec.name} ({request.variant or spec.default_variant})")
        try:
            device = options.device if request.device == "auto" else request.device
            predictor = build_predictor(replace(request, device=device))
        except (WeightsError, FileNotFoundError) as e:
            outcomes[spec.name] = ModelOutcome(spec.name, request.variant or spec.default_variant, spec, "skipped",
                                               str(e))
            log(f"{spec.name}: skipped - {e}")
            continue
        model_dir = output_path(output_dir, spec.name)
        provenance = predictor.provenance()
        try:
            run = run_prediction(predictor, model_exams, model_images, model_dir, options)
        except (OSError, OutputLockError) as error:  # its folder or journal refused: the model did not run
            failures[spec.name] = [Failure(spec.name, describe_error(error), spec.name, io_error=True)]
            outcomes[spec.name] = ModelOutcome(spec.name, request.variant or spec.default_variant, spec, "failed",
                                               failures[spec.name][0].reason, weights=_text(request.weights),
                                               provenance=provenance)
            log(f"{spec.name}: failed - {failures[spec.name][0].reason}")
            continue
        finally:
            del predictor  # free the model's memory before the next one is loaded
            gc.collect()
            _empty_cuda_cache()
        engine.note_stage(spec.name)
        predictions[spec.name] = run
        failures[spec.name] = run.failures
        outcomes[spec.name] = ModelOutcome(spec.name, request.variant or spec.default_variant, spec, "done",
                                           output_dir=model_dir, run=run, weights=_text(request.weights),
                                           provenance=provenance)
        reused = f" ({run.reused} up to date)" if run.reused else ""
        log(f"{spec.name}: {len(run.rows)} predictions{reused} -> {run.csv_path}")

    # Without a cropping model (e.g. end2end alone) the input exam list is the one the predictions follow.
    evaluated_list = cropped_list if cropped_list.is_file() else exam_list
    return RunResult(evaluated_list, center_lists, predictions, failures, dict(outcomes), stages)


def _write_run_files(result: RunResult, output_dir: Path, images_dir: Path, exam_list: Path, exams: Sequence[Exam],
                     options: PredictOptions, command: Sequence[str] | None, log: Callable[[str], None],
                     engine: Engine) -> None:
    """failures.csv, warnings.csv and run_summary.json; a disk that refuses them adds to the failures."""
    def attempt(name: str, write: Callable[[], None]) -> None:
        try:
            write()
        except OSError as error:
            failure = Failure.of(name, error, "run")
            result.failures.setdefault("run", []).append(failure)
            log(f"run: cannot write {name}: {failure.reason}")

    attempt(WARNINGS_CSV, lambda: write_warnings_csv(output_dir / WARNINGS_CSV, result.warnings))
    attempt(RUN_SUMMARY, lambda: write_json_atomic(output_dir / RUN_SUMMARY, {
        "models": [o.to_json() for o in result.outcomes.values()],
        "run": {**_run_record(images_dir, exam_list, exams, options, result, command),
                # where the work ran: the only part of the outputs that depends on the engine
                "engine": engine.provenance()}}))
    attempt(FAILURES_CSV, lambda: write_failures_csv(output_dir / FAILURES_CSV,
                                                     [f for found in result.failures.values() for f in found]))


def add_failures(output_dir: str | Path, found: Sequence[Failure]) -> None:
    """Add failures of later steps (evaluation, localisation) to ``OUTPUT/failures.csv``; best effort, since
    the disk that made them fail may refuse this too (they are printed as well)."""
    path = Path(output_dir) / FAILURES_CSV
    with contextlib.suppress(OSError):
        write_failures_csv(path, read_failures_csv(path) + list(found))


def _text(value: str | Path | None) -> str | None:
    return None if value is None else str(value)


def _run_record(images_dir: Path, exam_list: Path, exams: Sequence[Exam], options: PredictOptions,
                result: RunResult, command: Sequence[str] | None) -> dict[str, Any]:
    """The run's inputs and environment, as the report shows them."""
    from ..data.exams import iter_images
    from ..core.environment import software_versions, utc_timestamp

    return {"finished": utc_timestamp(), "command": list(command) if command is not None else None,
            "images": str(images_dir.resolve()), "exam_list": str(exam_list.resolve()),
            "exam_list_sha256": sha256_file(exam_list), "n_exams": len(exams),
            "n_images": sum(1 for _ in iter_images(exams)),
            "segmentations": None if options.segmentations is None else str(Path(options.segmentations).resolve()),
            "visualize": options.visualize, "save_maps": options.save_maps, "precision": options.precision,
            "failures": {stage: len(found) for stage, found in result.failures.items()},
            "incomplete": result.incomplete, "warnings": len(result.warnings),
            "stages": {name: {"images": r.total, "reused": r.reused, "computed": r.computed,
                              "failed": len(r.failures), "warnings": len(r.warnings)}
                       for name, r in result.stages.items()},
            # Weight files fetched without a published checksum (--allow-unverified), with the sha256 they had.
            "unverified_downloads": unverified_downloads(),
            "environment": software_versions()}


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
