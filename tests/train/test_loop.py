"""The training loop, step by step, on a nano GMIC and twelve hand-made images (a run takes a fraction of a second).

Every expected value is recomputed outside the loop: the batches of an epoch from the data pipeline and the
sampler, the loss with autograd, Adam's update (Kingma & Ba 2015, algorithm 1, with PyTorch's L2
``weight_decay`` added to the gradient) in float64 NumPy, the validation numbers from the saved weights. These are
the tests ``tools/mutation.sh loop`` runs against every mutant of ``train/loop.py``, so they stay small;
``test_training.py`` and ``test_learning.py`` train the micro GMIC on synthetic mammograms.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import re
import time
import warnings
from dataclasses import fields, replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mammoscreen.core.files import sha256_file
from mammoscreen.data.exam_fingerprint import exam_list_fingerprint
from mammoscreen.data.exams import Exam, ExamListError, save_exam_list
from mammoscreen.data.images import write_png
from mammoscreen.evaluate.metrics import roc_auc
from mammoscreen.models.gmic.modeling import GMIC, GMICConfig
from mammoscreen.models.weights import WeightsError
from mammoscreen.train import TrainOptions, train_gmic
from mammoscreen.train import loop as loop_module
from mammoscreen.train.configs import augmentation_noise
from mammoscreen.train.data import GMICImages, labelled_images
from mammoscreen.train.losses import gmic_loss
from mammoscreen.train.loop import (LOG_COLUMNS, TIMING_COLUMNS, TrainingError, auroc_or_none,
                                    read_training_checkpoint, selection_score)
from mammoscreen.train.sampler import epoch_indices

# The smallest GMIC the patch retrieval accepts: a 4 x 3 saliency map, one 32 x 32 patch, two channels.
NANO = GMICConfig(input_size=(128, 96), percent_t=0.1, num_patches=1, patch_size=(32, 32), global_channels=2,
                  global_blocks=(1, 1, 1, 1, 1), global_strides=(1, 2, 2, 2, 1), local_channels=2,
                  local_blocks=(1, 1, 1, 1), attention_dim=2)
VIEWS = ("L-CC", "R-CC", "L-MLO", "R-MLO")
# Exam 0 has a benign left and a malignant right breast, exams 1 and 2 nothing: both classes occur among the
# images, and balanced sampling takes exam 0 and one of the other two.
LABELS = [{"left_benign": 1, "right_benign": 0, "left_malignant": 0, "right_malignant": 1},
          {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 0},
          {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 0}]
# Adam's defaults in the loop (torch.optim.Adam)
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    """(images directory, exams): 16-bit noise images, cropped-exam-list style, with a centre for NANO's window."""
    root = tmp_path_factory.mktemp("nano")
    rng = np.random.default_rng(5)
    exams = []
    for e, labels in enumerate(LABELS):
        for view in VIEWS:
            write_png(root / f"e{e}_{view}.png", rng.integers(0, 65535, (160, 120)).astype(np.uint16))
        exams.append(Exam({v: [f"e{e}_{v}"] for v in VIEWS}, "NO", dict(labels),
                          {"best_center": {v: [(80 + e, 60 - e)] for v in VIEWS}}))
    return root, exams


def _options(**kw):
    return TrainOptions(**{**dict(config=NANO, epochs=1, lr=1e-3, batch_size=4, seed=3, progress=False), **kw})


def _train(nano, out, options, **kw):
    return train_gmic(nano[0], nano[1], nano[1], out, options, **kw)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _start(seed):
    """The loop's initial weights without --init: GMIC(config) after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in GMIC(NANO).state_dict().items()}


def _trainable():
    return [name for name, p in GMIC(NANO).named_parameters() if p.requires_grad]


def _epoch_batches(nano, options, epoch):
    """The training batches of ``epoch`` in the loop's order: the sampler's indices, augmented inputs."""
    images = labelled_images(nano[1], "training")
    dataset = GMICImages(images, nano[0], NANO.input_size, augment=True, noise=augmentation_noise(NANO),
                         seed=options.seed)
    dataset.set_epoch(epoch)
    order = epoch_indices(images, epoch, options.seed, options.balanced)
    for begin in range(0, len(order), options.batch_size):
        items = [dataset[i] for i in order[begin:begin + options.batch_size]]
        yield torch.stack([x for x, _, _ in items]), torch.stack([y for _, y, _ in items])


def _adam(theta, m, v, grads, step, lr, weight_decay=0.0):
    """One step of Adam (algorithm 1 of Kingma & Ba) in float64, in place, with PyTorch's L2 weight decay."""
    for n in theta:
        g = grads[n] + weight_decay * theta[n]
        m[n] = BETA1 * m[n] + (1 - BETA1) * g
        v[n] = BETA2 * v[n] + (1 - BETA2) * g * g
        theta[n] = theta[n] - lr * (m[n] / (1 - BETA1 ** step)) / (np.sqrt(v[n] / (1 - BETA2 ** step)) + EPS)


def _validation_inputs(nano):
    dataset = GMICImages(labelled_images(nano[1], "validation"), nano[0], NANO.input_size)
    return torch.stack([dataset[i][0] for i in range(len(dataset))]), torch.stack([dataset[i][1]
                                                                                   for i in range(len(dataset))])


def _model(state, train):
    model = GMIC(NANO)
    model.load_state_dict(state)
    model.train(train)
    return model


# --------------------------------------------------------------------------------------------------
# The optimiser step
# --------------------------------------------------------------------------------------------------

def test_one_adam_step_moves_every_weight_by_the_learning_rate_against_its_gradient(nano, tmp_path):
    # Adam's first step is lr * g / (|g| + eps) (m_hat = g, v_hat = g^2): lr against the gradient's sign.
    options = _options(batch_size=12, lr=1e-3)
    start = _start(options.seed)
    (x, y), = _epoch_batches(nano, options, 1)
    model = _model(start, train=True)
    gmic_loss(model(x), y, options.beta).total.backward()
    trained = _weights(_train(nano, tmp_path / "run", options).last_model)
    moved = total = 0
    for name, p in model.named_parameters():
        g = p.grad.double().numpy()
        expected = start[name].double().numpy() - options.lr * g / (np.abs(g) + EPS)
        np.testing.assert_allclose(trained[name].double().numpy(), expected, rtol=0, atol=1e-3 * options.lr,
                                   err_msg=name)
        big = np.abs(g) > 1e-5  # far above eps: the step is lr within 0.1 %
        np.testing.assert_allclose(np.abs(trained[name].double().numpy() - start[name].double().numpy())[big],
                                   options.lr, rtol=2e-3, err_msg=name)
        moved, total = moved + int(big.sum()), total + g.size
    assert moved > total / 2


