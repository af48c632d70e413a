"""The training loop: determinism, resume, checkpoints in the official layout, fine-tuning, bad input."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

from mammoscreen.data.exams import Exam, ExamListError, save_exam_list
from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
from mammoscreen.models.weights import WeightsError
from mammoscreen.train import TrainOptions, train_gmic
from mammoscreen.train.loop import LOG_COLUMNS, TIMING_COLUMNS, TrainingError

pytestmark = pytest.mark.slow  # seconds to minutes: a whole run, training steps, a browser or fault injection


class Stop(Exception):
    pass


def _options(config, **kw):
    settings = dict(epochs=2, lr=1e-3, batch_size=4, seed=5, progress=False)
    return TrainOptions(config=config, **{**settings, **kw})


def _train(split, out, options, **kw):
    return train_gmic(split.cropped_dir, split.exams, split.exams, out, options, **kw)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _log_without_timing(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def test_same_seed_same_weights_and_resume_after_interruption_matches(micro_split, micro_config, tmp_path):
    options = _options(micro_config)
    full = _train(micro_split, tmp_path / "full", options)
    again = _train(micro_split, tmp_path / "again", options)
    _assert_same_state(_weights(full.last_model), _weights(again.last_model))  # CPU determinism
    other = _train(micro_split, tmp_path / "other", replace(options, seed=6, epochs=1))
    assert not torch.equal(_weights(other.last_model)["fusion_dnn.weight"],
                           _weights(full.last_model)["fusion_dnn.weight"])

    def stop_after_first(entry):
        if entry["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        _train(micro_split, tmp_path / "cut", options, on_epoch_end=stop_after_first)
    assert json.loads((tmp_path / "cut" / "training_log.json").read_text())["epochs"][-1]["epoch"] == 1
    with pytest.raises(TrainingError, match="--resume"):
        _train(micro_split, tmp_path / "cut", options)  # a finished epoch is never overwritten silently
    resumed = _train(micro_split, tmp_path / "cut", options, resume=True)
    assert [e["epoch"] for e in resumed.log] == [1, 2]
    _assert_same_state(_weights(full.last_model), _weights(resumed.last_model))
    _assert_same_state(_weights(full.best_model), _weights(resumed.best_model))
    assert _log_without_timing(tmp_path / "full" / "training_log.csv") == \
        _log_without_timing(tmp_path / "cut" / "training_log.csv")
    for name in ("training_log.csv", "training_log.json", "curves.png", "best_model.json", "checkpoint.pt"):
        assert (tmp_path / "full" / name).is_file()
    with open(tmp_path / "full" / "training_log.csv", newline="") as f:
        assert tuple(csv.DictReader(f).fieldnames) == LOG_COLUMNS
    with pytest.raises(TrainingError, match="different settings"):
        _train(micro_split, tmp_path / "cut", replace(options, lr=0.5), resume=True)


def test_checkpoint_has_the_official_layout_and_loads_through_predict(micro_split, micro_config, tmp_path):
    from mammoscreen.cli import main
    from mammoscreen.models.gmic.predictor import build_gmic_predictor

    result = _train(micro_split, tmp_path / "run", _options(micro_config, epochs=1))
    state = _weights(result.best_model)
    official_keys = set(GMIC(GMICConfig()).state_dict())
    # One block per stage instead of two: the keys are the official ones minus the second blocks.
    assert set(state) <= official_keys
    assert {k.replace(".0.", ".1.", 1) for k in state if "layer_list.0.0." in k} <= official_keys
    assert set(state) == set(GMIC(micro_config).state_dict())
    sidecar = json.loads((tmp_path / "run" / "best_model.json").read_text())
    assert GMICConfig.from_dict(sidecar["gmic_config"]) == micro_config

    predictor = build_gmic_predictor(result.best_model, device="cpu")
    assert predictor.config == micro_config
    record_exams = micro_split.exams[:1]
    save_exam_list(record_exams, tmp_path / "one.pkl")
    code = main(["predict", "--model", "gmic", "--weights", str(result.best_model), "--images",
                 str(micro_split.cropped_dir), "--exam-list", str(tmp_path / "one.pkl"), "--output-dir",
                 str(tmp_path / "pred"), "--quiet", "--device", "cpu"])
    assert code == 0
    with open(tmp_path / "pred" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    # The same numbers as the trained module on the deterministic validation input.
    from mammoscreen.data.exams import iter_images

    model = GMIC(micro_config)
    model.load_state_dict(state)
    model.eval()
    record = next(iter_images(record_exams))
    x = torch.from_numpy(predictor.prepare(record, micro_split.cropped_dir).window)[None, None]
    with torch.no_grad():
        expected = model(x).y_fusion[0, 1].item()
    assert float(rows[0]["malignant_pred"]) == pytest.approx(expected, abs=1e-5)

    # Without the sidecar the architecture is unknown: a clear error, not a wrong model.
    bare = tmp_path / "bare.p"
    torch.save(state, bare)
    with pytest.raises(WeightsError, match="no sidecar bare.json"):
        build_gmic_predictor(bare, device="cpu")


def test_fine_tuning_starts_from_the_given_checkpoint(micro_split, micro_config, tmp_path):
    torch.manual_seed(123)
    start = GMIC(micro_config).state_dict()
    torch.save(start, tmp_path / "start.p")  # a plain state dict, as the official files
    options = _options(micro_config, epochs=1, lr=0.0, init=str(tmp_path / "start.p"))
    result = _train(micro_split, tmp_path / "ft", options)
    tuned = _weights(result.last_model)
    for key in ("ds_net.first_conv.weight", "fusion_dnn.weight", "mil_attn_w.weight"):
        assert torch.equal(tuned[key], start[key])  # lr 0: the parameters stay those of the checkpoint
    fresh = _weights(_train(micro_split, tmp_path / "scratch", _options(micro_config, epochs=1, lr=0.0)).last_model)
    assert not torch.equal(fresh["fusion_dnn.weight"], start["fusion_dnn.weight"])

    broken = dict(start)
    broken.pop("fusion_dnn.bias")
    torch.save(broken, tmp_path / "broken.p")
    with pytest.raises(WeightsError, match=r"broken\.p.*1 missing.*fusion_dnn\.bias"):
        _train(micro_split, tmp_path / "bad", _options(micro_config, epochs=1, init=str(tmp_path / "broken.p")))
    with pytest.raises(WeightsError, match="shape"):  # an official-size checkpoint into the micro config
        torch.save(GMIC(replace(micro_config, global_channels=8)).state_dict(), tmp_path / "other.p")
        _train(micro_split, tmp_path / "bad2", _options(micro_config, epochs=1, init=str(tmp_path / "other.p")))


def test_bad_inputs_are_clear_errors(micro_split, micro_config, tmp_path):
    no_centres = [Exam(e.images, e.horizontal_flip, e.cancer_label,
                       {k: v for k, v in e.image_metadata.items() if k != "best_center"}) for e in micro_split.exams]
    save_exam_list(no_centres, tmp_path / "cropped_only.pkl")
    with pytest.raises(ExamListError, match=r"cropped_only\.pkl: image .* no 'best_center'"):
        train_gmic(micro_split.cropped_dir, tmp_path / "cropped_only.pkl", micro_split.exams, tmp_path / "o",
                   _options(micro_config))
    unlabelled = [Exam(e.images, e.horizontal_flip, None, e.image_metadata) for e in micro_split.exams]
    save_exam_list(unlabelled, tmp_path / "unlabelled.pkl")
    with pytest.raises(ExamListError, match=r"unlabelled\.pkl: exam 0 has no 'cancer_label'"):
        train_gmic(micro_split.cropped_dir, micro_split.exams, tmp_path / "unlabelled.pkl", tmp_path / "o",
                   _options(micro_config))


def test_single_class_validation_reports_undefined_auroc(micro_split, micro_config, tmp_path, capsys):
    negatives = [Exam(e.images, e.horizontal_flip, {k: 0 for k in e.cancer_label}, e.image_metadata)
                 for e in micro_split.exams[:2]]
    result = train_gmic(micro_split.cropped_dir, micro_split.exams, negatives, tmp_path / "o",
                        _options(micro_config, epochs=1))
    assert result.log[0]["val_auroc_malignant"] is None and result.log[0]["val_auroc_benign"] is None
    assert "undefined" in capsys.readouterr().err
    assert result.best_model.is_file()  # the last epoch stands in when no metric is defined
    with open(tmp_path / "o" / "training_log.csv", newline="") as f:
        assert next(csv.DictReader(f))["val_auroc_malignant"] == ""


def test_train_command_line(micro_split, micro_config, tmp_path, monkeypatch):
    from mammoscreen.cli import main
    from mammoscreen.train import configs

    monkeypatch.setitem(configs.CONFIGS, "micro-test", micro_config)
    save_exam_list(micro_split.exams, tmp_path / "data.pkl")
    args = ["train", "--model", "gmic", "--images", str(micro_split.cropped_dir), "--exam-list",
            str(tmp_path / "data.pkl"), "--val-exam-list", str(tmp_path / "data.pkl"), "--output-dir",
            str(tmp_path / "o"), "--config", "micro-test", "--epochs", "1", "--batch-size", "8", "--balanced",
            "--quiet", "--seed", "1"]
    assert main(args) == 0
    assert (tmp_path / "o" / "best_model.p").is_file()
    assert main(args[:-2] + ["--seed", "2"]) == 2  # output dir holds a run: refuses without --resume
    with pytest.raises(SystemExit) as exited:  # refused while parsing (issue 16.2)
        main(args[:5] + ["--exam-list", str(tmp_path / "missing.pkl")] + args[7:])
    assert exited.value.code == 2


def test_mixed_precision_on_the_cpu_trains(micro_split, micro_config, tmp_path):
    result = _train(micro_split, tmp_path / "amp", _options(micro_config, epochs=1, amp="on"))
    state = _weights(result.last_model)
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())  # stored in full precision
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    with pytest.raises(TrainingError, match="amp"):
        _train(micro_split, tmp_path / "bad", _options(micro_config, epochs=1, amp="maybe"))
