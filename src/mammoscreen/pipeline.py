"""``mammoscreen run``: every stage from original mammograms to predictions, resumable.

Stages: crop (once, shared by all models that need it) -> optimal centres (once per distinct input
window) -> each model's prediction. Every stage records a fingerprint of its inputs and settings in
``OUTPUT/.stages/<stage>.json`` when it finishes; a re-run skips stages whose fingerprint and outputs
are unchanged and resumes unfinished ones image by image (their journals keep finished images).

Output layout::

    OUTPUT/cropped_images/            cropped PNGs + cropped_exam_list.pkl
    OUTPUT/data.pkl                   exam list with best_center for the 2944x1920 window (GMIC, GLAM)
    OUTPUT/data_<rows>x<cols>.pkl     ... for other windows
    OUTPUT/<model>/predictions.csv    + maps/, visualization/ when asked for
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .batch import Failure
from .data.exams import Exam, load_exam_list
from .files import sha256_file, write_json_atomic
from .models.registry import ModelSpec, get_model_spec
from .predict import PredictionRun, PredictOptions, run_prediction

CROPPED_DIR = "cropped_images"


@dataclass
class ModelRequest:
    """A model to run: its registry name, weights (file, directory or 'official') and variant."""

    name: str
    weights: str | Path
    variant: str | None = None
    build_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    cropped_exam_list: Path
    center_exam_lists: dict[tuple[tuple[str, tuple[int, int]], ...], Path]
    predictions: dict[str, PredictionRun]
    failures: dict[str, list[Failure]]


class StageMarkers:
    """Fingerprints of finished stages, kept in OUTPUT/.stages/."""

    def __init__(self, output_dir: Path):
        self.directory = output_dir / ".stages"

    def done(self, stage: str, fingerprint: dict[str, Any], outputs: Sequence[Path]) -> bool:
        marker = self.directory / f"{stage}.json"
        if not marker.is_file() or not all(p.exists() for p in outputs):
            return False
        try:
            return json.loads(marker.read_text()) == json.loads(json.dumps(fingerprint))
        except json.JSONDecodeError:
            return False

    def mark(self, stage: str, fingerprint: dict[str, Any]) -> None:
        write_json_atomic(self.directory / f"{stage}.json", fingerprint)


def _window_key(windows: dict[str, tuple[int, int]]) -> tuple[tuple[str, tuple[int, int]], ...]:
    return tuple(sorted((angle, tuple(size)) for angle, size in windows.items()))


def centers_file_name(windows: dict[str, tuple[int, int]]) -> str:
    """data.pkl for the GMIC window, data_<cc>_<mlo>.pkl for others."""
    sizes = {tuple(v) for v in windows.values()}
    if sizes == {(2944, 1920)}:
        return "data.pkl"
    return "data_" + "_".join(f"{a}{r}x{c}" for a, (r, c) in sorted(windows.items())) + ".pkl"


def run_pipeline(images_dir: str | Path, exam_list: str | Path, output_dir: str | Path,
                 models: Sequence[ModelRequest], *, workers: int = 1, options: PredictOptions = PredictOptions(),
                 log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> RunResult:
    """Run crop -> centres -> prediction for each model, skipping finished stages."""
    from .preprocess.centers import centers_dataset
    from .preprocess.crop import CROPPED_EXAM_LIST, crop_dataset

    images_dir, exam_list, output_dir = Path(images_dir), Path(exam_list), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    markers = StageMarkers(output_dir)
    exams = load_exam_list(exam_list)
    specs: list[tuple[ModelRequest, ModelSpec]] = [(m, get_model_spec(m.name)) for m in models]
    failures: dict[str, list[Failure]] = {}

    # 1. Crop (shared by every model that uses the NYU preprocessing).
    cropped_dir = output_dir / CROPPED_DIR
    cropped_list = cropped_dir / CROPPED_EXAM_LIST
    fingerprint = {"exam_list": sha256_file(exam_list), "images": str(images_dir.resolve()),
                   "iterations": 100, "buffer_size": 50}
    if any(spec.needs_crop for _, spec in specs):
        if markers.done("crop", fingerprint, [cropped_list]):
            log("crop: up to date")
        else:
            _, failures["crop"] = crop_dataset(images_dir, exams, cropped_dir, workers=workers,
                                               progress=options.progress)
            markers.mark("crop", fingerprint)

    # 2. Optimal centres, once per distinct input window.
    center_lists: dict[tuple, Path] = {}
    for _, spec in specs:
        if spec.center_windows is None:
            continue
        key = _window_key(dict(spec.center_windows))
        if key in center_lists:
            continue
        path = output_dir / centers_file_name(dict(spec.center_windows))
        stage = f"centers-{path.stem}"
        fp = {"cropped_exam_list": sha256_file(cropped_list), "windows": [list(map(str, k)) for k in key]}
        if markers.done(stage, fp, [path]):
            log(f"centres ({path.name}): up to date")
        else:
            _, failures[stage] = centers_dataset(cropped_dir, load_exam_list(cropped_list), path,
                                                 windows=dict(spec.center_windows), workers=workers,
                                                 progress=options.progress)
            markers.mark(stage, fp)
        center_lists[key] = path

    # 3. Each model's predictions.
    predictions: dict[str, PredictionRun] = {}
    for request, spec in specs:
        if spec.build is None:
            raise ValueError(f"model {spec.name} cannot be run yet")
        if spec.center_windows is not None:
            model_exams: Sequence[Exam] = load_exam_list(center_lists[_window_key(dict(spec.center_windows))])
            model_images = cropped_dir
        elif spec.needs_crop:
            model_exams, model_images = load_exam_list(cropped_list), cropped_dir
        else:
            model_exams, model_images = exams, images_dir
        predictor = spec.build(request.weights, request.variant, device=options.device, **request.build_options)
        run = run_prediction(predictor, model_exams, model_images, output_dir / spec.name, options)
        predictions[spec.name] = run
        failures[spec.name] = run.failures
        log(f"{spec.name}: {len(run.rows)} predictions -> {run.csv_path}")
    return RunResult(cropped_list, center_lists, predictions, failures)