def test_every_step_is_adam_on_the_batches_of_its_epoch(nano, tmp_path):
    """Two epochs of two batches (balanced sampling: 8 of the 12 images), weight decay, the 'mean' saliency
    norm and label smoothing: the weights after four steps, the BatchNorm statistics and the logged losses."""
    options = _options(epochs=2, lr=2e-3, weight_decay=0.01, beta=0.05, saliency_reduction="mean",
                       label_smoothing=0.2, balanced=True)
    result = _train(nano, tmp_path / "run", options)

    start = _start(options.seed)
    names = _trainable()
    theta = {n: start[n].double().numpy() for n in names}
    m = {n: 0.0 for n in names}
    v = {n: 0.0 for n in names}
    model = _model(start, train=True)  # its BatchNorm statistics follow the same forward passes as the loop's
    step = 0
    for epoch in (1, 2):
        losses, sizes = [], []
        for x, y in _epoch_batches(nano, options, epoch):
            step += 1
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(torch.from_numpy(theta[name]))
            model.zero_grad(set_to_none=True)
            loss = gmic_loss(model(x), y, options.beta, options.saliency_reduction, options.label_smoothing)
            loss.total.backward()
            losses.append(loss.as_floats())
            sizes.append(len(x))
            grads = {n: p.grad.double().numpy() for n, p in model.named_parameters()}
            _adam(theta, m, v, grads, step, options.lr, options.weight_decay)
        assert sizes == [4, 4]
        entry = result.log[epoch - 1]
        assert entry["train_images"] == 8
        for key, column in (("loss", "train_loss"), ("global_bce", "train_global_bce"),
                            ("local_bce", "train_local_bce"), ("fusion_bce", "train_fusion_bce"),
                            ("saliency_l1", "train_saliency_l1")):
            assert entry[column] == pytest.approx(np.mean([part[key] for part in losses]), rel=1e-5), column

    trained = _weights(result.last_model)
    for n in names:
        np.testing.assert_allclose(trained[n].double().numpy(), theta[n], rtol=0, atol=1e-3 * options.lr, err_msg=n)
    # Four forward passes in training mode and none in validation: the running statistics match ours.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            assert int(trained[key]) == 4, key
        elif key not in names:
            np.testing.assert_allclose(trained[key].numpy(), value.numpy(), rtol=1e-3, atol=1e-5, err_msg=key)


def test_gradients_of_one_batch_do_not_leak_into_the_next(nano, tmp_path):
    # Three batches (5, 5, 2) in one epoch: the loop's weights equal Adam over the
    # batches' own gradients, not over their running sum (what a missing zero_grad computes).
    options = _options(batch_size=5, lr=1e-3)
    start = _start(options.seed)
    names = _trainable()
    theta = {n: start[n].double().numpy() for n in names}
    m = {n: 0.0 for n in names}
    v = {n: 0.0 for n in names}
    model = _model(start, train=True)
    for step, (x, y) in enumerate(_epoch_batches(nano, options, 1), start=1):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(torch.from_numpy(theta[name]))
        model.zero_grad(set_to_none=True)
        gmic_loss(model(x), y, options.beta).total.backward()
        _adam(theta, m, v, {n: p.grad.double().numpy() for n, p in model.named_parameters()}, step, options.lr)
    assert step == 3
    trained = _weights(_train(nano, tmp_path / "run", options).last_model)
    for n in names:
        np.testing.assert_allclose(trained[n].double().numpy(), theta[n], rtol=0, atol=1e-3 * options.lr, err_msg=n)


def test_a_learning_rate_of_zero_logs_the_batch_weighted_losses_of_the_start_weights(nano, tmp_path):
    # lr 0: every batch sees the start weights, so each logged training number is the mean over the epoch's
    # images of the per-batch values weighted by the batch sizes (5, 5, 2).
    options = _options(batch_size=5, lr=0.0, beta=0.01, saliency_reduction="mean", label_smoothing=0.1)
    start = _start(options.seed)
    result = _train(nano, tmp_path / "run", options)
    parts, sizes = [], []
    for x, y in _epoch_batches(nano, options, 1):
        with torch.no_grad():
            out = _model(start, train=True)(x)
        parts.append(gmic_loss(out, y, options.beta, options.saliency_reduction, options.label_smoothing).as_floats())
        sizes.append(len(x))
    assert sizes == [5, 5, 2]
    entry = result.log[0]
    assert entry["train_images"] == 12
    for key in ("loss", "global_bce", "local_bce", "fusion_bce", "saliency_l1"):
        expected = sum(p[key] * n for p, n in zip(parts, sizes)) / 12
        assert entry["train_loss" if key == "loss" else f"train_{key}"] == pytest.approx(expected, rel=1e-5), key
    trained = _weights(result.last_model)
    for name in _trainable():
        assert torch.equal(trained[name], start[name]), name


