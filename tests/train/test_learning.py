"""Training learns: the loop's steps lower the loss, move every parameter, and are Adam's steps by hand.

The other training tests check determinism, resume and file layouts; they pass just as well if the
optimiser never steps (see docs/testing.md, "Mutants that must fail"). Here the expected weights after
two steps are computed independently: the inputs of each epoch are rebuilt from the data pipeline, the
gradient of the paper's loss is taken with autograd, and Adam's update (Kingma & Ba 2015, algorithm 1,
with PyTorch's L2 ``weight_decay`` added to the gradient) is applied in float64 NumPy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mammoscreen.models.gmic.modeling import GMIC
from mammoscreen.train import TrainOptions, train_gmic
from mammoscreen.train.configs import augmentation_noise
from mammoscreen.train.data import GMICImages, labelled_images
from mammoscreen.train.losses import gmic_loss
from mammoscreen.train.sampler import epoch_indices

pytestmark = pytest.mark.slow  # seconds to minutes: a whole run, training steps, a browser or fault injection

# Adam's defaults in the loop (torch.optim.Adam): betas (0.9, 0.999), eps 1e-8.
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def _start(config, path, seed=11):
    torch.manual_seed(seed)
    state = GMIC(config).state_dict()
    torch.save(state, path)
    return {k: v.clone() for k, v in state.items()}


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _trainable(config):
    return [name for name, p in GMIC(config).named_parameters() if p.requires_grad]


def _batch(split, config, options, epoch):
    """The one batch of ``epoch`` when the batch holds every training image, in the loop's order."""
    images = labelled_images(split.exams, "training")
    dataset = GMICImages(images, split.cropped_dir, config.input_size, augment=True,
                         noise=augmentation_noise(config), seed=options.seed)
    dataset.set_epoch(epoch)
    order = epoch_indices(images, epoch, options.seed, options.balanced)
    assert len(order) <= options.batch_size  # one step per epoch
    items = [dataset[i] for i in order]
    return torch.stack([x for x, _, _ in items]), torch.stack([y for _, y, _ in items])


def _loss_and_gradient(config, state, x, y, options):
    model = GMIC(config)
    model.load_state_dict(state)
    model.train()
    loss = gmic_loss(model(x), y, options.beta, options.saliency_reduction)
    loss.total.backward()
    return float(loss.total.detach()), {n: p.grad.double().numpy().copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_two_training_steps_are_adam_by_hand(micro_split, micro_config, tmp_path, weight_decay):
    """Two epochs of one batch each; the second epoch resumes from the first one's checkpoint, so the
    optimiser state (Adam's moments) must survive the checkpoint as well."""
    start = _start(micro_config, tmp_path / "start.p")
    n_images = len(labelled_images(micro_split.exams, "training"))
    options = TrainOptions(config=micro_config, init=str(tmp_path / "start.p"), epochs=1, lr=2e-3, batch_size=n_images,
                           seed=4, weight_decay=weight_decay, progress=False)
    run = tmp_path / "run"
    first = train_gmic(micro_split.cropped_dir, micro_split.exams, micro_split.exams, run, options)
    after_step = [start, _weights(first.last_model)]
    second = train_gmic(micro_split.cropped_dir, micro_split.exams, micro_split.exams, run,
                        replace(options, epochs=2), resume=True)
    after_step.append(_weights(second.last_model))

    names = _trainable(micro_config)
    m = {n: 0.0 for n in names}
    v = {n: 0.0 for n in names}
    for step in (1, 2):
        # The gradient at the loop's own weights before this step, on the step's batch.
        x, y = _batch(micro_split, micro_config, options, epoch=step)
        loss, grads = _loss_and_gradient(micro_config, after_step[step - 1], x, y, options)
        # The logged training loss of the epoch is the loss of its one batch, before the step.
        assert second.log[step - 1]["train_loss"] == pytest.approx(loss, rel=1e-6)
        moved = 0
        for name in names:
            theta = after_step[step - 1][name].double().numpy()
            g = grads[name] + weight_decay * theta
            m[name] = BETA1 * m[name] + (1 - BETA1) * g
            v[name] = BETA2 * v[name] + (1 - BETA2) * g * g
            m_hat = m[name] / (1 - BETA1 ** step)
            v_hat = v[name] / (1 - BETA2 ** step)
            expected = theta - options.lr * m_hat / (np.sqrt(v_hat) + EPS)
            ours = after_step[step][name].double().numpy()
            # float32 weights of order 1 (rounding ~6e-8); a step moves a weight by up to lr = 2e-3
            np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4 * options.lr, err_msg=f"step {step} {name}")
            moved += int(np.abs(ours - theta).max() > 0.5 * options.lr)
        assert moved == len(names)  # every parameter tensor took a step of Adam's size


