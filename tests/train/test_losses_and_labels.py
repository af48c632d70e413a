"""The GMIC objective against a hand computation; image labels; the balanced sampler; augmentation bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mammoscreen.data.exams import Exam, ExamListError, ImageRecord
from mammoscreen.models.gmic.modeling import GMICOutput
from mammoscreen.train.configs import GMIC_TINY, augmentation_noise, config_by_name, config_name
from mammoscreen.train.data import LabelledImage, gmic_input, image_labels, labelled_images
from mammoscreen.train.losses import gmic_loss
from mammoscreen.train.sampler import epoch_indices


def _output(y_global, y_local, y_fusion, saliency):
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return GMICOutput(t(y_fusion), t(y_global), t(y_local), t(saliency), torch.zeros(1, 1, 2, dtype=torch.int64),
                      torch.ones(1, 1), torch.zeros(1, 1, 2, 2))


def test_loss_matches_a_hand_computation():
    # One image, benign 0 / malignant 1; 2x2 saliency maps.
    out = _output([[0.2, 0.7]], [[0.1, 0.6]], [[0.3, 0.9]], [[[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.0], [0.0, 0.5]]]])
    y = torch.tensor([[0.0, 1.0]])
    bce = lambda p, t: -(t * math.log(p) + (1 - t) * math.log(1 - p))  # noqa: E731
    glob = bce(0.2, 0) + bce(0.7, 1)
    loc = bce(0.1, 0) + bce(0.6, 1)
    fus = bce(0.3, 0) + bce(0.9, 1)
    l1_sum = (0.1 + 0.2 + 0.3 + 0.4) + (0.5 + 0.5)  # 2.0
    loss = gmic_loss(out, y, beta=0.5)
    assert loss.global_bce.item() == pytest.approx(glob, rel=1e-6)
    assert loss.local_bce.item() == pytest.approx(loc, rel=1e-6)
    assert loss.fusion_bce.item() == pytest.approx(fus, rel=1e-6)
    assert loss.saliency_l1.item() == pytest.approx(2.0, rel=1e-6)
    assert loss.total.item() == pytest.approx(glob + loc + fus + 0.5 * l1_sum, rel=1e-6)
    mean = gmic_loss(out, y, beta=0.5, saliency_reduction="mean")
    assert mean.saliency_l1.item() == pytest.approx(2.0 / 4, rel=1e-6)  # per-pixel mean, summed over classes


def test_loss_is_the_batch_mean():
    a = _output([[0.2, 0.7]], [[0.1, 0.6]], [[0.3, 0.9]], np.full((1, 2, 2, 2), 0.25))
    b = _output([[0.6, 0.1]], [[0.5, 0.2]], [[0.8, 0.3]], np.full((1, 2, 2, 2), 0.75))
    both = GMICOutput(*[torch.cat([u, v]) for u, v in zip(a, b)])
    ya, yb = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    expected = (gmic_loss(a, ya, 0.1).total + gmic_loss(b, yb, 0.1).total) / 2
    assert gmic_loss(both, torch.cat([ya, yb]), 0.1).total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_labels_come_from_the_breast_of_the_view():
    exam = Exam(images={"L-CC": ["a"], "R-CC": ["b"], "L-MLO": ["c"], "R-MLO": ["d"]},
                cancer_label={"left_benign": 1, "right_benign": 0, "left_malignant": 0, "right_malignant": 1})
    assert image_labels(exam, "L-CC") == (1, 0)
    assert image_labels(exam, "L-MLO") == (1, 0)
    assert image_labels(exam, "R-CC") == (0, 1)
    assert image_labels(exam, "R-MLO") == (0, 1)


def test_missing_labels_and_centres_are_clear_errors():
    centre = {"best_center": {v: [(10, 10)] for v in ("L-CC", "R-CC", "L-MLO", "R-MLO")}}
    views = {"L-CC": ["a"], "R-CC": ["b"], "L-MLO": ["c"], "R-MLO": ["d"]}
    with pytest.raises(ExamListError, match=r"train\.pkl: exam 0 has no 'cancer_label'"):
        labelled_images([Exam(images=views, image_metadata=centre)], "train.pkl")
    with pytest.raises(ExamListError, match=r"train\.pkl: exam 0: no 'right_malignant'"):
        labelled_images([Exam(images=views, image_metadata=centre,
                              cancer_label={"left_benign": 0, "right_benign": 0, "left_malignant": 0})], "train.pkl")
    full = {"left_benign": 0, "right_benign": 0, "left_malignant": 0, "right_malignant": 0}
    with pytest.raises(ExamListError, match=r"train\.pkl: image 'a' .*no 'best_center'.*mammoscreen centers"):
        labelled_images([Exam(images=views, cancer_label=full)], "train.pkl")


def _images(labels_per_exam):
    out = []
    for e, labels in enumerate(labels_per_exam):
        for v in ("L-CC", "R-CC"):
            record = ImageRecord(e, v, 0, f"{e}_{v}", "NO", {"best_center": (0, 0)})
            out.append(LabelledImage(record, labels[v]))
    return out


def test_balanced_sampler_takes_all_positive_exams_and_as_many_negatives():
    neg, pos = {"L-CC": (0, 0), "R-CC": (0, 0)}, {"L-CC": (0, 0), "R-CC": (0, 1)}
    ben = {"L-CC": (1, 0), "R-CC": (0, 0)}
    images = _images([pos, neg, neg, ben, neg, neg, neg, pos])  # exams 0, 3, 7 positive
    seen_negatives = set()
    for epoch in range(1, 6):
        idx = epoch_indices(images, epoch, seed=1, balanced=True)
        exams = {images[i].exam_index for i in idx}
        assert {0, 3, 7} <= exams
        negatives = exams - {0, 3, 7}
        assert len(negatives) == 3
        seen_negatives |= negatives
        assert len(idx) == len(set(idx)) == 2 * 6  # both images of each chosen exam, once
        assert idx == epoch_indices(images, epoch, seed=1, balanced=True)  # depends on (seed, epoch) only
    assert len(seen_negatives) > 3  # the negatives change between epochs
    assert sorted(epoch_indices(images, 1, seed=1, balanced=False)) == list(range(len(images)))


def test_augmentation_stays_within_the_noise_bounds():
    assert augmentation_noise(config_by_name("official")) == (100, 100)
    assert augmentation_noise(GMIC_TINY) == (25, 25)
    assert config_name(GMIC_TINY.with_percent_t(0.3)) == "gmic-tiny"
    # A ramp image: the window's corner values tell where it was cut.
    rows, cols = np.mgrid[0:900, 0:700]
    image = (rows * 1000 + cols).astype(np.float32)
    record = ImageRecord(0, "L-CC", 0, "x", "NO", {"best_center": (450, 300)})
    window, noise = (400, 300), (25, 25)
    plain = gmic_input(image, record, window)
    assert plain.shape == window
    centre_top, centre_left = 450 - 200, 300 - 150
    moved = 0
    for seed in range(60):
        from mammoscreen.preprocess.windows import window_geometry

        g = window_geometry(image.shape, window, (450, 300), "L-CC", rng=np.random.RandomState(seed),
                            max_crop_noise=noise, max_crop_size_noise=noise[1])
        # position noise + size noise of each border: at most 25 + 25 pixels from the test-time borders
        assert abs(g.top - centre_top) <= 50 and abs(g.bottom - (centre_top + 400)) <= 50
        assert abs(g.left - centre_left) <= 50 and abs(g.right - (centre_left + 300)) <= 50
        moved += (g.top, g.left) != (centre_top, centre_left)
        x = gmic_input(image, record, window, np.random.RandomState(seed), noise)
        assert x.shape == window and np.isfinite(x).all()
        assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1, abs=1e-3)
    assert moved > 50


def test_label_smoothing_moves_the_targets_inwards():
    out = _output([[0.2, 0.7]], [[0.1, 0.6]], [[0.3, 0.9]], np.zeros((1, 2, 2, 2)))
    y = torch.tensor([[0.0, 1.0]])
    bce = lambda p, t: -(t * math.log(p) + (1 - t) * math.log(1 - p))  # noqa: E731
    expected = sum(bce(p0, 0.05) + bce(p1, 0.95) for p0, p1 in ((0.2, 0.7), (0.1, 0.6), (0.3, 0.9)))
    assert gmic_loss(out, y, beta=1.0, label_smoothing=0.1).total.item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        gmic_loss(out, y, beta=1.0, label_smoothing=1.0)


def test_saturated_probabilities_cost_a_bounded_loss():
    # A probability of exactly 0 or 1 on the wrong side is clamped to [1e-7, 1 - 1e-7] (in float32), not left
    # to torch's own floor of log(p) >= -100.
    out = _output([[1.0, 0.0]], [[0.5, 0.5]], [[0.5, 0.5]], np.zeros((1, 2, 2, 2)))
    loss = gmic_loss(out, torch.tensor([[0.0, 1.0]]), beta=0.0)
    upper = float(np.float32(1 - 1e-7))
    expected = -math.log(1 - upper) - math.log(float(np.float32(1e-7)))
    assert loss.global_bce.item() == pytest.approx(expected, rel=1e-5)
    correct = gmic_loss(out, torch.tensor([[1.0, 0.0]]), beta=0.0)  # and on the right side nearly nothing
    assert correct.global_bce.item() == pytest.approx(-2 * math.log(upper), rel=1e-3, abs=1e-6)


def test_loss_parts_as_numbers_and_bad_settings():
    out = _output([[0.2, 0.7]], [[0.1, 0.6]], [[0.3, 0.9]], np.full((1, 2, 2, 2), 0.25))
    loss = gmic_loss(out, torch.tensor([[0.0, 1.0]]), beta=0.5)
    assert loss.as_floats() == {"loss": loss.total.item(), "global_bce": loss.global_bce.item(),
                                "local_bce": loss.local_bce.item(), "fusion_bce": loss.fusion_bce.item(),
                                "saliency_l1": loss.saliency_l1.item()}
    assert len(set(loss.as_floats().values())) == 5
    with pytest.raises(ValueError, match="^saliency_reduction must be 'sum' or 'mean', got 'max'$"):
        gmic_loss(out, torch.tensor([[0.0, 1.0]]), beta=0.5, saliency_reduction="max")
    with pytest.raises(ValueError, match=r"^label_smoothing must be in \[0, 1\), got 1.0$"):
        gmic_loss(out, torch.tensor([[0.0, 1.0]]), beta=0.5, label_smoothing=1.0)