def test_mixed_precision_on_the_cpu_runs_the_model_in_bfloat16(nano, tmp_path):
    options = _options(batch_size=12, lr=0.0, amp="on")
    start = _start(options.seed)
    result = _train(nano, tmp_path / "run", options)
    (x, y), = _epoch_batches(nano, options, 1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = _model(start, train=True)(x)
    expected = float(gmic_loss(out, y, options.beta).total)
    with torch.no_grad():
        full = float(gmic_loss(_model(start, train=True)(x), y, options.beta).total)
    assert abs(expected - full) > 1e-4  # bfloat16 is visibly coarser: the comparison below can tell them apart
    assert result.log[0]["train_loss"] == pytest.approx(expected, rel=1e-6)
    vx, vy = _validation_inputs(nano)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        val = float(gmic_loss(_model(_weights(result.last_model), train=False)(vx), vy, options.beta).total)
    assert result.log[0]["val_loss"] == pytest.approx(val, rel=1e-6)
    state = _weights(result.last_model)
    assert all(value.dtype in (torch.float32, torch.int64) for value in state.values())  # stored in full precision


def test_gradient_scaling_as_on_cuda_leaves_the_steps_unchanged_and_is_checkpointed(nano, tmp_path, monkeypatch):
    # On CUDA the loop scales the float16 loss with torch.amp.GradScaler. Here the scaler is switched on for the
    # CPU (the factory's answer replaced; PyTorch has CPU scalers): scaling the loss by 2**16 and unscaling the
    # gradients before the step is exact, so the weights are those of an unscaled run; the scaler's state goes
    # into the checkpoint and comes back on resume (its growth tracker counts the steps without overflow).
    options = _options(epochs=2, batch_size=5)
    plain = _weights(_train(nano, tmp_path / "plain", options).last_model)
    factory = loop_module._autocast_factory
    monkeypatch.setattr(loop_module, "_autocast_factory", lambda device, amp: (factory(device, amp)[0], True))

    def stop(entry):
        raise Stop

    with pytest.raises(Stop):
        _train(nano, tmp_path / "scaled", options, on_epoch_end=stop)
    scaler = read_training_checkpoint(tmp_path / "scaled" / "checkpoint.pt")["scaler"]
    assert (scaler["scale"], scaler["_growth_tracker"]) == (65536.0, 3)  # three batches: 5, 5, 2
    scaled = _weights(_train(nano, tmp_path / "scaled", options, resume=True).last_model)
    scaler = read_training_checkpoint(tmp_path / "scaled" / "checkpoint.pt")["scaler"]
    assert (scaler["scale"], scaler["_growth_tracker"]) == (65536.0, 6)
    for name in _trainable():
        torch.testing.assert_close(scaled[name], plain[name], rtol=0, atol=1e-7, msg=name)


def test_autocast_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    for amp in ("off", "auto"):
        autocast, scaler = loop_module._autocast_factory(cpu, amp)
        assert scaler is False
        with autocast():
            assert not torch.is_autocast_enabled("cpu")
    autocast, scaler = loop_module._autocast_factory(cpu, "on")
    assert scaler is False  # no gradient scaling for bfloat16
    with autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    for amp in ("auto", "on"):  # CUDA: float16 with a gradient scaler (the context is only built, not entered;
        autocast, scaler = loop_module._autocast_factory(cuda, amp)  # without CUDA, PyTorch warns and disables it)
        assert scaler is True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            context = autocast()
        assert (context.device, context.fast_dtype) == ("cuda", torch.float16)
    assert loop_module._autocast_factory(cuda, "off")[1] is False
    with pytest.raises(TrainingError, match=r"^amp must be 'auto', 'on' or 'off', got 'yes'$"):
        loop_module._autocast_factory(cpu, "yes")


# --------------------------------------------------------------------------------------------------
# Validation and model selection
# --------------------------------------------------------------------------------------------------

def test_validation_loss_and_auroc_are_those_of_the_saved_weights(nano, tmp_path):
    # Batches of 5, 5 and 2 validation images; the loss is the mean over images, without label smoothing (a
    # training setting), with the run's beta and saliency norm; AUROC of y_fusion per class.
    options = _options(batch_size=5, lr=1e-3, beta=0.02, saliency_reduction="mean", label_smoothing=0.3)
    result = _train(nano, tmp_path / "run", options)
    x, y = _validation_inputs(nano)
    with torch.no_grad():
        out = _model(_weights(result.last_model), train=False)(x)
    entry = result.log[0]
    assert entry["val_loss"] == pytest.approx(float(gmic_loss(out, y, 0.02, "mean").total), rel=1e-5)
    scores = out.y_fusion.numpy()
    assert entry["val_auroc_benign"] == pytest.approx(roc_auc(y[:, 0].numpy(), scores[:, 0]), abs=1e-12)
    assert entry["val_auroc_malignant"] == pytest.approx(roc_auc(y[:, 1].numpy(), scores[:, 1]), abs=1e-12)
    assert y[:, 0].sum() == 2 and y[:, 1].sum() == 2


def test_evaluate_returns_the_scores_and_labels_in_order(nano):
    model = _model(_start(1), train=True)
    dataset = GMICImages(labelled_images(nano[1], "validation"), nano[0], NANO.input_size)
    loader = loop_module._loader(dataset, range(len(dataset)), 5, 0)
    autocast, _ = loop_module._autocast_factory(torch.device("cpu"), "off")
    result = loop_module.evaluate(model, loader, torch.device("cpu"), 0.5, "sum", autocast)
    assert not model.training  # evaluation mode: BatchNorm's running statistics, no update
    x, y = _validation_inputs(nano)
    with torch.no_grad():
        out = model(x)
    np.testing.assert_allclose(result["scores"], out.y_fusion.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(result["labels"], y.numpy())
    assert result["val_loss"] == pytest.approx(float(gmic_loss(out, y, 0.5, "sum").total), rel=1e-5)


def test_the_loader_keeps_the_given_order_and_the_last_short_batch(nano):
    dataset = GMICImages(labelled_images(nano[1], "training"), nano[0], NANO.input_size)
    order = [7, 2, 11, 0, 5]
    batches = list(loop_module._loader(dataset, order, 2, 0))
    assert [b[2].tolist() for b in batches] == [[7, 2], [11, 0], [5]]
    assert loop_module._loader(dataset, order, 2, 2).num_workers == 2  # --workers reaches the DataLoader


def test_auroc_or_none():
    assert auroc_or_none(np.array([]), np.array([])) is None
    assert auroc_or_none(np.array([1, 1]), np.array([0.2, 0.3])) is None
    assert auroc_or_none(np.array([0, 0, 0]), np.array([0.2, 0.3, 0.1])) is None
    assert auroc_or_none([0, 1, 1, 0], np.array([0.1, 0.8, 0.4, 0.5])) == 0.75  # 3 of 4 pairs ordered


def test_selection_score():
    entry = {"val_loss": 0.25, "val_auroc_benign": 0.6, "val_auroc_malignant": 0.9}
    assert selection_score(entry, "val_loss") == -0.25
    assert selection_score(entry, "malignant_auroc") == 0.9
    assert selection_score(entry, "auroc_mean") == pytest.approx(0.75)
    assert selection_score({**entry, "val_auroc_benign": None}, "auroc_mean") == 0.9
    assert selection_score({**entry, "val_auroc_malignant": None}, "auroc_mean") == 0.6
    assert selection_score({**entry, "val_auroc_malignant": None}, "malignant_auroc") is None
    assert selection_score({**entry, "val_auroc_benign": None, "val_auroc_malignant": None}, "auroc_mean") is None


def test_the_best_epoch_is_the_highest_score_and_its_weights_are_kept(nano, tmp_path):
    snapshots = {}

    def keep(entry):
        snapshots[entry["epoch"]] = _weights(tmp_path / "run" / "last_model.p")

    options = _options(epochs=3, lr=5e-3, select_metric="val_loss")
    result = _train(nano, tmp_path / "run", options, on_epoch_end=keep)
    losses = [e["val_loss"] for e in result.log]
    running_best = [i for i in range(3) if losses[i] < min(losses[:i], default=np.inf)]
    assert [e["best"] for e in result.log] == [i in running_best for i in range(3)]
    best = int(np.argmin(losses)) + 1
    assert result.best_epoch == best
    assert result.log[best - 1]["best"]
    for key, value in _weights(result.best_model).items():
        assert torch.equal(value, snapshots[best][key]), key
    for key, value in _weights(result.last_model).items():
        assert torch.equal(value, snapshots[3][key]), key
    for name, epoch in (("best_model.json", best), ("last_model.json", 3)):
        sidecar = json.loads((tmp_path / "run" / name).read_text())
        assert sidecar["epoch"] == epoch
        assert sidecar["validation"] == {k: result.log[epoch - 1][k] for k in ("val_loss", "val_auroc_benign",
                                                                               "val_auroc_malignant")}
        assert GMICConfig.from_dict(sidecar["gmic_config"]) == NANO
    checkpoint = read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["best_epoch"] == best and checkpoint["best_score"] == -losses[best - 1]
    assert json.loads((tmp_path / "run" / "training_log.json").read_text())["best_epoch"] == best


def test_a_tie_keeps_the_earlier_epoch(nano, tmp_path):
    # Validation on one mirror-symmetric image shown as a left (benign) and a right (malignant) breast: after
    # mirroring both inputs are the same, so both scores tie and every epoch's AUROC is exactly 0.5.
    half = np.random.default_rng(1).integers(0, 65535, (160, 60)).astype(np.uint16)
    images = tmp_path / "images"
    images.mkdir()
    write_png(images / "sym.png", np.concatenate([half, half[:, ::-1]], axis=1))
    for png in nano[0].glob("*.png"):
        (images / png.name).write_bytes(png.read_bytes())
    exam = Exam({"L-CC": ["sym"], "R-CC": ["sym"], "L-MLO": [], "R-MLO": []}, "NO",
                {"left_benign": 1, "right_benign": 0, "left_malignant": 0, "right_malignant": 1},
                {"best_center": {"L-CC": [(80, 60)], "R-CC": [(80, 60)]}})
    dataset = GMICImages(labelled_images([exam], "validation"), images, NANO.input_size)
    assert torch.equal(dataset[0][0], dataset[1][0])
    result = train_gmic(images, nano[1], [exam], tmp_path / "run", _options(epochs=2, lr=1e-3))
    assert [(e["val_auroc_benign"], e["val_auroc_malignant"]) for e in result.log] == [(0.5, 0.5), (0.5, 0.5)]
    assert [e["best"] for e in result.log] == [True, False] and result.best_epoch == 1


def test_without_a_defined_metric_the_last_epoch_is_the_best(nano, tmp_path):
    negatives = [Exam(e.images, e.horizontal_flip, {k: 0 for k in e.cancer_label}, e.image_metadata)
                 for e in nano[1]]
    seen = []

    def look(entry):
        seen.append((entry["epoch"], (tmp_path / "run" / "best_model.p").is_file()))

    result = train_gmic(nano[0], nano[1], negatives, tmp_path / "run", _options(epochs=2), on_epoch_end=look)
    assert seen == [(1, False), (2, True)]
    assert [e["best"] for e in result.log] == [False, True] and result.best_epoch == 2
    assert result.log[0]["val_auroc_benign"] is None and result.log[0]["val_auroc_malignant"] is None
    for key, value in _weights(result.best_model).items():
        assert torch.equal(value, _weights(result.last_model)[key]), key


# --------------------------------------------------------------------------------------------------
# Checkpoints and resuming
# --------------------------------------------------------------------------------------------------

def test_resume_continues_bit_exactly_and_the_checkpoint_holds_the_state(nano, tmp_path, capsys):
    # Selected by validation loss, which here is lower after epoch 1 than after epoch 2: the resumed run must
    # remember epoch 1's score to keep it as the best.
    options = _options(epochs=2, batch_size=5, select_metric="val_loss")
    full = _train(nano, tmp_path / "full", options)

    def stop(entry):
        raise Stop

    with pytest.raises(Stop):
        _train(nano, tmp_path / "cut", options, on_epoch_end=stop)
    state = read_training_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert state["epoch"] == 1 and [e["epoch"] for e in state["log"]] == [1]
    assert {float(s["step"]) for s in state["optimizer"]["state"].values()} == {3.0}  # three batches: 5, 5, 2
    assert state["optimizer"]["param_groups"][0]["lr"] == options.lr
    assert state["scaler"] == {}  # no gradient scaling on the CPU: a disabled GradScaler saves nothing
    assert torch.equal(state["rng"]["torch"], torch.get_rng_state())  # the state when the epoch ended
    assert state["best_epoch"] == 1 and state["best_score"] == -state["log"][0]["val_loss"]
    capsys.readouterr()
    resumed = _train(nano, tmp_path / "cut", options, resume=True)
    err = capsys.readouterr().err
    assert "already done" not in err  # one epoch was still to do
    assert f"malignant {resumed.log[1]['val_auroc_malignant']:.4f}\n" in err  # not marked *best*
    assert [e["epoch"] for e in resumed.log] == [1, 2] and resumed.best_epoch == full.best_epoch == 1
    assert resumed.log[1]["val_loss"] > resumed.log[0]["val_loss"] and not resumed.log[1]["best"]
    for path in ("last_model.p", "best_model.p"):
        a, b = _weights(tmp_path / "full" / path), _weights(tmp_path / "cut" / path)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), path

    def without_timing(log):
        return [{k: v for k, v in e.items() if k not in TIMING_COLUMNS} for e in log]

    assert without_timing(full.log) == without_timing(resumed.log)
    final = read_training_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert final["epoch"] == 2 and {float(s["step"]) for s in final["optimizer"]["state"].values()} == {6.0}


def test_resuming_a_finished_run_restores_its_random_state_and_trains_nothing(nano, tmp_path, capsys):
    options = _options(epochs=1)
    _train(nano, tmp_path / "run", options)
    state = read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")
    before = (tmp_path / "run" / "last_model.p").read_bytes()
    torch.manual_seed(12345)
    capsys.readouterr()
    result = _train(nano, tmp_path / "run", options, resume=True)
    assert f"all 1 epochs are already done in {tmp_path / 'run'}" in capsys.readouterr().err
    assert torch.equal(torch.get_rng_state(), state["rng"]["torch"])
    assert (tmp_path / "run" / "last_model.p").read_bytes() == before
    assert [e["epoch"] for e in result.log] == [1] and result.best_epoch == state["best_epoch"]
    assert result.best_model == tmp_path / "run" / "best_model.p"
    assert result.last_model == tmp_path / "run" / "last_model.p"
    assert result.output_dir == tmp_path / "run"
    (tmp_path / "run" / "best_model.p").unlink()  # e.g. a run of an older version that wrote none
    with pytest.raises(TrainingError, match=rf"^{re.escape(str(tmp_path / 'run'))}: no best model was written$"):
        _train(nano, tmp_path / "run", options, resume=True)


def test_a_resumed_run_ignores_the_stored_config_name(nano, tmp_path):
    # Older checkpoints stored the config's name among the settings; it is only a label of the config values.
    options = _options(epochs=1)
    _train(nano, tmp_path / "run", options)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    state["settings"]["config_name"] = "some older name"
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    assert [e["epoch"] for e in _train(nano, tmp_path / "run", replace(options, epochs=2), resume=True).log] == [1, 2]


def test_resume_refusals(nano, tmp_path):
    options = _options(epochs=1)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"^--resume: no .*checkpoint\.pt; start without --resume$"):
        _train(nano, out, options, resume=True)
    _train(nano, out, options)
    with pytest.raises(TrainingError, match=r"already holds a training run \(checkpoint\.pt\); pass --resume to "
                                            r"continue it or choose another output directory$"):
        _train(nano, out, options)
    with pytest.raises(TrainingError, match=r"made with different settings or data \(lr, seed\); use the original"):
        _train(nano, out, replace(options, lr=0.5, seed=9), resume=True)
    save_exam_list(nano[1], tmp_path / "all.pkl")
    save_exam_list(nano[1][:2], tmp_path / "two.pkl")
    train_gmic(nano[0], nano[1], tmp_path / "all.pkl", tmp_path / "files", options)
    with pytest.raises(TrainingError, match=r"different settings or data \(val_exam_list\)"):
        train_gmic(nano[0], nano[1], tmp_path / "two.pkl", tmp_path / "files", options, resume=True)
    # the same file resumes (here: nothing left to do)
    assert [e["epoch"] for e in train_gmic(nano[0], nano[1], tmp_path / "all.pkl", tmp_path / "files", options,
                                           resume=True).log] == [1]
    # Settings that only one side has (an option of another version) are named as well
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    torch.save({**state, "settings": {**state["settings"], "an_old_option": 1}}, out / "checkpoint.pt")
    with pytest.raises(TrainingError, match=r"different settings or data \(an_old_option\); use"):
        _train(nano, out, options, resume=True)
    torch.save(state, out / "checkpoint.pt")
    # A checkpoint of another architecture with the same settings: refused in one line, not a traceback.
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["model"] = {k: v for k, v in state["model"].items() if k != "fusion_dnn.bias"}
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(TrainingError, match=r"does not fit this model and optimiser \(RuntimeError: Error"):
        _train(nano, out, options, resume=True)