def test_training_lowers_the_loss_and_moves_every_parameter(micro_split, micro_config, tmp_path):
    start = _start(micro_config, tmp_path / "start.p", seed=12)
    options = TrainOptions(config=micro_config, init=str(tmp_path / "start.p"), epochs=5, lr=1e-3, batch_size=4,
                           seed=5, progress=False)
    result = train_gmic(micro_split.cropped_dir, micro_split.exams, micro_split.exams, tmp_path / "run", options)
    trained = _weights(result.last_model)
    for name in _trainable(micro_config):
        assert not torch.equal(trained[name], start[name]), f"{name} never changed"

    # The loss on fixed inputs (the validation windows, no augmentation), in training mode so that
    # BatchNorm uses the batch statistics and the comparison depends on the parameters only.
    images = labelled_images(micro_split.exams, "training")
    dataset = GMICImages(images, micro_split.cropped_dir, micro_config.input_size)
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y = torch.stack([dataset[i][1] for i in range(len(dataset))])

    def loss_of(state):
        model = GMIC(micro_config)
        model.load_state_dict(state)
        model.train()
        with torch.no_grad():
            return float(gmic_loss(model(x), y, options.beta).total)

    before, after = loss_of(start), loss_of(trained)
    assert after < 0.9 * before, (before, after)
    epoch_losses = [entry["train_loss"] for entry in result.log]
    assert epoch_losses[-1] < 0.9 * epoch_losses[0], epoch_losses


def test_a_learning_rate_of_zero_changes_nothing_but_the_batchnorm_statistics(micro_split, micro_config, tmp_path):
    # The counterpart of the two tests above: what moves the parameters is the optimiser step.
    start = _start(micro_config, tmp_path / "start.p", seed=13)
    options = TrainOptions(config=micro_config, init=str(tmp_path / "start.p"), epochs=1, lr=0.0, batch_size=8,
                           seed=5, progress=False)
    trained = _weights(train_gmic(micro_split.cropped_dir, micro_split.exams, micro_split.exams, tmp_path / "run",
                                  options).last_model)
    for name in _trainable(micro_config):
        assert torch.equal(trained[name], start[name]), name
    running = [k for k in start if k.endswith("running_mean")]
    assert running and all(not torch.equal(trained[k], start[k]) for k in running)


def test_options_change_the_step(micro_split, micro_config, tmp_path):
    # lr and weight decay reach the optimiser: different settings, different weights after one epoch.
    _start(micro_config, tmp_path / "start.p", seed=14)
    base = TrainOptions(config=micro_config, init=str(tmp_path / "start.p"), epochs=1, lr=1e-3, batch_size=16,
                        seed=5, progress=False)
    runs = {}
    for label, options in (("base", base), ("lr", replace(base, lr=2e-3)), ("wd", replace(base, weight_decay=1.0))):
        runs[label] = _weights(train_gmic(micro_split.cropped_dir, micro_split.exams, micro_split.exams,
                                          tmp_path / label, options).last_model)["fusion_dnn.weight"]
    assert not torch.equal(runs["base"], runs["lr"]) and not torch.equal(runs["base"], runs["wd"])
