"""DeLong's test (evaluate/delong.py) against its O(m n) definition, scikit-learn's AUROC and its symmetries."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from mammoscreen.evaluate.delong import delong_covariance, delong_test


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