def test_resume_checks_the_content_of_exam_lists_given_in_memory(nano, tmp_path):
    # A list passed through the Python API has no file to hash: its content decides, as a file's bytes do.
    options = _options(epochs=1)
    out = tmp_path / "run"
    _train(nano, out, options)
    relabelled = copy.deepcopy(nano[1])
    relabelled[1].cancer_label["left_malignant"] = 1  # one label flipped
    fewer = copy.deepcopy(nano[1])
    fewer[2].images["R-MLO"] = []  # one image removed (with its centre)
    del fewer[2].image_metadata["best_center"]["R-MLO"]
    for changed in (relabelled, fewer):
        for train, val, key in ((changed, nano[1], "train_exam_list"), (nano[1], changed, "val_exam_list")):
            with pytest.raises(TrainingError, match=rf"^--resume: {re.escape(str(out / 'checkpoint.pt'))} was made "
                                                    rf"with different settings or data \({key}\); use the original "
                                                    r"options or a new output directory$"):
                train_gmic(nano[0], train, val, out, replace(options, epochs=2), resume=True)
    assert [e["epoch"] for e in read_training_checkpoint(out / "checkpoint.pt")["log"]] == [1]  # nothing trained
    # The same content in other objects resumes, and gives the weights of an uninterrupted run.
    resumed = train_gmic(nano[0], copy.deepcopy(nano[1]), copy.deepcopy(nano[1]), out, replace(options, epochs=2),
                         resume=True)
    assert [e["epoch"] for e in resumed.log] == [1, 2]
    _train(nano, tmp_path / "straight", replace(options, epochs=2))
    a, b = _weights(out / "last_model.p"), _weights(tmp_path / "straight" / "last_model.p")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_of_an_unfingerprinted_in_memory_list_is_refused_with_the_reason(nano, tmp_path):
    # Older versions stored the word 'in-memory' for such a list: what it held cannot be checked any more.
    options = _options(epochs=1)
    out = tmp_path / "run"
    _train(nano, out, options)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["settings"]["val_exam_list"] = "in-memory"
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(TrainingError, match=r"different settings or data \(val_exam_list\); use the original options "
                                            r"or a new output directory \(it was written by an older version that "
                                            r"did not fingerprint exam lists given in memory, so they cannot be "
                                            r"compared\)$"):
        _train(nano, out, replace(options, epochs=2), resume=True)


