"""A small real run for the report tests: synthetic exams -> ``run_pipeline`` -> ``evaluate_run``.

Two stand-in image-level models are registered for the run (a full GMIC forward would take most of the
test budget): their scores follow the image labels plus a fixed per-image offset, so the metrics are
neither trivial nor perfect, and their figure is a small PNG of the mammogram without any outline, so
the report has to draw the ground truth itself.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from mammoscreen.core.files import sha256_file
from mammoscreen.data.images import image_path, read_png
from mammoscreen.engine import PredictOptions
from mammoscreen.models import registry
from mammoscreen.models.interfaces import ImagePrediction, Predictor
from mammoscreen.models.registry import ModelSpec, WeightFile

MODELS = ("standin_alpha", "standin_beta")


class LabelFollowingPredictor(Predictor):
    def __init__(self, spec, weights: Path, strength: float):
        self.spec, self.weights, self.strength = spec, weights, strength

    def provenance(self):
        return {"model": self.spec.name, "variant": "v1",
                "weights": [{"path": str(self.weights), "sha256": sha256_file(self.weights)}]}

    def prepare(self, record, images_dir):
        image = read_png(image_path(images_dir, record.name))
        return record, cv2.resize(image, (image.shape[1] // 8, image.shape[0] // 8), interpolation=cv2.INTER_AREA)

    def predict_batch(self, prepared):
        out = []
        for record, _ in prepared:
            offset = (zlib.crc32(record.name.encode()) % 1000) / 1000.0  # fixed, label-independent
            malignant = 0.1 + self.strength * (record.malignant_label or 0) + 0.6 * offset
            benign = 0.2 + 0.3 * (record.benign_label or 0) + 0.2 * offset
            out.append(ImagePrediction({"benign_pred": min(benign, 1.0),
                                        "malignant_pred": min(malignant, 1.0)}))
        return out

    def visualize(self, record, prepared, prediction, segmentations, path):
        _, small = prepared
        grey = cv2.normalize(small.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        panel = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        figure = cv2.hconcat([panel, panel[:, ::-1]])
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), figure)


def _spec(name: str, strength: float) -> ModelSpec:
    def build(paths, variant, device, options):  # the factory has resolved the weight file
        return LabelFollowingPredictor(registry.get_model_spec(name), paths[0], strength)

    return ModelSpec(name=name, title=f"Stand-in {name}", paper="Nobody et al., A stand-in model (2026)",
                     license="test-only", output_level="image", prediction_columns=("benign_pred", "malignant_pred"),
                     needs_crop=False,
                     weights={"v1": WeightFile(f"{name}.bin")}, default_variant="v1", variants=("v1",),
                     intended_use="Tests only: synthetic data, not for clinical use.", build=build)


@pytest.fixture(scope="session")
def report_run(synthetic_dataset, tmp_path_factory):
    """(run_dir, dataset_dir, weights_dir) of a two-model run with figures, evaluation and comparison,
    plus a localisation result for the first model in the schema 'mammoscreen localize' writes."""
    from mammoscreen.cli.model_args import model_requests
    from mammoscreen.workflows.pipeline import run_pipeline
    from mammoscreen.workflows.run_evaluation import evaluate_run

    root = tmp_path_factory.mktemp("report_run")
    weights = root / "weights"
    weights.mkdir()
    for k, name in enumerate(MODELS):
        (weights / f"{name}.bin").write_bytes(bytes(range(256)) * (k + 3))
    run_dir = root / "run"
    registry.list_models()
    with pytest.MonkeyPatch.context() as patch:
        for name, strength in zip(MODELS, (0.2, 0.1)):
            patch.setitem(registry._REGISTRY, name, _spec(name, strength))
        result = run_pipeline(synthetic_dataset / "images", synthetic_dataset / "exam_list.pkl", run_dir,
                              model_requests(list(MODELS), [str(weights)]),
                              options=PredictOptions(device="cpu", visualize=True, progress=False),
                              log=lambda message: None, command=["mammoscreen", "run", "--models", ",".join(MODELS)])
        evaluate_run(result, run_dir, n_bootstrap=200, log=lambda message: None)
    localization = run_dir / MODELS[0] / "localization"
    localization.mkdir()
    (localization / "localization.json").write_text(json.dumps({
        "n_bootstrap": 200, "seed": 0,
        "classes": {"malignant": {"n_images": 5, "threshold": 0.4, "dice": {"value": 0.4321, "ci_low": 0.3012,
                                                                            "ci_high": 0.5634},
                                  "pointing_game": {"value": 0.8, "ci_low": 0.6, "ci_high": 1.0}},
                    "benign": {"n_images": 3, "threshold": 0.35, "dice": {"value": 0.2109, "ci_low": None,
                                                                         "ci_high": None},
                               "pointing_game": {"value": 0.6667, "ci_low": None, "ci_high": None}}}}))
    (localization / "localization_per_image.csv").write_text("image,class,dice,hit\n0_L-CC,malignant,0.5,1\n")
    return run_dir, synthetic_dataset, weights
