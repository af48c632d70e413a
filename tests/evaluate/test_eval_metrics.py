"""Metric functions against scikit-learn on random data, operating points against brute force, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import calibration as skcal
from sklearn import metrics as skm

from mammoscreen.evaluate import metrics as m
from mammoscreen.evaluate.validation import EvaluationInputError

TOL = 1e-12


def random_problems(count=120, seed=0):
    """Random binary problems: continuous scores, heavily tied scores, rare positives, tiny sizes."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        n = int(rng.integers(2, 400))
        prevalence = rng.choice([0.02, 0.1, 0.5, 0.9])
        y = (rng.random(n) < prevalence).astype(int)
        if y.min() == y.max():
            continue
        kind = len(out) % 3
        if kind == 0:
            s = rng.random(n) + 0.3 * y
        elif kind == 1:
            s = rng.integers(0, int(rng.integers(1, 8)), n) / 5.0  # many ties, possibly a single value
        else:
            s = np.round(rng.normal(size=n) + y, 1)
        out.append((y, s))
    return out


PROBLEMS = random_problems()


@pytest.mark.parametrize("k", range(0, len(PROBLEMS), 3))
def test_ranking_metrics_equal_sklearn(k):
    for y, s in PROBLEMS[k:k + 3]:
        precision, recall, _ = skm.precision_recall_curve(y, s)
        assert abs(m.roc_auc(y, s) - skm.roc_auc_score(y, s)) <= TOL
        assert abs(m.auprc_trapezoid(y, s) - skm.auc(recall, precision)) <= TOL
        assert abs(m.average_precision(y, s) - skm.average_precision_score(y, s)) <= TOL


def test_curves_equal_sklearn():
    for y, s in PROBLEMS:
        fpr, tpr, thr = m.roc_curve(y, s)
        fpr_ref, tpr_ref, thr_ref = skm.roc_curve(y, s, drop_intermediate=False)
        np.testing.assert_allclose(fpr, fpr_ref, rtol=0, atol=TOL)
        np.testing.assert_allclose(tpr, tpr_ref, rtol=0, atol=TOL)
        np.testing.assert_array_equal(thr, thr_ref)
        precision, recall, thr = m.precision_recall_curve(y, s)
        p_ref, r_ref, t_ref = skm.precision_recall_curve(y, s)
        np.testing.assert_allclose(precision, p_ref, rtol=0, atol=TOL)
        np.testing.assert_allclose(recall, r_ref, rtol=0, atol=TOL)
        np.testing.assert_array_equal(thr, t_ref)


def test_calibration_and_brier_equal_sklearn():
    rng = np.random.default_rng(3)
    for trial in range(40):
        n = int(rng.integers(5, 300))
        p = rng.random(n) ** rng.uniform(0.3, 3)
        if trial % 4 == 0:
            p = np.round(p, 1)  # values exactly on bin edges
        y = (rng.random(n) < p).astype(int)
        for strategy, bins in (("uniform", 10), ("uniform", 7), ("quantile", 5)):
            observed, predicted, count = m.calibration_curve(y, p, n_bins=bins, strategy=strategy)
            obs_ref, pred_ref = skcal.calibration_curve(y, p, n_bins=bins, strategy=strategy)
            np.testing.assert_allclose(observed, obs_ref, rtol=0, atol=TOL)
            np.testing.assert_allclose(predicted, pred_ref, rtol=0, atol=TOL)
            assert count.sum() == n and np.all(count > 0)
        assert abs(m.brier_score(y, p) - skm.brier_score_loss(y, p)) <= TOL