def test_a_resume_error_without_a_message_is_still_one_line(nano, tmp_path, monkeypatch):
    # e.g. a bare KeyError from a state dict: the message names the type and stays one line
    options = _options(epochs=1)
    _train(nano, tmp_path / "run", options)

    def refuse(self, state):
        raise KeyError

    monkeypatch.setattr(torch.optim.Adam, "load_state_dict", refuse)
    with pytest.raises(TrainingError, match=r"does not fit this model and optimiser \(KeyError: \)$"):
        _train(nano, tmp_path / "run", replace(options, epochs=2), resume=True)


def test_read_training_checkpoint_refuses_what_cannot_be_resumed(tmp_path):
    good = {"epoch": 1, "model": {}, "optimizer": {}, "scaler": {}, "rng": {"torch": torch.get_rng_state()},
            "log": [], "settings": {}}
    path = tmp_path / "checkpoint.pt"
    torch.save(good, path)
    assert read_training_checkpoint(path)["epoch"] == 1
    torch.save([1, 2], path)
    with pytest.raises(TrainingError, match=r"^--resume: .*checkpoint\.pt is not a training checkpoint of "
                                            r"'mammoscreen train' \(it holds a list, not a dict\)$"):
        read_training_checkpoint(path)
    for key, kind in (("epoch", "int"), ("model", "dict"), ("optimizer", "dict"), ("scaler", "dict"),
                      ("rng", "dict"), ("log", "list"), ("settings", "dict")):
        for bad in ({k: v for k, v in good.items() if k != key}, {**good, key: "text"}):
            torch.save(bad, path)
            with pytest.raises(TrainingError, match=rf"^--resume: .* \(field '{key}' is missing or not a {kind}\)$"):
                read_training_checkpoint(path)
    torch.save({**good, "epoch": True}, path)  # a bool is an int to isinstance, not an epoch
    with pytest.raises(TrainingError, match=r"field 'epoch'"):
        read_training_checkpoint(path)
    torch.save({**good, "rng": {"torch": [1, 2]}}, path)
    with pytest.raises(TrainingError, match=r"^--resume: .* has no random-number-generator state; cannot resume "
                                            r"bit-exactly$"):
        read_training_checkpoint(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match=r"^--resume: .*checkpoint\.pt: not a loadable PyTorch training checkpoint "
                                            r"\(not a readable pickle"):
        read_training_checkpoint(path)
    with pytest.raises(TrainingError, match=r"^--resume: training checkpoint not found: .*missing\.pt$"):
        read_training_checkpoint(tmp_path / "missing.pt")


