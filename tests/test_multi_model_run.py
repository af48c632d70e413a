"""Several models in one run: option syntax, missing weights reported and skipped, the summary, the CLI.

Two tiny stand-in models are registered for these tests, so that the run's bookkeeping is tested
without model forwards (the real models run together in tests/parity/test_glam_parity.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mammoscreen.cli import main
from mammoscreen.data.exams import Exam, save_exam_list
from mammoscreen.engine import PredictOptions
from mammoscreen.models import registry
from mammoscreen.models.interfaces import ImagePrediction, Predictor
from mammoscreen.models.options import ModelOptions
from mammoscreen.models.registry import ModelSpec, WeightFile
from mammoscreen.models.weights import WeightsError, load_checkpoint
from mammoscreen.cli.model_args import model_requests, split_model_names
from mammoscreen.models.factory import PredictorRequest
from mammoscreen.workflows.pipeline import run_pipeline


class ConstantPredictor(Predictor):
    """Predicts a constant read from its 'checkpoint' (a text file); 'corrupt' files fail to load."""

    def __init__(self, spec, value):
        self.spec, self.value = spec, value

    def prepare(self, record, images_dir):
        return record.name

    def predict_batch(self, prepared):
        return [ImagePrediction({"malignant_pred": self.value}) for _ in prepared]


def make_spec(name):
    def build(paths, variant, device, options):  # the factory has resolved the weight file
        spec = registry.get_model_spec(name)
        path = paths[0]
        if path.read_text() == "corrupt":
            load_checkpoint(path)  # raises WeightsError, as for a real damaged checkpoint
        return ConstantPredictor(spec, float(path.read_text()))

    return ModelSpec(name=name, title=f"stand-in {name}", paper="-", license="test", output_level="image",
                     prediction_columns=("malignant_pred",), needs_crop=False,
                     weights={"v1": WeightFile(f"{name}.txt"), "v2": WeightFile(f"{name}_v2.txt")},
                     default_variant="v1", variants=("v1", "v2"), build=build)


@pytest.fixture
def standins(monkeypatch):
    registry.list_models()  # load the built-in models first
    for name in ("fake_a", "fake_b"):
        monkeypatch.setitem(registry._REGISTRY, name, make_spec(name))


@pytest.fixture
def dataset(tmp_path):
    exam = Exam(images={"L-CC": ["x1"], "R-CC": ["x2"], "L-MLO": [], "R-MLO": []},
                cancer_label={"left_malignant": 0, "right_malignant": 1})
    exam_list = save_exam_list([exam], tmp_path / "exams.pkl")
    images = tmp_path / "images"
    images.mkdir()
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "fake_a.txt").write_text("0.25")
    return images, exam_list, weights


QUIET = PredictOptions(progress=False)


def test_requests_from_options(standins, tmp_path):
    assert split_model_names(["fake_a, fake_b", "gmic"]) == ["fake_a", "fake_b", "gmic"]
    with pytest.raises(KeyError, match="available"):
        split_model_names(["fake_a,nonsense"])
    with pytest.raises(ValueError, match="more than once"):
        split_model_names(["fake_a,fake_a"])

    requests = model_requests(["fake_a", "fake_b"], ["official", "fake_b=/w/b.txt"], ["fake_b=v2"])
    assert [(r.model, r.weights, r.variant) for r in requests] == [("fake_a", "official", None),
                                                                  ("fake_b", "/w/b.txt", "v2")]
    # A path containing '=' is a path unless the text before it is a model name.
    assert model_requests(["fake_a"], ["/data/run=3/w.txt"])[0].weights == "/data/run=3/w.txt"
    assert model_requests(["fake_a"], [], ["v2"])[0].variant == "v2"
    assert model_requests(["fake_a", "fake_b"], ["fake_a=/a"])[1].weights is None  # reported later

    with pytest.raises(ValueError, match="not among the models"):
        model_requests(["fake_a"], ["fake_b=/w"])
    with pytest.raises(ValueError, match="twice"):
        model_requests(["fake_a"], ["fake_a=/w", "fake_a=/v"])
    with pytest.raises(ValueError, match="two values without a model name"):
        model_requests(["fake_a", "fake_b"], ["/w", "/v"])
    with pytest.raises(ValueError, match="ambiguous"):
        model_requests(["fake_a", "fake_b"], ["/w"], ["v2"])
    single_file = tmp_path / "one.ckpt"
    single_file.write_text("x")
    with pytest.raises(ValueError, match="single checkpoint file"):
        model_requests(["fake_a", "fake_b"], [str(single_file)])


def test_model_without_weights_is_skipped_and_the_other_runs(standins, dataset, tmp_path):
    images, exam_list, weights = dataset
    logged = []
    result = run_pipeline(images, exam_list, tmp_path / "out",
                          [PredictorRequest("fake_a", weights), PredictorRequest("fake_b", weights)],
                          options=QUIET, log=logged.append)
    assert result.outcomes["fake_a"].status == "done"
    assert result.outcomes["fake_b"].status == "skipped"
    assert "fake_b.txt" in result.skipped["fake_b"]
    assert any(m.startswith("fake_b: skipped") for m in logged)
    assert list(result.prediction_files) == ["fake_a"]
    assert (tmp_path / "out" / "fake_a" / "predictions.csv").read_text().splitlines() == \
        ["image_index,malignant_pred,malignant_label", "x1,0.25,0", "x2,0.25,1"]
    assert not (tmp_path / "out" / "fake_b").exists()
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())["models"]
    assert [(m["model"], m["variant"], m["status"], m["n_predictions"]) for m in summary] == \
        [("fake_a", "v1", "done", 2), ("fake_b", "v1", "skipped", 0)]
    assert summary[0]["output_level"] == "image" and summary[0]["prediction_columns"] == ["malignant_pred"]
    assert Path(summary[0]["predictions"]) == tmp_path / "out" / "fake_a" / "predictions.csv"


def test_model_whose_checkpoint_fails_to_load_is_skipped_in_its_turn(standins, dataset, tmp_path):
    images, exam_list, weights = dataset
    (weights / "fake_b.txt").write_text("corrupt")
    result = run_pipeline(images, exam_list, tmp_path / "out",
                          [PredictorRequest("fake_b", weights), PredictorRequest("fake_a", weights)], options=QUIET,
                          log=lambda m: None)
    assert result.skipped.keys() == {"fake_b"} and "not a loadable PyTorch checkpoint" in result.skipped["fake_b"]
    assert result.outcomes["fake_a"].status == "done"
    assert list(result.outcomes) == ["fake_b", "fake_a"]  # request order


def test_nothing_runnable_and_bad_requests_are_errors_before_any_work(standins, dataset, tmp_path):
    images, exam_list, weights = dataset
    with pytest.raises(WeightsError, match="no model can run: fake_b"):
        run_pipeline(images, exam_list, tmp_path / "out", [PredictorRequest("fake_b", weights)], options=QUIET,
                     log=lambda m: None)
    with pytest.raises(ValueError, match="more than once"):
        run_pipeline(images, exam_list, tmp_path / "out", [PredictorRequest("fake_a", weights)] * 2, options=QUIET)
    with pytest.raises(ValueError, match="unknown variant 'v9' of fake_a"):
        run_pipeline(images, exam_list, tmp_path / "out", [PredictorRequest("fake_a", weights, "v9")], options=QUIET)
    with pytest.raises(ValueError, match="model fake_a has no option offset"):
        run_pipeline(images, exam_list, tmp_path / "out", [PredictorRequest("fake_a", weights, options={"offset": 1})],
                     options=QUIET)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_cli_runs_several_models_and_reports_the_skipped_one(standins, dataset, tmp_path, capsys):
    images, exam_list, weights = dataset
    status = main(["run", "--models", "fake_a,fake_b", "--weights", f"fake_a={weights / 'fake_a.txt'}",
                   "--images", str(images), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "out"),
                   "--quiet"])
    assert status == 1  # not everything ran
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["stage", "variant", "status"]
    assert lines[1].split()[:3] == ["fake_a", "v1", "done"]
    assert lines[2].split()[:3] == ["fake_b", "v1", "skipped"] and "no weights given for fake_b" in lines[2]


@pytest.mark.slow  # about a second or more: CI runs it, the fast loop leaves it out
def test_cli_single_model_syntax_still_works(standins, dataset, tmp_path, capsys):
    images, exam_list, weights = dataset
    (weights / "fake_a_v2.txt").write_text("0.5")
    status = main(["run", "--model", "fake_a", "--weights", str(weights), "--model-index", "v2",
                   "--images", str(images), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "out"),
                   "--quiet"])
    assert status == 0
    assert "x1,0.5,0" in (tmp_path / "out" / "fake_a" / "predictions.csv").read_text()


def test_cli_errors_are_one_line(standins, dataset, tmp_path, capsys):
    images, exam_list, weights = dataset
    common = ["--images", str(images), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "out")]
    assert main(["run", "--models", "fake_a,fake_b", *common]) == 2
    assert "no weights given" in capsys.readouterr().err
    assert main(["run", "--models", "fake_a,fake_b", "--weights", str(weights), "--variant", "v2", *common]) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert main(["run", "--models", "fake_a,nope", "--weights", str(weights), *common]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_predict_command_accepts_the_same_weights_syntax(standins, dataset, tmp_path, capsys):
    images, exam_list, weights = dataset
    common = ["--images", str(images), "--exam-list", str(exam_list), "--output-dir", str(tmp_path / "out"), "--quiet"]
    assert main(["predict", "--model", "fake_a", "--weights", f"fake_a={weights}", *common]) == 0
    assert main(["predict", "--model", "fake_b", "--weights", str(weights), *common]) == 2
    assert "does not contain fake_b.txt" in capsys.readouterr().err


def test_build_options_reach_only_the_models_that_take_them(standins, dataset, tmp_path, monkeypatch):
    images, exam_list, weights = dataset
    (weights / "fake_b.txt").write_text("0.75")
    received = {}
    spec_b = registry._REGISTRY["fake_b"]

    @dataclass(frozen=True)
    class OffsetOptions(ModelOptions):
        offset: float = 0.0

    def build_with_offset(paths, variant, device, options):
        received["offset"] = options.offset
        return ConstantPredictor(spec_b, float(paths[0].read_text()) + options.offset)

    monkeypatch.setitem(registry._REGISTRY, "fake_b", ModelSpec(**{**vars(spec_b), "build": build_with_offset,
                                                                  "options": OffsetOptions}))
    result = run_pipeline(images, exam_list, tmp_path / "out",
                          model_requests(["fake_a", "fake_b"], [str(weights)], options={"offset": 0.125}),
                          options=QUIET, log=lambda m: None)
    assert not result.skipped and received == {"offset": 0.125}  # fake_a's builder has no 'offset'
    assert "x1,0.875,0" in result.prediction_files["fake_b"].read_text()