def test_expected_calibration_error_by_hand_and_against_sklearn_bins():
    # Two bins of width 0.5: {0.1, 0.3} observed 0 vs mean 0.2, {0.6, 0.9} observed 1 vs mean 0.75.
    assert m.expected_calibration_error([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9], n_bins=2) == pytest.approx(
        (2 * 0.2 + 2 * 0.25) / 4, abs=TOL)
    assert m.expected_calibration_error([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]) == 0.0
    rng = np.random.default_rng(5)
    for trial in range(20):
        n = int(rng.integers(5, 300))
        p = rng.random(n) ** rng.uniform(0.3, 3)
        if trial % 4 == 0:
            p = np.round(p, 1)
        y = (rng.random(n) < p).astype(int)
        obs_ref, pred_ref = skcal.calibration_curve(y, p, n_bins=10)
        # Bin counts by sklearn's convention (a value on an inner edge belongs to the bin below, 0 to the first).
        edges = np.linspace(0, 1, 11)
        counts = np.array([np.sum((p > lo if k else p >= lo) & (p <= hi))
                           for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
        counts = counts[counts > 0]
        expected = np.sum(counts * np.abs(obs_ref - pred_ref)) / n
        assert abs(m.expected_calibration_error(y, p) - expected) <= 1e-12
    with pytest.raises(EvaluationInputError):
        m.expected_calibration_error([0, 1], [0.2, 1.5])


def brute_force_operating_points(y, s):
    """(threshold, sensitivity, specificity) of every threshold 'score >= t', plus 'nothing positive'."""
    points = [(np.inf, 0.0, 1.0)]
    for t in np.unique(s):
        called = s >= t
        points.append((t, called[y == 1].mean(), (~called[y == 0]).mean()))
    return points


def test_operating_points_match_brute_force():
    for y, s in PROBLEMS[:60]:
        points = brute_force_operating_points(y, s)
        for target in (0.0, 0.5, 0.8, 0.9, 0.95, 1.0):
            best_sens = max(p[1] for p in points if p[2] >= target)
            got = m.operating_point_at_specificity(y, s, target)
            assert got.sensitivity == pytest.approx(best_sens, abs=1e-15)
            assert got.specificity >= target
            # the reported threshold really gives the reported sensitivity and specificity
            called = s >= got.threshold
            assert called[y == 1].mean() == pytest.approx(got.sensitivity, abs=1e-15)
            assert (~called[y == 0]).mean() == pytest.approx(got.specificity, abs=1e-15)

            best_spec = max(p[2] for p in points if p[1] >= target)
            got = m.operating_point_at_sensitivity(y, s, target)
            assert got.specificity == pytest.approx(best_spec, abs=1e-15)
            assert got.sensitivity >= target
            assert m.specificity_at_sensitivity(y, s, target) == got.specificity


def test_invariants():
    rng = np.random.default_rng(11)
    y = (rng.random(500) < 0.2).astype(int)
    s = rng.random(500) + 0.5 * y
    auc = m.roc_auc(y, s)
    # a strictly increasing transform changes nothing; reversing the scores mirrors the AUROC
    assert m.roc_auc(y, np.exp(3 * s)) == pytest.approx(auc, abs=1e-15)
    assert m.roc_auc(y, -s) == pytest.approx(1 - auc, abs=1e-15)
    assert m.roc_auc(1 - y, s) == pytest.approx(1 - auc, abs=1e-15)
    # perfect separation and no information
    assert m.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert m.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert m.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    # labels given as booleans or floats are the same labels
    assert m.roc_auc(y.astype(bool), s) == auc
    assert m.roc_auc(y.astype(float), s) == auc


@pytest.mark.parametrize("y, s, message", [
    ([0, 1, 1], [0.1, np.nan, 0.3], "NaN at positions 1"),
    ([0, 1, 1], [0.1, np.inf, 0.3], "inf at positions 1"),
    ([0, 2, 1], [0.1, 0.2, 0.3], "only the labels 0 and 1"),
    ([0, np.nan, 1], [0.1, 0.2, 0.3], "only the labels 0 and 1"),
    ([1, 1, 1], [0.1, 0.2, 0.3], "all 3 cases in y_true are positive"),
    ([0, 0], [0.1, 0.2], "are negative"),
    ([0, 1, 1], [0.1, 0.2], "has 2 values but there are 3 labels"),
    ([], [], "empty"),
    ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    (["a", "b"], [0.1, 0.2], "labels 0 and 1"),
])
def test_bad_input_raises_clear_error(y, s, message):
    with pytest.raises(EvaluationInputError, match=message):
        m.roc_auc(y, s)


def test_bad_targets_and_probabilities():
    with pytest.raises(EvaluationInputError, match="specificity must lie between 0 and 1"):
        m.sensitivity_at_specificity([0, 1], [0.1, 0.9], 1.5)
    with pytest.raises(EvaluationInputError, match=r"probabilities in \[0, 1\]"):
        m.calibration_curve([0, 1], [0.1, 1.2])
    with pytest.raises(EvaluationInputError, match="strategy"):
        m.calibration_curve([0, 1], [0.1, 0.2], strategy="kmeans")


def test_operating_point_at_sensitivity_reports_the_threshold_that_gives_it():
    for y, s in PROBLEMS[:40]:
        for target in (0.0, 0.5, 0.9, 1.0):
            got = m.operating_point_at_sensitivity(y, s, target)
            called = s >= got.threshold
            assert called[y == 1].mean() == pytest.approx(got.sensitivity, abs=1e-15)
            assert (~called[y == 0]).mean() == pytest.approx(got.specificity, abs=1e-15)
            point = m.operating_point_at_specificity(y, s, target)
            assert m.sensitivity_at_specificity(y, s, target) == point.sensitivity
    with pytest.raises(EvaluationInputError, match="^sensitivity must lie between 0 and 1, got 1.5$"):
        m.specificity_at_sensitivity([0, 1], [0.1, 0.9], 1.5)


def test_calibration_bins_by_hand():
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.2, 0.3, 0.9])
    # one bin: everything together
    observed, predicted, count = m.calibration_curve(y, p, n_bins=1)
    assert observed.tolist() == [0.5] and predicted[0] == pytest.approx(0.375) and count.tolist() == [4]
    # two equal-count bins {0.1, 0.2} and {0.3, 0.9}: gaps |0.5 - 0.15| and |0.5 - 0.6|
    assert m.expected_calibration_error(y, p, n_bins=2, strategy="quantile") == pytest.approx((2 * 0.35 + 2 * 0.1) / 4)
    # two equal-width bins {0.1, 0.2, 0.3} and {0.9}: gaps |1/3 - 0.2| and |1 - 0.9|
    assert m.expected_calibration_error(y, p, n_bins=2) == pytest.approx((3 * (1 / 3 - 0.2) + 0.1) / 4)
    # the defaults are 10 equal-width bins
    rng = np.random.default_rng(4)
    p = (np.arange(200) + rng.random(200)) / 200  # every tenth of [0, 1] occupied
    y = (rng.random(200) < p).astype(int)
    default = m.calibration_curve(y, p)
    assert len(default[2]) == 10
    for ours, explicit in zip(default, m.calibration_curve(y, p, n_bins=10, strategy="uniform")):
        np.testing.assert_array_equal(ours, explicit)
    assert m.expected_calibration_error(y, p) == m.expected_calibration_error(y, p, n_bins=10, strategy="uniform")
    with pytest.raises(EvaluationInputError, match="^n_bins must be at least 1, got 0$"):
        m.calibration_curve(y, p, n_bins=0)
    with pytest.raises(EvaluationInputError, match="^y_prob has 3 values but there are 2 labels"):
        m.calibration_curve([0, 1], [0.1, 0.2, 0.3])