def test_random_state_round_trip():
    state = loop_module._rng_state()
    assert set(state) == ({"torch", "cuda"} if torch.cuda.is_available() else {"torch"})
    first = torch.rand(3)
    loop_module._set_rng_state(state)
    assert torch.equal(torch.rand(3), first)
    loop_module._set_rng_state({**state, "cuda": "ignored without CUDA"} if not torch.cuda.is_available() else state)
    assert torch.equal(torch.rand(3), first)


def test_the_cuda_generators_are_saved_and_restored_when_there_is_cuda(monkeypatch):
    # Without a GPU here, torch.cuda's generator calls are replaced by recorders: what matters is that the loop
    # hands them the checkpoint's states.
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["gpu 0 state", "gpu 1 state"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = loop_module._rng_state()
    assert state["cuda"] == ["gpu 0 state", "gpu 1 state"] and torch.equal(state["torch"], torch.get_rng_state())
    loop_module._set_rng_state({"torch": state["torch"], "cuda": ["saved 0", "saved 1"]})
    assert restored == [["saved 0", "saved 1"]]
    loop_module._set_rng_state({"torch": state["torch"]})  # a checkpoint written without CUDA
    assert restored == [["saved 0", "saved 1"]]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CUDA checkpoint resumed on a CPU
    loop_module._set_rng_state({"torch": state["torch"], "cuda": ["saved 0", "saved 1"]})
    assert restored == [["saved 0", "saved 1"]]


# --------------------------------------------------------------------------------------------------
# Initial weights, settings, inputs
# --------------------------------------------------------------------------------------------------

def test_initial_weights_come_from_the_seed_or_the_given_checkpoint(nano, tmp_path, monkeypatch):
    a = loop_module._initial_model(_options(seed=4), NANO).state_dict()
    assert all(torch.equal(a[k], v) for k, v in _start(4).items())
    b = loop_module._initial_model(_options(seed=5), NANO).state_dict()
    assert not torch.equal(a["fusion_dnn.weight"], b["fusion_dnn.weight"])
    torch.save(b, tmp_path / "start.p")
    loaded = loop_module._initial_model(_options(seed=4, init=str(tmp_path / "start.p")), NANO).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in b.items())
    # 'official' resolves the official GMIC model 1 (replaced here by the file above)
    from mammoscreen.models import weights
    from mammoscreen.models.gmic.predictor import GMIC_SPEC

    calls = []
    monkeypatch.setattr(weights, "resolve_weight_path", lambda *args: calls.append(args) or tmp_path / "start.p")
    official = loop_module._initial_model(_options(seed=4, init="official"), NANO).state_dict()
    assert calls == [(GMIC_SPEC, "official", "1")]
    assert all(torch.equal(official[k], v) for k, v in b.items())
    torch.save({"fusion_dnn.weight": b["fusion_dnn.weight"]}, tmp_path / "partial.p")
    with pytest.raises(WeightsError, match="parameter names differ"):
        loop_module._initial_model(_options(init=str(tmp_path / "partial.p")), NANO)


