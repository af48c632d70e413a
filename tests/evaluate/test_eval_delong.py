"""DeLong's test (evaluate/delong.py) against its O(m n) definition, scikit-learn's AUROC and its symmetries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mammoscreen.evaluate.delong import delong_components, delong_covariance, delong_test
from mammoscreen.evaluate.validation import EvaluationInputError


def delong_by_definition(y, scores):
    """DeLong et al. (1988) from the kernel psi(x, y) = 1 if x > y, 1/2 if equal, over all pairs."""
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    return psi.mean(axis=(1, 2)), np.cov(v10) / pos.shape[1] + np.cov(v01) / neg.shape[1]


@pytest.mark.parametrize("seed", range(6))
def test_delong_covariance_equals_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 150))
    y = (rng.random(n) < 0.4).astype(int)
    y[:2] = [0, 1]
    scores = rng.random((3, n)) + np.array([[0.5], [0.2], [0.0]]) * y
    if seed % 2:
        scores = np.round(scores, 1)  # ties within and across classes
    auc, cov = delong_covariance(y, scores)
    auc_ref, cov_ref = delong_by_definition(y, scores)
    np.testing.assert_allclose(auc, auc_ref, rtol=0, atol=1e-14)
    np.testing.assert_allclose(cov, cov_ref, rtol=0, atol=1e-15)
    for k in range(3):
        assert abs(auc[k] - skm.roc_auc_score(y, scores[k])) < 1e-12

    test = delong_test(y, scores[0], scores[1])
    se = np.sqrt(cov_ref[0, 0] + cov_ref[1, 1] - 2 * cov_ref[0, 1])
    z = (auc_ref[0] - auc_ref[1]) / se
    assert test.z == pytest.approx(z, rel=1e-12)
    assert test.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert test.ci_low == pytest.approx(auc_ref[0] - auc_ref[1] - 1.959963984540054 * se, rel=1e-9)


def test_delong_identical_and_swapped_models():
    rng = np.random.default_rng(1)
    y = (rng.random(80) < 0.5).astype(int)
    s = rng.random(80) + y
    same = delong_test(y, s, s * 2 + 1)  # same ranking
    assert same.difference == 0 and same.p_value == 1.0 and same.standard_error == 0
    other = rng.random(80)
    ab, ba = delong_test(y, s, other), delong_test(y, other, s)
    assert ab.difference == -ba.difference and ab.p_value == pytest.approx(ba.p_value, abs=1e-15)
    assert ab.p_value < 0.01  # a real difference on 80 cases


def test_a_single_positive_or_negative_case_has_no_within_class_covariance():
    """With one positive the V10 component has one value and no sample covariance: only S01 / n remains (and
    the reverse with one negative)."""
    y = np.array([0, 0, 1, 0, 0, 0])
    scores = np.array([[0.1, 0.5, 0.45, 0.3, 0.8, 0.2], [0.3, 0.1, 0.9, 0.2, 0.4, 0.5]])
    auc, cov = delong_covariance(y, scores)
    # by hand: psi of the positive against each negative, model 0: [1, 0, 1, 0, 1], model 1: all 1
    np.testing.assert_array_equal(auc, [0.6, 1.0])
    v01 = np.array([[1, 0, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=float)
    np.testing.assert_allclose(cov, np.cov(v01) / 5, rtol=0, atol=1e-16)
    assert cov[0, 0] == pytest.approx(0.3 / 5, abs=1e-16) and cov[1, 1] == 0
    auc, cov = delong_covariance(1 - y, -scores)  # one negative: the mirror image, same AUCs
    np.testing.assert_array_equal(auc, [0.6, 1.0])
    np.testing.assert_allclose(cov, np.cov(v01) / 5, rtol=0, atol=1e-16)


def test_two_positives_have_a_within_class_covariance():
    y = np.array([1, 0, 1, 0, 0])
    scores = np.array([[0.9, 0.1, 0.2, 0.3, 0.05]])
    auc, cov = delong_covariance(y, scores)
    # V10 = [3/3, 2/3] (negatives beaten), V01 = [1, 1/2, 1] (positives above):
    # S10 = var([1, 2/3]) = 1/18, S01 = var([1, 1/2, 1]) = 1/12
    assert auc[0] == pytest.approx(5 / 6, abs=1e-15)
    assert cov[0, 0] == pytest.approx((1 / 18) / 2 + (1 / 12) / 3, abs=1e-15)


def test_perfect_and_reversed_rankings_differ_with_no_variance():
    """A perfect model against a perfectly wrong one: every structural component is constant, so the standard error
    is 0 and the difference of 1 is infinitely significant."""
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
    test = delong_test(y, s, -s)
    assert (test.auc_a, test.auc_b, test.difference, test.standard_error) == (1.0, 0.0, 1.0, 0.0)
    assert test.z == math.inf and test.p_value == 0.0 and test.ci_low == test.ci_high == 1.0
    reverse = delong_test(y, -s, s)
    assert reverse.z == -math.inf and reverse.p_value == 0.0 and reverse.difference == -1.0


def test_interval_is_symmetric_at_the_requested_coverage_and_reported_whole():
    rng = np.random.default_rng(7)
    y = (rng.random(60) < 0.5).astype(int)
    a, b = rng.random(60) + 0.8 * y, rng.random(60) + 0.3 * y
    auc, cov = delong_covariance(y, np.vstack([a, b]))
    se = math.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    for confidence, quantile in ((0.95, 1.959963984540054), (0.9, 1.6448536269514722), (0.5, 0.6744897501960817)):
        test = delong_test(y, a, b, confidence=confidence)
        assert test.confidence == confidence and test.standard_error == pytest.approx(se, rel=1e-12)
        assert test.ci_low == pytest.approx(auc[0] - auc[1] - quantile * se, rel=1e-9)
        assert test.ci_high == pytest.approx(auc[0] - auc[1] + quantile * se, rel=1e-9)
    assert test.to_dict() == {"auc_a": test.auc_a, "auc_b": test.auc_b, "difference": test.difference,
                              "standard_error": test.standard_error, "z": test.z, "p_value": test.p_value,
                              "ci_low": test.ci_low, "ci_high": test.ci_high, "confidence": 0.5}
    assert test.auc_a == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert test.auc_b == pytest.approx(skm.roc_auc_score(y, b), abs=1e-12)
    with pytest.raises(EvaluationInputError, match=r"^confidence must lie between 0 and 1, got 1.5$"):
        delong_test(y, a, b, confidence=1.5)


def test_integer_and_list_scores_give_the_float_results():
    y = [0, 1, 0, 1, 1, 0, 0, 1]
    a, b = [1, 5, 2, 4, 3, 3, 0, 6], [2, 2, 1, 3, 4, 0, 5, 1]
    as_int, as_float = delong_test(y, a, b), delong_test(np.array(y), np.array(a, float), np.array(b, float))
    assert as_int == as_float


def test_each_bad_score_vector_is_named():
    y = [0, 1, 0, 1]
    with pytest.raises(EvaluationInputError, match=r"^score_b has 3 values but there are 4 labels; they must match "
                                                   r"one to one$"):
        delong_test(y, [1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(EvaluationInputError, match=r"^score_a has 5 values but there are 4 labels"):
        delong_test(y, [1, 2, 3, 4, 5], [1, 2, 3, 4])
    with pytest.raises(EvaluationInputError, match=r"^score_a must be numbers$"):
        delong_test(y, ["x", 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(EvaluationInputError, match=r"^score_a contains inf at positions 0;"):
        delong_test(y, [np.inf, 2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(EvaluationInputError, match=r"^y_true must hold only the labels 0 and 1"):
        delong_test([0, 1, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4])


@pytest.mark.parametrize("seed", range(3))
def test_structural_components_are_the_kernel_means(seed):
    """V10 of a positive = mean of psi over the negatives, V01 of a negative = mean of psi over the positives
    (DeLong et al. 1988); the MRMC jackknife uses them directly, not only through their covariance."""
    rng = np.random.default_rng(seed)
    y = np.array([0, 1] * 6 + [0] * seed)
    scores = np.round(rng.random((2, y.size)) + 0.3 * y, 1)
    auc, v10, v01 = delong_components(y, scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    np.testing.assert_allclose(v10, psi.mean(axis=2), rtol=0, atol=1e-15)
    np.testing.assert_allclose(v01, psi.mean(axis=1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(auc, psi.mean(axis=(1, 2)), rtol=0, atol=1e-15)


def test_two_negatives_have_a_within_class_covariance():
    y = np.array([0, 1, 0, 1, 1])
    scores = -np.array([[0.9, 0.1, 0.2, 0.3, 0.05]])  # the two-positives case above, classes and order reversed
    auc, cov = delong_covariance(y, scores)
    assert auc[0] == pytest.approx(5 / 6, abs=1e-15)
    assert cov[0, 0] == pytest.approx((1 / 18) / 2 + (1 / 12) / 3, abs=1e-15)


def test_identical_rankings_have_z_zero():
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.7, 0.3])
    test = delong_test(y, s, 2 * s)
    assert (test.difference, test.standard_error, test.z, test.p_value) == (0.0, 0.0, 0.0, 1.0)
