"""The bundled demo model: registered, verified, and good enough on freshly generated held-out synthetic exams.

Held-out set: 40 exams (160 images) from generator seed 7777, which no training, validation or model-card
measurement used (those are 1001, 1002, 2024). Measured with the shipped weights: malignant AUROC 0.955 (40
malignant images), pointing game 0.85 (40 images with a malignant lesion); about 20 s on 2 cores.
"""

from __future__ import annotations

import csv
import json

import pytest

from mammoscreen.core.files import sha256_file
from mammoscreen.models.factory import PredictorRequest, build_predictor
from mammoscreen.models.registry import get_model_spec
from mammoscreen.models.weights import PRETRAINED_DIR, WeightsError

pytestmark = pytest.mark.slow  # seconds to minutes: a whole run, training steps, a browser or fault injection

HELDOUT_SEED = 7777
HELDOUT_EXAMS = 40


@pytest.fixture(scope="module")
def heldout(tmp_path_factory):
    from mammoscreen.train.configs import GMIC_TINY
    from mammoscreen.train.demo import synthetic_split

    return synthetic_split(tmp_path_factory.mktemp("demo_heldout"), HELDOUT_EXAMS, HELDOUT_SEED, GMIC_TINY)


def test_demo_weights_are_registered_bundled_and_verified():
    spec = get_model_spec("gmic_demo")
    wf = spec.weight_file()
    path = PRETRAINED_DIR / wf.filename
    assert wf.bundled and path.is_file()
    assert path.stat().st_size <= 10 * 2**20 and path.stat().st_size == wf.size
    assert sha256_file(path) == wf.sha256
    assert spec.license == "MIT" and "not for clinical use" in spec.intended_use
    card = json.loads((PRETRAINED_DIR / "gmic_demo_synthetic.json").read_text())
    assert card["sha256"] == wf.sha256
    assert "not for clinical use" in card["statement"].lower()
    assert card["data"]["train"]["seed"] != HELDOUT_SEED


def test_a_replaced_demo_file_is_refused(monkeypatch, tmp_path):
    from mammoscreen.models import weights

    fake = tmp_path / "gmic_demo_synthetic.pt"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(weights, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(WeightsError, match="does not match the registered sha256"):
        build_predictor(PredictorRequest("gmic_demo", None, device="cpu"))


def test_demo_model_on_heldout_synthetic_exams(heldout):
    from mammoscreen.train.demo import heldout_metrics

    predictor = build_predictor(PredictorRequest("gmic_demo", None, device="cpu"))
    assert predictor.config.input_size == (736, 480)
    metrics = heldout_metrics(predictor, heldout)
    print(metrics)
    assert metrics["malignant_images"] >= 20 and metrics["pointing_game_lesion_images"] >= 20
    assert metrics["malignant_auroc"] >= 0.90
    assert metrics["pointing_game_malignant"] >= 0.70


def test_predict_command_needs_no_weights_for_the_demo_model(heldout, tmp_path):
    from mammoscreen.cli import main
    from mammoscreen.data.exams import save_exam_list

    save_exam_list(heldout.exams[:1], tmp_path / "one.pkl")
    for extra, out in (([], "a"), (["--weights", "official"], "b")):
        code = main(["predict", "--model", "gmic_demo", "--images", str(heldout.cropped_dir), "--exam-list",
                     str(tmp_path / "one.pkl"), "--output-dir", str(tmp_path / out), "--quiet", "--device", "cpu",
                     *extra])
        assert code == 0
    with open(tmp_path / "a" / "predictions.csv", newline="") as f:
        first = list(csv.DictReader(f))
    with open(tmp_path / "b" / "predictions.csv", newline="") as f:
        assert list(csv.DictReader(f)) == first and len(first) == 4