def test_settings_record_what_determines_the_result(nano, tmp_path):
    options = _options(percent_t=0.3, workers=0, progress=False)
    settings = options.settings()
    assert set(settings) == {f.name for f in fields(TrainOptions)} - {"epochs", "progress", "workers"}
    assert settings["config"] == NANO.to_dict() and settings["lr"] == options.lr and settings["seed"] == 3
    save_exam_list(nano[1], tmp_path / "train.pkl")
    val_dir = tmp_path / "val_images"
    val_dir.mkdir()
    for png in nano[0].glob("e0_*.png"):
        (val_dir / png.name).write_bytes(png.read_bytes())
    result = train_gmic(nano[0], tmp_path / "train.pkl", nano[1][:1], tmp_path / "run", options,
                        val_images_dir=val_dir)
    stored = read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["settings"]
    config = NANO.with_percent_t(0.3)
    assert stored == {**settings, "config": config.to_dict(), "train_exam_list": sha256_file(tmp_path / "train.pkl"),
                      "val_exam_list": f"in-memory:sha256:{exam_list_fingerprint(nano[1][:1])}",
                      "images": str(nano[0].resolve()), "val_images": str(val_dir),
                      "augmentation_noise": list(augmentation_noise(config))}
    sidecar = json.loads((tmp_path / "run" / "last_model.json").read_text())
    assert GMICConfig.from_dict(sidecar["gmic_config"]) == config  # the model was built with the new percent_t
    logged = json.loads((tmp_path / "run" / "training_log.json").read_text())
    assert logged["settings"] == json.loads(json.dumps({**stored, "config_name": loop_module.config_name(config)}))
    assert logged["epochs"] == result.log and logged["best_epoch"] == result.best_epoch
    # The validation set is the one exam read from val_images_dir: four images, both classes
    assert result.log[0]["val_auroc_benign"] is not None and result.log[0]["val_auroc_malignant"] is not None


def test_bad_settings_and_directories_are_refused(nano, tmp_path):
    cases = [(_options(select_metric="accuracy"), TrainingError,
              r"^select_metric must be one of \('auroc_mean', 'malignant_auroc', 'val_loss'\), got 'accuracy'$"),
             (_options(epochs=0), TrainingError, r"^epochs and batch size must be at least 1$"),
             (_options(batch_size=0), TrainingError, r"^epochs and batch size must be at least 1$")]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            _train(nano, tmp_path / "run", options)
    # the limits themselves are allowed: one epoch of batches of one image (with 64-pixel patches, so that
    # BatchNorm sees more than one value per channel at the end of the local network)
    one = train_gmic(nano[0], nano[1][:1], nano[1][:1], tmp_path / "ok",
                     _options(epochs=1, batch_size=1, config=replace(NANO, patch_size=(64, 64))))
    assert one.log[0]["train_images"] == 4
    with pytest.raises(FileNotFoundError, match=r"^images directory not found: .*missing \(the cropped images from "
                                                r"'mammoscreen crop'\)$"):
        train_gmic(tmp_path / "missing", nano[1], nano[1], tmp_path / "run", _options())
    with pytest.raises(FileNotFoundError, match=r"^images directory not found: .*nothing here"):
        train_gmic(nano[0], nano[1], nano[1], tmp_path / "run", _options(), val_images_dir=tmp_path / "nothing here")
    negatives = [Exam(e.images, e.horizontal_flip, {k: 0 for k in e.cancer_label}, e.image_metadata)
                 for e in nano[1]]
    with pytest.raises(TrainingError, match=r"^balanced sampling needs at least one exam with a positive "
                                           r"\(benign or malignant\) label in the training exam list$"):
        train_gmic(nano[0], negatives, nano[1], tmp_path / "run", _options(balanced=True))
    assert not (tmp_path / "run").exists()  # refused before anything was written


NANO_BATCHNORM = (r"in training, BatchNorm needs more than one value per channel, and one image gives it one \(1 "
                  r"patch of 32x32 pixels, which the local network turns into a 1x1 feature map\)")


def test_a_batch_size_the_architecture_cannot_train_is_refused_up_front(nano, tmp_path):
    # NANO's one 32-pixel patch ends in a 1x1 map: one image gives BatchNorm one value per channel.
    with pytest.raises(TrainingError, match=rf"^batch size 1 \(--batch-size\) cannot train this architecture: "
                                            rf"{NANO_BATCHNORM}; use a batch size of 2 or more, or a config with "
                                            r"more or larger patches$"):
        _train(nano, tmp_path / "run", _options(batch_size=1, epochs=3))
    assert not (tmp_path / "run").exists()  # refused before anything was written
    # An epoch of a single image cannot make a batch of two: refused too, with or without balancing.
    single = [Exam({"L-CC": ["e0_L-CC"]}, "NO", dict(LABELS[0]), {"best_center": {"L-CC": [(80, 60)]}})]
    for balanced in (False, True):
        with pytest.raises(TrainingError, match=rf"^epoch 1 would train on 1 image\(s\), but this architecture "
                                                rf"needs at least 2 in a batch: {NANO_BATCHNORM}; add images to the "
                                                r"training exam list$"):
            train_gmic(nano[0], single, nano[1], tmp_path / "run", _options(batch_size=4, balanced=balanced))
    assert not (tmp_path / "run").exists()


def test_a_last_batch_of_one_image_joins_the_batch_before_where_batchnorm_needs_it(nano, tmp_path):
    # Twelve images in batches of 11 leave one; for NANO it joins the first batch: one step on all twelve
    # images in the epoch's order, exactly the run with batches of 12.
    joined = _train(nano, tmp_path / "b11", _options(batch_size=11))
    whole = _train(nano, tmp_path / "b12", _options(batch_size=12))
    assert joined.log[0]["train_images"] == 12 and joined.log[0]["train_loss"] == whole.log[0]["train_loss"]
    a, b = _weights(joined.last_model), _weights(whole.last_model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # With 64-pixel patches a single image is a valid batch: two steps (11 + 1 images), as before.
    config64 = replace(NANO, patch_size=(64, 64))
    split = _weights(_train(nano, tmp_path / "p64_11", _options(batch_size=11, config=config64)).last_model)
    one_step = _weights(_train(nano, tmp_path / "p64_12", _options(batch_size=12, config=config64)).last_model)
    assert not all(torch.equal(split[k], one_step[k]) for k in split)


def test_the_train_command_refuses_such_a_batch_size_in_one_line(nano, tmp_path, monkeypatch, capsys):
    from clirun import CliResult, assert_clean_error

    from mammoscreen.cli import main
    from mammoscreen.train import configs

    # The named configs all train on single images; a custom one reaches the command through CONFIGS.
    monkeypatch.setitem(configs.CONFIGS, "nano-test", NANO)
    save_exam_list(nano[1], tmp_path / "exams.pkl")
    status = main(["train", "--images", str(nano[0]), "--exam-list", str(tmp_path / "exams.pkl"), "--val-exam-list",
                   str(tmp_path / "exams.pkl"), "--output-dir", str(tmp_path / "run"), "--config", "nano-test",
                   "--batch-size", "1", "--quiet"])
    out = capsys.readouterr()
    result = CliResult(status, out.out, out.err, None)
    assert_clean_error(result, "train", mentions=["batch size 1 (--batch-size) cannot train this architecture",
                                                  "use a batch size of 2 or more"])
    assert status == 2 and len(out.err.strip().splitlines()) == 1 and out.out == ""
    assert not (tmp_path / "run").exists()


def test_a_bad_exam_list_is_named_in_the_message(nano, tmp_path):
    unlabelled = [Exam(e.images, e.horizontal_flip, None, e.image_metadata) for e in nano[1]]
    for train, val, source in ((unlabelled, nano[1], "training exam list"),
                               (nano[1], unlabelled, "validation exam list")):
        with pytest.raises(ExamListError, match=rf"^{source}: exam 0 has no 'cancer_label'"):
            train_gmic(nano[0], train, val, tmp_path / "run", _options())
    save_exam_list(unlabelled, tmp_path / "unlabelled.pkl")
    for train, val in ((tmp_path / "unlabelled.pkl", nano[1]), (nano[1], tmp_path / "unlabelled.pkl")):
        with pytest.raises(ExamListError, match=rf"^{re.escape(str(tmp_path / 'unlabelled.pkl'))}: exam 0 has no "):
            train_gmic(nano[0], train, val, tmp_path / "run", _options())


# --------------------------------------------------------------------------------------------------
# What the loop records
# --------------------------------------------------------------------------------------------------

def test_logs_and_messages(nano, tmp_path, capsys):
    capsys.readouterr()
    began = time.perf_counter()
    result = _train(nano, tmp_path / "run", _options(epochs=2, batch_size=5, progress=True))
    wall = time.perf_counter() - began
    err = capsys.readouterr().err
    for entry in result.log:
        epoch = entry["epoch"]
        line = (f"epoch {epoch}: train loss {entry['train_loss']:.4f}, val loss {entry['val_loss']:.4f}, AUROC benign "
                f"{entry['val_auroc_benign']:.4f}, malignant {entry['val_auroc_malignant']:.4f}"
                + (" *best*" if entry["best"] else ""))
        assert line + "\n" in err.replace("\r", "\n"), line
        # the progress bar: its name, its unit, the running mean of the loss and the speed at the end of the epoch
        # (images over the time since the epoch began, at most the epoch's logged seconds)
        bars = re.findall(rf"epoch {epoch}/2: [^\r\n]*img_s=([0-9.]+), loss={entry['train_loss']:.4f}\]", err)
        assert bars and float(bars[-1]) >= entry["train_images"] / entry["seconds"] * 0.99, bars
        assert entry["seconds"] == round(entry["seconds"], 3) and 0 < entry["seconds"] <= wall
        assert entry["images_per_second"] == round(entry["images_per_second"], 3)
        assert entry["images_per_second"] >= entry["train_images"] / entry["seconds"] * 0.99
        assert set(entry) == set(LOG_COLUMNS)
    assert "batch/s" in err or "s/batch" in err
    with open(tmp_path / "run" / "training_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows == [{k: str(e[k]) for k in LOG_COLUMNS} for e in result.log]
    assert b"\r" not in (tmp_path / "run" / "training_log.csv").read_bytes()  # plain newlines, not the csv default \r\n
    assert (tmp_path / "run" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    _train(nano, tmp_path / "quiet", _options(epochs=1, progress=False))
    assert "epoch 1/1" not in capsys.readouterr().err  # no progress bar when progress is off


def test_the_timing_columns_on_a_clock_that_ticks_70_ms_a_call(nano, tmp_path, monkeypatch, capsys):
    # The loop reads the clock when the epoch starts, after each batch, when training ends and when the epoch's
    # files are about to be written: with batches of 5, 5 and 2, training took 4 ticks and the epoch 5.
    ticks = itertools.count()
    monkeypatch.setattr(loop_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * 0.07))
    capsys.readouterr()
    entry = _train(nano, tmp_path / "run", _options(batch_size=5, progress=True)).log[0]
    assert entry["seconds"] == 0.35 and entry["images_per_second"] == round(12 / 0.28, 3) == 42.857
    # the progress bar's speed after each batch: 5 / 0.07, 10 / 0.14, 12 / 0.21 images per second
    assert re.findall(r"img_s=([0-9.]+)", capsys.readouterr().err)[-1] == "57.14"


def test_the_log_line_names_an_undefined_auroc(nano, tmp_path, capsys):
    negatives = [Exam(e.images, e.horizontal_flip, {k: 0 for k in e.cancer_label}, e.image_metadata)
                 for e in nano[1]]
    capsys.readouterr()
    out = tmp_path / "new" / "nested" / "run"  # created with its parents
    result = train_gmic(nano[0], nano[1], negatives, out, _options(epochs=1))
    entry = result.log[0]
    assert (f"epoch 1: train loss {entry['train_loss']:.4f}, val loss {entry['val_loss']:.4f}, AUROC benign "
            "undefined, malignant undefined (undefined: the validation set has one class only) *best*\n"
            ) in capsys.readouterr().err
    with open(out / "training_log.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["val_auroc_benign"] == "" and row["val_auroc_malignant"] == "" and row["best"] == "True"
    assert loop_module._fmt(float("nan")) == "undefined" and loop_module._fmt(0.123456) == "0.1235"
    assert loop_module._fmt(None) == "undefined"


def test_on_epoch_end_sees_each_entry_after_its_files_are_written(nano, tmp_path):
    seen = []

    def look(entry):
        state = read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")
        logged = json.loads((tmp_path / "run" / "training_log.json").read_text())
        seen.append((entry["epoch"], state["epoch"], len(logged["epochs"]), entry == state["log"][-1]))

    result = _train(nano, tmp_path / "run", _options(epochs=2), on_epoch_end=look)
    assert seen == [(1, 1, 1, True), (2, 2, 2, True)]
    assert result.log == read_training_checkpoint(tmp_path / "run" / "checkpoint.pt")["log"]
